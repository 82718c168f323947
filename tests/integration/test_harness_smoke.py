"""The harness itself: a signed GitHub delivery through the real ingress lands once in HUB_EVENTS."""

from __future__ import annotations

import time

from adapters.base import SigningSecret
from adapters.webhooks.github import GitHubAdapter
from tests.conftest import HubFactory

GITHUB = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: SMOKE_GH_SECRET}}]
"""


async def test_signed_delivery_lands_once(make_hub: HubFactory) -> None:
    hub = await make_hub(GITHUB, env={"SMOKE_GH_SECRET": "s3cret"})
    adapter = GitHubAdapter.configure()
    request = adapter.sign(adapter.sample(time.time()), SigningSecret("SMOKE_GH_SECRET", b"s3cret"), time.time())
    first = await hub.post("acme/gh", request.body, request.headers)
    again = await hub.post("acme/gh", request.body, request.headers)
    assert (first.status, first.json()["accepted"]) == (202, 1)
    assert (again.status, again.json()["duplicates"]) == (200, 1)
    assert await hub.event_count() == 1
