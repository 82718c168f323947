"""Shadow verification mode (onboarding): failures are counted and logged, the event is accepted
unverified; start-up and /readyz warn while any connector is in it; enforce mode is unchanged."""

from __future__ import annotations

import logging

import orjson
import pytest

from tests.conftest import HubFactory
from tests.hub.app.ops import ops_get
from tests.hub.ingress.signing import github_signature

pytestmark = pytest.mark.integration

SECRET = "shadow-secret"
SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: onboarding, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: SHADOW_SECRET}}]
  webhook: {verification: shadow}
---
apiVersion: hub/v1
kind: Connector
metadata: {name: strict, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: SHADOW_SECRET}}]
"""
BODY = b'{"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}}'


def headers(delivery: str, signature: str | None) -> dict[str, str]:
    base = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
    return base | ({"X-Hub-Signature-256": signature} if signature else {})


async def test_shadow_accepts_unverified_and_counts_while_enforce_refuses(
    make_hub: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        hub = await make_hub(SPECS, env={"SHADOW_SECRET": SECRET})
    assert any("acme/onboarding is in SHADOW verification mode" in r.getMessage() for r in caplog.records)

    unsigned = await hub.post("acme/onboarding", BODY, headers("d-unsigned", None))
    forged = await hub.post("acme/onboarding", BODY, headers("d-forged", github_signature(BODY, "wrong")))
    signed = await hub.post("acme/onboarding", BODY, headers("d-signed", github_signature(BODY, SECRET)))
    refused = await hub.post("acme/strict", BODY, headers("d-strict", None))
    assert [unsigned.status, forged.status, signed.status, refused.status] == [202, 202, 202, 401]

    by_id = {orjson.loads(m.data or b"")["id"]: orjson.loads(m.data or b"") for m in await hub.events()}
    assert by_id["d-unsigned"]["hubverified"] == "none"
    assert "hubkeyid" not in by_id["d-unsigned"]
    assert by_id["d-forged"]["hubverified"] == "none"
    assert by_id["d-signed"]["hubverified"] == "hmac-sha256"  # a good signature is still recorded as such
    assert "d-strict" not in by_id

    registry = hub.context.metrics.registry
    labels = {"tenant": "acme", "connector": "onboarding"}
    missing = registry.get_sample_value("hub_shadow_verification_failures_total", labels | {"reason": "missing_header"})
    assert missing == 1
    assert (
        sum(
            s.value
            for metric in registry.collect()
            if metric.name == "hub_shadow_verification_failures"
            for s in metric.samples
            if s.name.endswith("_total")
        )
        == 2
    )
    assert any("shadow mode: verification failed" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text

    ready = await ops_get(hub, "/readyz")
    assert ready.status == 200
    assert ready.json()["warnings"] == ["1 connector(s) in shadow verification mode: unverified events are accepted"]
