"""Test harness for the gate: events published as the ingress publishes them, the gate consumers
running in-process or as `connector-hub run` subprocesses, and targets that record what they get.

Everything runs against the real nats-server and valkey-server of `tests.servers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg

from events.envelope import Envelope, rfc3339
from events.streams import AUDIT_STREAM, DLQ_STREAM, EVENTS_STREAM, INVOCATIONS_STREAM
from events.subjects import event_subject
from hub.runtime import natsflush

ROOT = Path(__file__).resolve().parents[3]


def envelope(tenant: str, connector: str, event_type: str, data: Any = None, event_id: str | None = None) -> Envelope:
    """An envelope as the ingress would build it."""
    now = rfc3339(time.time())
    return Envelope(
        id=event_id or uuid.uuid4().hex,
        source=f"hub://{tenant}/{connector}",
        type=event_type,
        time=now,
        data=data if data is not None else {"n": 1},
        hubtenant=tenant,
        hubconnector=connector,
        hubprovider="github",
        hubreceivedat=now,
        hubverified="hmac-sha256",
        hubbodysha256="0" * 64,
    )


async def publish_event(js: JetStreamContext, event: Envelope) -> None:
    """Publish to HUB_EVENTS exactly as the ingress does (subject, headers, Nats-Msg-Id)."""
    headers = event.to_headers() | {"Nats-Msg-Id": f"{event.hubtenant}:{event.hubconnector}:{event.id}"}
    await js.publish(event_subject(event.hubtenant, event.hubconnector, event.type), event.to_json(), headers=headers)


async def stream_messages(js: JetStreamContext, stream: str) -> list[RawStreamMsg]:
    """Every message stored in `stream`, in order."""
    state = (await js.stream_info(stream)).state
    if not state.messages:
        return []
    return [await js.get_msg(stream, seq) for seq in range(state.first_seq, state.last_seq + 1)]


async def invocations(js: JetStreamContext) -> list[RawStreamMsg]:
    return await stream_messages(js, INVOCATIONS_STREAM)


async def dead_letters(js: JetStreamContext) -> list[dict[str, Any]]:
    return [orjson.loads(m.data or b"") for m in await stream_messages(js, DLQ_STREAM)]


SPEC_APPLIES = frozenset({"connector_apply", "policy_apply"})
"""What the hub audits when it stores the spec files at start, as `run` does."""


async def audit_records(js: JetStreamContext) -> list[dict[str, Any]]:
    """The gate's audit records (the control plane's records of storing the spec files aside)."""
    records = [orjson.loads(m.data or b"") for m in await stream_messages(js, AUDIT_STREAM)]
    return [record for record in records if record["action"] not in SPEC_APPLIES]


@dataclass
class SubjectTarget:
    """A core subscriber on a target subject that records each message and when it came."""

    messages: list[Msg] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    async def handler(self, msg: Msg) -> None:
        self.messages.append(msg)
        self.times.append(time.monotonic())

    def ids(self) -> list[str]:
        return [orjson.loads(m.data)["id"] for m in self.messages]


async def subscribe_target(nc: NATS, subject: str) -> SubjectTarget:
    target = SubjectTarget()
    await nc.subscribe(subject, cb=target.handler)
    await natsflush.flush(nc, 5.0)
    return target


@dataclass
class HttpTarget:
    """A loopback HTTP target: answers from `script` (statuses in order, then `then`), records requests
    and the highest number of requests it held at once."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    then: int = 200
    delay_s: float = 0.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    concurrent: int = 0
    max_concurrent: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            body = await request.read()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # the target is slow: that is what is under test
            status = self.script.pop(0) if self.script else self.then
            self.requests.append((dict(request.headers), body))
            return web.Response(status=status)
        finally:
            self.concurrent -= 1

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        """Requests answered 2xx (the target's view of successful deliveries)."""
        return self.requests


class Served(Protocol):
    """A target the harness serves: it answers every request and learns its URL."""

    url: str

    async def handle(self, request: web.Request) -> web.Response: ...


T = TypeVar("T", bound=Served)


@contextlib.asynccontextmanager
async def serving(target: T) -> AsyncIterator[T]:
    """`target` answering every path on a free loopback port until the block ends."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    target.url = f"http://{host}:{port}"
    try:
        yield target
    finally:
        await runner.cleanup()


def http_target(**options: Any) -> contextlib.AbstractAsyncContextManager[HttpTarget]:
    """An HttpTarget listening on a free loopback port until the block ends."""
    return serving(HttpTarget(**options))


@dataclass
class HubProcess:
    """A `connector-hub run` subprocess (gate roles), stopped by its PID."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_hub_process(
    specs: Path,
    nats_url: str,
    redis_url: str,
    data_dir: Path,
    *,
    roles: str = "policy,dispatch",
    env: Mapping[str, str] | None = None,
) -> HubProcess:
    """Start `python -m hub run` against the given servers; it logs JSON to `data_dir/hub.log`.

    `env` adds (or overrides) environment variables of the process, e.g. `HUB_POLL_LEASE_TTL`.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    process_env |= {
        "HUB_NATS_URL": nats_url,
        "HUB_REDIS_URL": redis_url,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_CONNECTORS": str(specs),
        "HUB_HTTP_PORT": "0",
        "HUB_ADMIN_PORT": "0",
        "HUB_LOG_FORMAT": "json",
    }
    process_env |= dict(env or {})
    log_path = data_dir / "hub.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "run", "--role", roles],
            env=process_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return HubProcess(proc, log_path)


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:  # noqa: ASYNC109
    """Wait for a condition (sync or async) with a bounded timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# --- Helpers for the rate-limit and dispatch-outcome tests (appended; the names above are unchanged).


