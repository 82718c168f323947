"""Shopify and Twilio sign neither a timestamp nor their delivery id (`X-Shopify-Webhook-Id`,
`I-Twilio-Idempotency-Token`): a captured request replayed under a new id is refused as a replay
because verification returns the signature bytes, which the hub claims with the events."""

from __future__ import annotations

import time

import pytest

from adapters.base import SigningSecret
from adapters.registry import webhook_adapter
from adapters.signing import with_headers
from tests.conftest import HubFactory
from tests.hub.ingress.signing import SecretSpec, connector_doc, specs_yaml

pytestmark = pytest.mark.integration

SECRET = "unsigned-id-secret"
PUBLIC_URL = "https://hooks.example.com/hooks/acme/tw"
CASES = {
    "shopify": ("X-Shopify-Webhook-Id", {}),
    "twilio": ("I-Twilio-Idempotency-Token", {"publicUrl": PUBLIC_URL}),
}


@pytest.mark.parametrize("provider", CASES)
async def test_a_captured_request_under_a_new_delivery_id_is_refused_as_a_replay(
    make_hub: HubFactory, provider: str
) -> None:
    id_header, options = CASES[provider]
    doc = connector_doc(
        "hooks", provider, [SecretSpec("k1", "UNSIGNED_ID_SECRET", SECRET)], webhook={"options": options}
    )
    hub = await make_hub(specs_yaml(doc), env={"UNSIGNED_ID_SECRET": SECRET})
    adapter = webhook_adapter(provider).configure(options)
    now = time.time()
    request = adapter.sign(adapter.sample(now), SigningSecret("k1", SECRET.encode()), now)
    first = with_headers(request, {id_header: "delivery-1"})
    replayed = with_headers(request, {id_header: "delivery-2"})  # same body and signature, a new id

    assert (await hub.post("acme/hooks", first.body, first.headers)).status == 202
    answer = await hub.post("acme/hooks", replayed.body, replayed.headers)
    assert answer.status == 200
    assert answer.json() == {"accepted": 0, "duplicates": 1, "ids": ["delivery-2"]}
    assert await hub.event_count() == 1
    labels = {"tenant": "acme", "connector": "hooks"}
    assert hub.context.metrics.registry.get_sample_value("hub_replays_refused_total", labels) == 1
