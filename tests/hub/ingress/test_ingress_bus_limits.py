"""A body the spec allows but the NATS server cannot carry is a 413, never a 500."""

from __future__ import annotations

import time

import orjson
import pytest

from adapters.base import SigningSecret, TestRequest
from adapters.webhooks.github import GitHubAdapter
from tests.conftest import HubFactory

pytestmark = pytest.mark.integration

BIG_BODY_GITHUB = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: BUS_LIMIT_SECRET}}]
  webhook: {maxBodyBytes: 16777216}
"""


async def test_envelope_over_nats_max_payload_is_413(make_hub: HubFactory) -> None:
    hub = await make_hub(BIG_BODY_GITHUB, env={"BUS_LIMIT_SECRET": "s3cret"})
    adapter = GitHubAdapter.configure()
    sample = adapter.sample(time.time())
    body = orjson.dumps({"action": "opened", "blob": "x" * (hub.nc.max_payload + 1024)})
    signed = adapter.sign(TestRequest(sample.headers, body), SigningSecret("BUS_LIMIT_SECRET", b"s3cret"), time.time())

    reply = await hub.post("acme/gh", signed.body, signed.headers)

    assert (reply.status, reply.json()["reason"]) == (413, "too_large_for_bus")
    assert await hub.event_count() == 0
    claims = [key async for key in hub.redis.scan_iter("dd:acme:gh:*")]
    assert claims == []  # the claim was released: a smaller retry is not blocked
