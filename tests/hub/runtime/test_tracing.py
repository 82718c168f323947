"""hub.runtime.tracing with the SDK's in-memory exporter: spans continue a W3C context, hand theirs on,
nest, keep exception messages out; the log fields of a request or message; off costs no import."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from hub.app.logs import JsonFormatter, TraceFieldsFilter
from hub.runtime import tracing
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENDER = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every span ended kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


def test_off_hands_the_parent_on_and_records_nothing() -> None:
    assert not tracing.enabled()
    with tracing.span("receive", SENDER, tenant="acme") as trace:
        trace.set("pages", 1)
        trace.status(503)
        trace.error("http 503")
        assert trace.traceparent == SENDER
    with tracing.span("claim") as trace:
        assert trace.traceparent is None


def test_a_span_continues_the_senders_trace_and_hands_its_own_context_on(spans: InMemorySpanExporter) -> None:
    with tracing.span("receive", SENDER, tenant="acme", connector="gh") as trace:
        handed_on = trace.traceparent
        with tracing.span("publish", event_id="d-1"):
            pass
    publish, receive = spans.get_finished_spans()
    assert (receive.name, publish.name) == ("receive", "publish")
    assert receive.context is not None
    assert publish.context is not None
    assert receive.parent is not None
    assert f"{receive.context.trace_id:032x}" == TRACE
    assert f"{receive.parent.span_id:016x}" == "00f067aa0ba902b7"  # the sender's span
    assert handed_on == f"00-{TRACE}-{receive.context.span_id:016x}-01"
    assert publish.parent is not None
    assert publish.parent.span_id == receive.context.span_id
    assert dict(receive.attributes or {}) == {"hub.tenant": "acme", "hub.connector": "gh"}
    assert dict(publish.attributes or {}) == {"hub.event_id": "d-1"}


def test_a_context_from_a_message_is_a_remote_parent(spans: InMemorySpanExporter) -> None:
    with tracing.span("receive", SENDER) as edge:
        envelope_traceparent = edge.traceparent
    with tracing.span("dispatch", envelope_traceparent, route="hook") as trace:
        trace.status(200)
        header = trace.traceparent
    receive, dispatch = spans.get_finished_spans()
    assert dispatch.context is not None
    assert dispatch.parent is not None
    assert receive.context is not None
    assert dispatch.parent.span_id == receive.context.span_id
    assert dispatch.parent.is_remote
    assert header == f"00-{TRACE}-{dispatch.context.span_id:016x}-01"
    assert (dispatch.attributes or {})["http.response.status_code"] == 200
    assert dispatch.status.status_code is StatusCode.UNSET


def test_fresh_and_malformed_parents_start_a_new_trace(spans: InMemorySpanExporter) -> None:
    with tracing.span("receive", SENDER, fresh=True):
        pass
    with tracing.span("policy", "00-not-a-trace-context"):
        pass
    with tracing.span("policy", f"00-{'0' * 32}-00f067aa0ba902b7-01"):  # an all-zero trace id is invalid
        pass
    finished = spans.get_finished_spans()
    assert len(finished) == 3
    for span in finished:
        assert span.parent is None
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" != TRACE


def test_an_unsampled_senders_trace_is_continued_but_not_recorded(spans: InMemorySpanExporter) -> None:
    with tracing.span("receive", f"00-{TRACE}-00f067aa0ba902b7-00") as trace:
        handed_on = trace.traceparent
    assert spans.get_finished_spans() == ()
    assert handed_on is not None
    assert handed_on.startswith(f"00-{TRACE}-")
    assert handed_on.endswith("-00")


def test_an_exception_marks_the_span_failed_by_its_type_only(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="sha256="), tracing.span("verify"):
        raise ValueError("bad signature sha256=deadbeef")
    with tracing.span("dispatch") as trace:
        trace.status(502)
    with tracing.span("dispatch") as trace:
        trace.error("timeout after 2.0s")
    verify, bad_gateway, timeout = spans.get_finished_spans()
    assert (verify.status.status_code, verify.status.description) == (StatusCode.ERROR, "ValueError")
    assert verify.events == ()  # no exception event: its message may quote the request
    assert (bad_gateway.status.status_code, bad_gateway.status.description) == (StatusCode.ERROR, "http 502")
    assert timeout.status.description == "timeout after 2.0s"


def json_lines(run: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in run.getvalue().splitlines()]


def test_log_lines_of_a_request_carry_its_trace_id_tenant_connector_and_event_id() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceFieldsFilter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("before")
        with tracing.logged(SENDER, "acme", "gh") as fields:
            logger.info("verified")
            fields.event_id = "d-1"
            with tracing.logged(None, "acme", "other", "e-2"):
                logger.info("inner")
            logger.info("published", extra={"connector": "acme/gh"})  # a field the call passes wins
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    before, verified, inner, published, after = json_lines(out)
    assert "trace_id" not in before
    assert "trace_id" not in after
    assert (verified["trace_id"], verified["tenant"], verified["connector"], verified["event_id"]) == (
        TRACE,
        "acme",
        "gh",
        None,
    )
    assert (inner["trace_id"], inner["connector"], inner["event_id"]) == (None, "other", "e-2")
    assert (published["trace_id"], published["connector"], published["event_id"]) == (TRACE, "acme/gh", "d-1")


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [(SENDER, TRACE), (None, None), ("00-short", None), (SENDER + "x", None)],
)
def test_trace_id(traceparent: str | None, expected: str | None) -> None:
    assert tracing.trace_id(traceparent) == expected


def test_configure_console_and_otlp_turn_tracing_on() -> None:
    try:
        tracing.configure("console")
        assert tracing.enabled()
        tracing.configure("otlp", "http://127.0.0.1:4318/")
        assert tracing.enabled()
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def test_without_the_extra_tracing_stays_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace.export", None)  # its import now fails
    tracing.configure("otlp", "http://127.0.0.1:4318")
    assert not tracing.enabled()
    assert "pip install 'connector-hub[otel]'" in caplog.text


def test_settings_default_off_and_check_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().tracing, Settings().otlp_endpoint) == ("off", None)
    monkeypatch.setenv("HUB_TRACING", "otlp")
    monkeypatch.setenv("HUB_OTLP_ENDPOINT", "https://collector.example:4318")
    assert (Settings().tracing, Settings().otlp_endpoint) == ("otlp", "https://collector.example:4318")
    with pytest.raises(ValidationError, match="HUB_OTLP_ENDPOINT: an http:// or https:// URL"):
        Settings(otlp_endpoint="collector:4318")
    with pytest.raises(ValidationError, match="tracing"):
        Settings(tracing="jaeger")  # type: ignore[arg-type]


OFF_PROBE = textwrap.dedent(
    """
    import sys

    import redis.asyncio  # redis-py imports OpenTelemetry's metrics API by itself where it is installed

    def otel() -> set[str]:
        return {name for name in sys.modules if name.startswith("opentelemetry")}

    baseline = otel()
    import hub.app.serve, hub.cli, hub.gate.consumers, hub.ingress.handler, hub.poll.run
    from hub.runtime import tracing

    tracing.configure("off", None)
    with tracing.span("receive", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") as trace:
        with tracing.span("publish", event_id="d-1"), tracing.logged(trace.traceparent, "acme", "gh"):
            pass
    assert not tracing.enabled()
    added = sorted(otel() - baseline)
    assert not added, added
    assert "opentelemetry.sdk.trace" not in sys.modules
    print("ok")
    """
)


def test_off_imports_no_opentelemetry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", OFF_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
