"""A tenant cannot point the hub's key fetches at a host of its choosing: a Pub/Sub `jwksUrl` or an SNS
`certificateHosts` entry off the provider's own hosts is refused at apply, naming the field, unless
the operator allows that host (`HUB_KEY_FETCH_ALLOWED_HOSTS`), and nothing is fetched from it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.hub.control.fixtures import AdminApi, ControlUnderTest, HubStarter
from tests.netdoubles import Listener, counting_listener

SERVICE_ACCOUNT = b"pubsub-push@example-project.iam.gserviceaccount.com"
TOPIC = b"arn:aws:sns:eu-west-1:123456789012:orders"
STORE_REF = [{"secretRef": {"source": "store", "name": "sender"}}]


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with counting_listener() as counting:
        yield counting


def keyed_connector(tenant: str, name: str, provider: str, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": name, "tenant": tenant},
        "spec": {"type": "webhook", "provider": provider, "secrets": STORE_REF, "webhook": {"options": options}},
    }


def pubsub(listener: Listener) -> dict[str, Any]:
    options = {"audience": "https://hooks.example.com/a/pubsub", "jwksUrl": f"http://127.0.0.1:{listener.port}/certs"}
    return keyed_connector("a", "pubsub", "google-pubsub", options)


def sns(listener: Listener) -> dict[str, Any]:
    return keyed_connector("a", "sns", "aws-sns", {"certificateHosts": [f"127.0.0.1:{listener.port}"]})


async def test_a_loopback_jwks_url_is_refused_at_apply_naming_the_field(
    control: ControlUnderTest, listener: Listener
) -> None:
    await control.plane.secrets.set("a", "sender", SERVICE_ACCOUNT)
    reply = await control.api.call("PUT", "/v1/connectors/a/pubsub", control.keys["a"], pubsub(listener))

    assert (reply.status, reply.json()["code"]) == (422, "invalid_spec"), reply.body
    [problem] = reply.json()["problems"]
    assert problem["field"] == "spec.webhook.options.jwksUrl"
    assert "127.0.0.1" in problem["message"]
    assert "HUB_KEY_FETCH_ALLOWED_HOSTS" in problem["message"]
    assert await control.plane.specs.connector("a", "pubsub") is None
    assert listener.connections == 0


async def test_a_loopback_certificate_host_is_refused_at_apply_naming_the_entry(
    control: ControlUnderTest, listener: Listener
) -> None:
    await control.plane.secrets.set("a", "sender", TOPIC)
    reply = await control.api.call("PUT", "/v1/connectors/a/sns", control.keys["a"], sns(listener))

    assert (reply.status, reply.json()["code"]) == (422, "invalid_spec"), reply.body
    [problem] = reply.json()["problems"]
    assert problem["field"] == "spec.webhook.options.certificateHosts"
    assert "certificateHosts[0]: 127.0.0.1 " in problem["message"]
    assert "HUB_KEY_FETCH_ALLOWED_HOSTS" in problem["message"]
    assert await control.plane.specs.connector("a", "sns") is None
    assert listener.connections == 0


async def test_a_running_hub_accepts_the_host_only_with_the_operator_setting(
    control: ControlUnderTest, start_hub: HubStarter, listener: Listener
) -> None:
    await control.plane.secrets.set("a", "sender", SERVICE_ACCOUNT)
    plain = await start_hub("plain")
    allowing = await start_hub("allowing", {"HUB_KEY_FETCH_ALLOWED_HOSTS": "127.0.0.1"})
    async with aiohttp.ClientSession() as session:
        refused = await AdminApi(plain.admin_url, session).call(
            "PUT", "/v1/connectors/a/pubsub", control.keys["a"], pubsub(listener)
        )
        assert refused.status == 422, refused.body
        assert [p["field"] for p in refused.json()["problems"]] == ["spec.webhook.options.jwksUrl"]

        accepted = await AdminApi(allowing.admin_url, session).call(
            "PUT", "/v1/connectors/a/pubsub", control.keys["a"], pubsub(listener)
        )
        assert accepted.status == 201, accepted.body
    assert listener.connections == 0  # applying fetches nothing
