"""Security finding 3: one tenant's costly route expression must not freeze the hub for everyone.

A real `connector-hub run --role ingress,policy` process gets a signed webhook for a connector whose
routes have a `when` condition and a debounce key that validation admits but that would run for
minutes with plain jmespath. While the event is processed, `/healthz` of that same process keeps
answering fast; both routes are denied by `(condition_error)`, audited, the connector's ordinary
route is still invoked, and the event is acked once, never redelivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from nats.js import JetStreamContext

from events.streams import EVENTS_STREAM
from hub.app.connections import connect_nats
from hub.app.embedded import RunningServer
from tests.conftest import wait_for
from tests.hub.gate.harness import (
    POLICY_DURABLE,
    HubProcess,
    audit_records,
    consumer_caught_up,
    hub_log,
    hub_metric,
    invocations,
    start_hub_process,
)
from tests.hub.ingress.signing import github_headers

pytestmark = pytest.mark.integration

SECRET = "budget-secret"
HEALTH_BOUND_S = 1.0
"""Every `/healthz` answer while the event is processed must come within this. With the unbounded
evaluator the process is busy with the condition for minutes, so the first probe after the webhook
takes far longer."""
LITERAL_100 = "`[" + ",".join(["0"] * 100) + "]`"
COSTLY_WHEN = f"{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?`false`]]]]"
"""Within every shape limit (4 projections, 831 characters): 100**4 filter steps."""
COSTLY_KEY = "length(to_string(" + "|".join(["[" + ",".join(["@"] * 50) + "]"] * 4) + "))"
"""Within every shape limit (4 multi-selects): serializes 50**4 copies of the envelope."""
CONDITION_ERROR = "(condition_error)"

SPECS = f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: gh, tenant: acme}}
spec:
  type: webhook
  provider: github
  secrets: [{{secretRef: {{source: env, name: BUDGET_GH_SECRET}}}}]
  routes:
    - name: costly-when
      match: {{types: ["github.push"], when: "{COSTLY_WHEN}"}}
      target: {{subject: svc.acme.a}}
    - name: costly-key
      match: {{types: ["github.push"]}}
      debounce: {{key: "{COSTLY_KEY}", window: 1s}}
      target: {{subject: svc.acme.b}}
    - name: plain
      match: {{types: ["github.push"], when: "data.ref == 'refs/heads/main'"}}
      target: {{subject: svc.acme.c}}
---
apiVersion: hub/v1
kind: Policy
metadata: {{name: default, tenant: acme}}
spec:
  allowedSubjects: [svc.acme]
  rules:
    - {{name: all, effect: allow}}
"""


@pytest.fixture
def hub(nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path) -> Iterator[HubProcess]:
    """The hub process under test, stopped by its PID afterwards."""
    specs = tmp_path / "specs.yaml"
    specs.write_text(SPECS)
    process = start_hub_process(
        specs,
        nats_server.url,
        valkey_server.url,
        tmp_path / "hub",
        roles="ingress,policy",
        env={"BUDGET_GH_SECRET": SECRET},
    )
    try:
        yield process
    finally:
        process.stop()


async def policy_audits(js: JetStreamContext) -> list[dict[str, Any]]:
    """The policy consumer's audit records (the ingress audits other things on the same stream)."""
    return [r for r in await audit_records(js) if r["action"] == "policy.deny"]


async def probe_health(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, took: list[float]) -> None:
    """Ask `/healthz` back to back until `stop` is set, appending how long each answer took to `took` (an
    unanswered probe counts as twice the bound)."""
    timeout = aiohttp.ClientTimeout(total=2 * HEALTH_BOUND_S)
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with session.get(f"{url}/healthz", timeout=timeout) as response:
                assert response.status == 200
                await response.read()
        except TimeoutError:
            took.append(2 * HEALTH_BOUND_S)
            continue
        took.append(time.monotonic() - started)


async def test_a_costly_condition_is_a_condition_error_and_the_hub_stays_responsive(
    hub: HubProcess, nats_server: RunningServer
) -> None:
    endpoints = hub.log_path.parent / "endpoints.json"

    async def consuming() -> bool:
        if hub.proc.poll() is not None:
            raise AssertionError(f"hub exited with {hub.proc.returncode}:\n{hub_log(hub)[-4000:]}")
        return endpoints.exists() and "gate consumers started" in hub_log(hub)

    await wait_for(consuming, timeout=30, what="the hub process serving and consuming")
    url = orjson.loads(endpoints.read_bytes())["http_url"]
    nc = await connect_nats(nats_server.url)
    js = nc.jetstream()
    try:
        async with aiohttp.ClientSession() as session:
            stop = asyncio.Event()
            took: list[float] = []
            prober = asyncio.create_task(probe_health(session, url, stop, took))
            body = orjson.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}})
            async with session.post(f"{url}/hooks/acme/gh", data=body, headers=github_headers(body, SECRET)) as reply:
                assert reply.status == 202

            async def decided() -> bool:
                slowest = max(took, default=0.0)
                assert slowest < HEALTH_BOUND_S, f"/healthz took {slowest:.2f}s while the event was processed"
                errors = [r for r in await policy_audits(js) if r["detail"]["rule"] == CONDITION_ERROR]
                return len(errors) == 2 and await consumer_caught_up(js, EVENTS_STREAM, POLICY_DURABLE)

            try:
                await wait_for(decided, timeout=30, what="both condition errors audited and the event acked")
            finally:
                stop.set()
                await prober

        assert took, "no /healthz probe ran while the event was processed"
        assert max(took) < HEALTH_BOUND_S, f"slowest /healthz {max(took):.2f}s of {len(took)} probes"

        records = await policy_audits(js)
        denied = sorted((r["detail"]["route"], r["detail"]["reason"].split(" exceeded")[0]) for r in records)
        assert denied == [
            ("costly-key", "condition_error: debounce.key"),
            ("costly-when", "condition_error: match.when"),
        ]
        assert all(r["outcome"] == "denied" and r["tenant"] == "acme" for r in records)
        assert [(m.headers or {}).get("Hub-Route") for m in await invocations(js)] == ["plain"]
        assert (await js.consumer_info(EVENTS_STREAM, POLICY_DURABLE)).num_redelivered == 0
        for route in ("costly-when", "costly-key"):
            labels = {"route": route, "effect": "deny", "rule": CONDITION_ERROR}
            assert await hub_metric(hub, "hub_policy_decisions_total", labels) == 1
    finally:
        await nc.close()
