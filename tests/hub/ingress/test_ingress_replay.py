"""Where the provider signs no timestamp (GitHub) and not its delivery id either, a captured request
replayed under a new delivery id is a duplicate: the signature bytes are remembered with the ids."""

from __future__ import annotations

import pytest

from tests.conftest import HubFactory
from tests.hub.ingress.signing import github_signature

pytestmark = pytest.mark.integration

SECRET = "replay-secret"
SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: REPLAY_SECRET}}]
"""
BODY = b'{"ref": "refs/heads/main", "after": "1a2b", "repository": {"full_name": "acme/app"}}'


def headers(delivery: str, body: bytes = BODY) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": github_signature(body, SECRET),
    }


async def test_a_captured_request_under_a_new_delivery_id_is_not_published_again(make_hub: HubFactory) -> None:
    hub = await make_hub(SPECS, env={"REPLAY_SECRET": SECRET})
    first = await hub.post("acme/gh", BODY, headers("delivery-1"))
    replayed = await hub.post("acme/gh", BODY, headers("delivery-2"))  # same bytes, same signature, new id
    assert (first.status, replayed.status) == (202, 200)
    assert replayed.json() == {"accepted": 0, "duplicates": 1, "ids": ["delivery-2"]}
    assert await hub.event_count() == 1
    assert (
        hub.context.metrics.registry.get_sample_value(
            "hub_replays_refused_total", {"tenant": "acme", "connector": "gh"}
        )
        == 1
    )

    other = BODY.replace(b"1a2b", b"3c4d")  # a different event is signed differently: accepted
    assert (await hub.post("acme/gh", other, headers("delivery-3", other))).status == 202
    assert await hub.event_count() == 2
    # the original delivery retried by GitHub is still the ordinary duplicate it always was
    assert (await hub.post("acme/gh", BODY, headers("delivery-1"))).status == 200
    assert await hub.event_count() == 2


async def test_only_a_signature_seen_under_another_id_counts_as_a_refused_replay(make_hub: HubFactory) -> None:
    hub = await make_hub(SPECS, env={"REPLAY_SECRET": SECRET})

    def refused() -> float:
        labels = {"tenant": "acme", "connector": "gh"}
        return hub.context.metrics.registry.get_sample_value("hub_replays_refused_total", labels) or 0.0

    assert (await hub.post("acme/gh", BODY, headers("delivery-1"))).status == 202
    for _ in range(3):  # GitHub retrying the same delivery: ordinary duplicates, no replay
        assert (await hub.post("acme/gh", BODY, headers("delivery-1"))).status == 200
    assert refused() == 0
    assert (await hub.post("acme/gh", BODY, headers("delivery-9"))).status == 200  # the same bytes, a new id
    assert refused() == 1
