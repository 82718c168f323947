"""Traces end to end: one webhook through the ingress, the policy and dispatch consumers to a loopback
HTTP target, on real servers, in one process, spans kept by the SDK's in-memory exporter.

On: every span (receive, verify, claim, publish, policy, each dispatch attempt) is in the sender's
trace, the target's `traceparent` header names that trace with the attempt's span as its parent, and
the log lines of the request and of its messages carry the trace id, tenant, connector and event id.
Off: nothing is recorded, the target gets the sender's traceparent, the log lines still carry it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.app.config import load_configuration
from hub.app.connections import Endpoints
from hub.app.embedded import RunningServer
from hub.app.logs import JsonFormatter, TraceFieldsFilter
from hub.app.roles import listening, start_process
from hub.ingress.app import build_app
from hub.runtime import tracing
from hub.settings import Settings
from tests.hub.gate.harness import TimedHttpTarget, acme_specs, gate_idle, timed_http_target, until
from tests.hub.ingress.signing import github_headers

pytestmark = pytest.mark.integration

SECRET = "tracing e2e github secret"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER_SPAN = "00f067aa0ba902b7"
SENDER = f"00-{TRACE}-{SENDER_SPAN}-01"
ROLES = ("ingress", "policy", "dispatch")


@dataclass
class Hub:
    url: str
    target: TimedHttpTarget
    session: aiohttp.ClientSession
    logs: io.StringIO
    js: JetStreamContext

    async def deliver(self, body: bytes, delivery: str) -> int:
        """POST a signed push with the sender's traceparent; the answer's status."""
        headers = github_headers(body, SECRET, delivery=delivery, traceparent=SENDER)
        async with self.session.post(f"{self.url}/hooks/acme/gh", data=body, headers=headers) as response:
            return response.status

    def log_lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.logs.getvalue().splitlines()]


@contextlib.contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """The root logger's records as `run` writes them (JSON, with the trace fields), into memory."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceFieldsFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def hub(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hub]:
    """Ingress, policy and dispatch in this process; the target answers 503 once, then 200."""
    monkeypatch.setenv("UNUSED", SECRET)  # the secret acme_specs' connector references
    async with timed_http_target(script=[503]) as target:
        route = f"""    - name: hook
      match: {{types: ["github.push"]}}
      target: {{http: {{url: "{target.url}/hook", timeout: 2s}}}}
      retry: {{maxAttempts: 3, initial: 50ms, max: 100ms, jitter: false}}"""
        specs = tmp_path / "specs.yaml"
        specs.write_text(acme_specs(route))
        settings = Settings(
            nats_url=nats_server.url, redis_url=valkey_server.url, data_dir=tmp_path / "hub", connectors=specs
        )
        configuration = load_configuration(settings, roles=ROLES)
        with json_logs() as logs:
            async with contextlib.AsyncExitStack() as stack:
                endpoints = Endpoints(nats_server.url, valkey_server.url, {})
                process = await start_process(stack, settings, configuration, endpoints, ROLES)
                url = await stack.enter_async_context(
                    listening(build_app(process.context), "127.0.0.1", 0, reuse_port=False)
                )
                session = await stack.enter_async_context(aiohttp.ClientSession())
                yield Hub(url, target, session, logs, process.conn.nc.jetstream())


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def trace_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def parent_id(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


async def delivered(hub: Hub) -> None:
    await until(lambda: 200 in hub.target.statuses, 15, "the target's 2xx")
    await until(lambda: gate_idle(hub.js), 15, "both gate consumers idle")


async def test_one_webhook_is_one_trace_from_the_sender_to_the_target(spans: InMemorySpanExporter, hub: Hub) -> None:
    body = orjson.dumps({"ref": "refs/heads/main", "repository": {"full_name": "octo/hello"}})
    assert await hub.deliver(body, "delivery-1") == 202
    await delivered(hub)

    finished = spans.get_finished_spans()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    assert {name: len(found) for name, found in by_name.items()} == {
        "receive": 1,
        "verify": 1,
        "claim": 1,
        "publish": 1,
        "policy": 1,
        "dispatch": 2,
    }
    assert {trace_of(span) for span in finished} == {TRACE}
    (receive,) = by_name["receive"]
    assert parent_id(receive) == SENDER_SPAN
    assert (receive.attributes or {})["http.response.status_code"] == 202
    for name in ("verify", "claim", "publish", "policy", "dispatch"):
        for span in by_name[name]:
            assert parent_id(span) == span_id(receive), name  # the envelope carries the receive span
    assert (by_name["publish"][0].attributes or {})["hub.event_id"] == "delivery-1"
    attempts = sorted(by_name["dispatch"], key=lambda span: (span.attributes or {})["hub.attempt"])
    assert [(span.attributes or {})["http.response.status_code"] for span in attempts] == [503, 200]
    assert {(span.attributes or {})["hub.event_id"] for span in attempts} == {"delivery-1"}
    for span in finished:  # names and ids only: no header value, signature or secret
        assert not any(SECRET in str(value) or "sha256=" in str(value) for value in (span.attributes or {}).values())

    received = [headers["traceparent"] for headers, _ in hub.target.requests]
    assert received == [f"00-{TRACE}-{span_id(attempt)}-01" for attempt in attempts]

    retried = [line for line in hub.log_lines() if line["msg"] == "dispatch failed; retrying"]
    assert retried, hub.logs.getvalue()
    for line in retried:
        assert (line["trace_id"], line["tenant"], line["connector"], line["event_id"]) == (
            TRACE,
            "acme",
            "gh",
            "delivery-1",
        )


async def test_a_refused_requests_log_line_carries_its_trace(spans: InMemorySpanExporter, hub: Hub) -> None:
    body = b'{"ref": "refs/heads/main"}'
    headers = github_headers(body, "not the secret") | {"traceparent": SENDER}
    async with hub.session.post(f"{hub.url}/hooks/acme/gh", data=body, headers=headers) as response:
        assert response.status == 401
    (refused,) = [line for line in hub.log_lines() if line["msg"] == "webhook refused"]
    assert (refused["trace_id"], refused["tenant"], refused["event_id"]) == (TRACE, "acme", None)
    assert refused["connector"] == "acme/gh"  # the call's own field is kept
    (receive, verify) = sorted(spans.get_finished_spans(), key=lambda span: span.name)
    assert (receive.name, verify.name) == ("receive", "verify")
    assert (receive.attributes or {})["http.response.status_code"] == 401
    assert verify.status.description == "SignatureError"


async def test_off_records_nothing_and_hands_the_senders_trace_to_the_target(hub: Hub) -> None:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    tracing.shutdown()  # on, then off: what was installed records nothing any more
    assert not tracing.enabled()
    body = orjson.dumps({"ref": "refs/heads/main"})
    assert await hub.deliver(body, "delivery-2") == 202
    await delivered(hub)
    assert exporter.get_finished_spans() == ()
    assert [headers["traceparent"] for headers, _ in hub.target.requests] == [SENDER, SENDER]
    retried = [line for line in hub.log_lines() if line["msg"] == "dispatch failed; retrying"]
    assert retried
    assert {(line["trace_id"], line["event_id"]) for line in retried} == {(TRACE, "delivery-2")}