def acme_specs(routes: str, *, extra_policy_rules: str = "") -> str:
    """One connector `acme/gh` with the given routes YAML (indented as list items), and a policy
    allowing 127.0.0.1 (its loopback network granted to the egress guard) and `svc.acme.*` to
    everything but what `extra_policy_rules` denies."""
    return f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: gh, tenant: acme}}
spec:
  type: webhook
  provider: github
  secrets: [{{secretRef: {{source: env, name: UNUSED}}}}]
  routes:
{routes}
---
apiVersion: hub/v1
kind: Policy
metadata: {{name: default, tenant: acme}}
spec:
  allowedSubjects: [svc.acme]
  allowedHosts: ["127.0.0.1"]
  egress: {{allowedNetworks: [127.0.0.0/8]}}
  rules:
{extra_policy_rules}
    - {{name: all, effect: allow}}
"""


POLICY_DURABLE = "hub-policy"
DISPATCH_DURABLE = "hub-dispatch"


@dataclass
class TimedHttpTarget(HttpTarget):
    """An HttpTarget that also records when each request arrived and what it answered, and can add
    headers (e.g. `Retry-After`) to its answers: `reply_headers` are used one per request, in order."""

    reply_headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """When each answered request arrived (monotonic), in the order of `requests` and `statuses`."""
    statuses: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        response = await super().handle(request)
        if self.reply_headers:
            response.headers.update(self.reply_headers.pop(0))
        self.times.append(arrived)
        self.statuses.append(response.status)
        return response

    def keys(self, *, ok_only: bool = False) -> list[str]:
        """The `Idempotency-Key` of every request (of the 2xx-answered ones with `ok_only`), in order."""
        return [
            headers["Idempotency-Key"]
            for (headers, _), status in zip(self.requests, self.statuses, strict=True)
            if not ok_only or 200 <= status < 300
        ]


def timed_http_target(**options: Any) -> contextlib.AbstractAsyncContextManager[TimedHttpTarget]:
    """A TimedHttpTarget listening on a free loopback port until the block ends."""
    return serving(TimedHttpTarget(**options))


async def consumer_caught_up(js: JetStreamContext, stream: str, durable: str) -> bool:
    """Every message stored in `stream` so far was delivered to `durable` and acked (a NAKed-with-delay
    one still counts as waiting).

    Judged by the consumer's ack floor against the stream's last sequence, not by `num_pending`:
    nats-server sends the PubAck before it signals the stream's consumers, from another goroutine
    (`processJetStreamMsg`, `signalConsumersLoop`), so just after a publish a consumer can report
    nothing pending and nothing awaiting an ack (CI once saw it). The ack floor cannot reach a
    sequence before that message is acked."""
    last_stored = (await js.stream_info(stream)).state.last_seq
    info = await js.consumer_info(stream, durable)
    acked_up_to = info.ack_floor.stream_seq if info.ack_floor else 0
    return bool(acked_up_to >= last_stored and not info.num_ack_pending)


async def gate_idle(js: JetStreamContext) -> bool:
    """Both gate consumers have caught up with their streams. Both ack only after their publishes
    (invocations, deliveries, dead letters) are done, so idle means the gate is finished."""
    for stream, durable in ((EVENTS_STREAM, POLICY_DURABLE), (INVOCATIONS_STREAM, DISPATCH_DURABLE)):
        if not await consumer_caught_up(js, stream, durable):
            return False
    return True


async def dead_letter_messages(js: JetStreamContext) -> list[tuple[str, dict[str, Any]]]:
    """Every dead letter with the subject it was published on."""
    return [(m.subject, orjson.loads(m.data or b"")) for m in await stream_messages(js, DLQ_STREAM)]


async def publish_invocation(js: JetStreamContext, route: str, event: Envelope) -> str:
    """Publish an invocation straight to `hub.invocations.<tenant>.<connector>.<route>`, headers as the
    policy consumer sets them; returns its invocation id."""
    invocation_id = f"{event.hubtenant}:{event.hubconnector}:{event.id}:{route}"
    headers = event.to_headers() | {"Hub-Route": route, "Hub-Policy-Rule": "all", "Nats-Msg-Id": invocation_id}
    subject = f"hub.invocations.{event.hubtenant}.{event.hubconnector}.{route}"
    await js.publish(subject, event.to_json(), headers=headers)
    return invocation_id


def sample(registry: Any, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric's current value in a prometheus registry; 0.0 when it has no sample yet."""
    value = registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else float(value)


def hub_log(process: HubProcess) -> str:
    return process.log_path.read_text(errors="replace")


async def wait_until_consuming(js: JetStreamContext, processes: list[HubProcess], timeout: float) -> None:  # noqa: ASYNC109
    """Every process logged "gate consumers started" and each gate consumer has a pull request waiting
    from each process; fails at once (with the log) if a process exited."""

    async def ready() -> bool:
        for process in processes:
            if process.proc.poll() is not None:
                raise AssertionError(f"hub process exited with {process.proc.returncode}:\n{hub_log(process)[-4000:]}")
            if "gate consumers started" not in hub_log(process):
                return False
        for stream, durable in ((EVENTS_STREAM, POLICY_DURABLE), (INVOCATIONS_STREAM, DISPATCH_DURABLE)):
            if (await js.consumer_info(stream, durable)).num_waiting < len(processes):
                return False
        return True

    await until(ready, timeout, f"{len(processes)} hub processes consuming")


async def hub_metric(process: HubProcess, name: str, labels: dict[str, str]) -> float:
    """A sample from a hub process's `/metrics` (its address is in `<data dir>/endpoints.json`); 0.0 if absent."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    record = orjson.loads((process.log_path.parent / "endpoints.json").read_bytes())
    async with aiohttp.ClientSession() as session, session.get(f"{record['admin_url']}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0
