"""Smoke: an event becomes one invocation and one delivery on the route's subject target."""

from __future__ import annotations

import pytest

from tests.hub.gate.fixtures import GateFactory
from tests.hub.gate.harness import envelope, invocations, publish_event, subscribe_target, until

pytestmark = pytest.mark.integration

SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: UNUSED}}]
  routes:
    - name: deploys
      match: {types: ["github.push"]}
      target: {subject: svc.acme.deploys}
---
apiVersion: hub/v1
kind: Policy
metadata: {name: default, tenant: acme}
spec:
  allowedSubjects: [svc.acme]
  rules:
    - {name: all, effect: allow}
"""


async def test_event_to_delivery(make_gate: GateFactory) -> None:
    gate = await make_gate(SPECS)
    target = await subscribe_target(gate.nc, "svc.acme.deploys")
    event = envelope("acme", "gh", "github.push")
    await publish_event(gate.js, event)
    await until(lambda: len(target.messages) == 1, 10, "delivery")
    assert target.ids() == [event.id]
    (invocation,) = await invocations(gate.js)
    assert invocation.headers is not None
    assert invocation.headers["Nats-Msg-Id"] == f"acme:gh:{event.id}:deploys"
