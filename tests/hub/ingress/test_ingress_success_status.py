"""Providers that count only some 2xx codes as delivered get them: Zoom (200/204), Mailgun, Lemon Squeezy,
X, Paddle and Linear (200 only), Jira (200/204) and Intercom (documents 200) would otherwise retry every
delivery the hub answered 202, or disable the endpoint."""

from __future__ import annotations

import time

import pytest

from adapters.base import SigningSecret
from adapters.registry import webhook_adapter
from tests.conftest import HubFactory
from tests.hub.ingress.signing import SecretSpec, connector_doc, specs_yaml

pytestmark = pytest.mark.integration

SECRET = "success-status-secret-0123456789"


@pytest.mark.parametrize("provider", ["zoom", "mailgun", "lemonsqueezy", "x", "paddle", "linear", "intercom", "jira"])
async def test_a_delivery_and_its_duplicate_get_the_status_the_provider_requires(
    make_hub: HubFactory, provider: str
) -> None:
    doc = connector_doc("hooks", provider, [SecretSpec("k1", "SUCCESS_STATUS_SECRET", SECRET)])
    hub = await make_hub(specs_yaml(doc), env={"SUCCESS_STATUS_SECRET": SECRET})
    adapter = webhook_adapter(provider).configure()
    assert (adapter.scheme.accepted_status, adapter.scheme.duplicate_status) == (200, 200)
    now = time.time()
    request = adapter.sign(adapter.sample(now), SigningSecret("k1", SECRET.encode()), now)

    first = await hub.post("acme/hooks", request.body, request.headers)
    again = await hub.post("acme/hooks", request.body, request.headers)  # the provider retrying it
    assert (first.status, first.json()["accepted"]) == (200, len(first.json()["ids"]))
    assert (again.status, again.json()["accepted"]) == (200, 0)
    assert await hub.event_count() == len(first.json()["ids"])


async def test_a_provider_that_takes_any_2xx_keeps_202_and_200(make_hub: HubFactory) -> None:
    doc = connector_doc("hooks", "github", [SecretSpec("k1", "SUCCESS_STATUS_SECRET", SECRET)])
    hub = await make_hub(specs_yaml(doc), env={"SUCCESS_STATUS_SECRET": SECRET})
    adapter = webhook_adapter("github").configure()
    now = time.time()
    request = adapter.sign(adapter.sample(now), SigningSecret("k1", SECRET.encode()), now)
    first = await hub.post("acme/hooks", request.body, request.headers)
    again = await hub.post("acme/hooks", request.body, request.headers)
    assert (first.status, again.status) == (202, 200)
