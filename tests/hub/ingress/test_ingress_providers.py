"""Each provider through the real ingress: a valid delivery lands once with its provenance; bad
signatures, stale or future timestamps and other connectors' secrets are refused with 401."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from tests.conftest import HubFactory, HubUnderTest, Reply
from tests.hub.ingress.signing import (
    GITHUB,
    HMAC,
    TENANT,
    TIMESTAMPED,
    Provider,
    SecretSpec,
    connector_doc,
    new_secret,
    provider_param,
    specs_yaml,
)

pytestmark = pytest.mark.integration

ATTRIBUTES = ("id", "source", "type", "specversion", "hubtenant", "hubconnector", "hubprovider", "hubverified")


async def start(make_hub: HubFactory, provider: Provider, *key_ids: str, **webhook: Any) -> tuple[HubUnderTest, dict]:
    """A hub with one connector of `provider` whose secrets are named `key_ids` (default one, `k1`)."""
    specs = [
        SecretSpec(k, f"SECRET_{provider.connector.upper()}_{k.upper()}", new_secret(provider.name))
        for k in key_ids or ("k1",)
    ]
    hub = await make_hub(specs_yaml(provider.doc(specs, **webhook)), env={s.env: s.value for s in specs})
    return hub, {s.key_id: s.value for s in specs}


def assert_refused(reply: Reply, error: str, reason: str | None = None) -> None:
    assert reply.status == 401, (reply.status, reply.body)
    body = reply.json()
    assert body["error"] == error, body
    if reason is not None:
        assert body["reason"] == reason, body


@pytest.mark.parametrize("provider", **provider_param())
async def test_valid_delivery_lands_once_with_provenance(make_hub: HubFactory, provider: Provider) -> None:
    hub, secrets = await start(make_hub, provider)
    delivery = provider.signed(secrets["k1"])

    reply = await hub.post(f"{TENANT}/{provider.connector}", delivery.body, delivery.headers)

    assert reply.status == 202, reply.body
    assert reply.json() == {"accepted": 1, "duplicates": 0, "ids": [delivery.event_id]}
    [message] = await hub.events()
    envelope = orjson.loads(message.data)
    expected = {
        "specversion": "1.0",
        "id": delivery.event_id,
        "source": f"hub://{TENANT}/{provider.connector}",
        "type": provider.expected_type,
        "hubtenant": TENANT,
        "hubconnector": provider.connector,
        "hubprovider": provider.name,
        "hubverified": "hmac-sha256",
        "hubkeyid": "k1",
        "hubbodysha256": hashlib.sha256(delivery.body).hexdigest(),
        "datacontenttype": "application/json",
    }
    assert {k: envelope.get(k) for k in expected} == expected
    assert envelope["data"] == orjson.loads(delivery.body)
    assert envelope["hubreceivedat"].endswith("Z")
    assert envelope["traceparent"].startswith("00-")
    assert message.subject.startswith(f"hub.events.{TENANT}.{provider.connector}.")
    headers = message.headers or {}
    assert headers["Nats-Msg-Id"] == f"{TENANT}:{provider.connector}:{delivery.event_id}"
    ce = {k[3:]: unquote(v) for k, v in headers.items() if k.lower().startswith("ce-")}
    assert {k: ce.get(k) for k in expected} == expected
    assert {k: ce[k] for k in ATTRIBUTES} == {k: envelope[k] for k in ATTRIBUTES}


@pytest.mark.parametrize("provider", **provider_param())
async def test_bad_signatures_are_401_with_a_reason(make_hub: HubFactory, provider: Provider) -> None:
    hub, secrets = await start(make_hub, provider)
    path = f"{TENANT}/{provider.connector}"

    delivery = provider.signed(secrets["k1"])
    tampered = delivery.body.replace(b"{", b'{"injected":true,', 1)
    assert_refused(await hub.post(path, tampered, delivery.headers), "bad_signature", "no_match")

    wrong = provider.signed(new_secret(provider.name))
    assert_refused(await hub.post(path, wrong.body, wrong.headers), "bad_signature", "no_match")

    missing = {k: v for k, v in delivery.headers.items() if k.lower() != provider.signature_header.lower()}
    assert_refused(await hub.post(path, delivery.body, missing), "bad_signature", "missing_header")

    assert await hub.event_count() == 0
    # The untouched delivery still goes through afterwards: the refusals held nothing.
    assert (await hub.post(path, delivery.body, delivery.headers)).status == 202


@pytest.mark.parametrize("provider", **provider_param(TIMESTAMPED))
async def test_timestamps_outside_the_replay_window_are_refused(make_hub: HubFactory, provider: Provider) -> None:
    hub, secrets = await start(make_hub, provider, replayWindow="300s")
    path = f"{TENANT}/{provider.connector}"
    now = int(time.time())

    stale = provider.signed(secrets["k1"], timestamp=now - 301 - 5)
    reply = await hub.post(path, stale.body, stale.headers)
    assert_refused(reply, "replay_window", "timestamp_too_old")

    future = provider.signed(secrets["k1"], timestamp=now + 301 + 5)
    assert_refused(await hub.post(path, future.body, future.headers), "replay_window", "timestamp_in_future")

    inside = provider.signed(secrets["k1"], timestamp=now - 240)
    assert (await hub.post(path, inside.body, inside.headers)).status == 202
    assert await hub.event_count() == 1


@pytest.mark.parametrize("provider", **provider_param())
async def test_rotation_accepts_every_listed_secret_and_records_which(make_hub: HubFactory, provider: Provider) -> None:
    hub, secrets = await start(make_hub, provider, "old", "new")
    path = f"{TENANT}/{provider.connector}"

    for key_id in ("old", "new"):
        delivery = provider.signed(secrets[key_id])
        reply = await hub.post(path, delivery.body, delivery.headers)
        assert reply.status == 202, (key_id, reply.body)

    messages = await hub.events()
    assert [orjson.loads(m.data)["hubkeyid"] for m in messages] == ["old", "new"]
    for message in messages:  # the key id names the secret, never carries its value
        assert not any(value.encode() in message.data for value in secrets.values())


@pytest.mark.parametrize("provider", **provider_param())
async def test_another_connectors_secret_is_never_accepted(make_hub: HubFactory, provider: Provider) -> None:
    a = SecretSpec("a-key", f"SECRET_{provider.connector.upper()}_A", new_secret(provider.name))
    b = SecretSpec("b-key", f"SECRET_{provider.connector.upper()}_B", new_secret(provider.name))
    hub = await make_hub(
        specs_yaml(provider.doc([a], name="conn-a"), provider.doc([b], name="conn-b")),
        env={a.env: a.value, b.env: b.value},
    )

    for_a = provider.signed(a.value)
    assert_refused(await hub.post(f"{TENANT}/conn-b", for_a.body, for_a.headers), "bad_signature", "no_match")
    for_b = provider.signed(b.value)
    assert_refused(await hub.post(f"{TENANT}/conn-a", for_b.body, for_b.headers), "bad_signature", "no_match")
    assert await hub.event_count() == 0

    assert (await hub.post(f"{TENANT}/conn-a", for_a.body, for_a.headers)).status == 202
    [message] = await hub.events()
    assert orjson.loads(message.data)["hubkeyid"] == "a-key"
    assert message.subject.startswith(f"hub.events.{TENANT}.conn-a.")


async def test_github_legacy_sha1_signature_alone_is_not_enough(make_hub: HubFactory) -> None:
    """No downgrade: a valid `X-Hub-Signature` (SHA-1) without the SHA-256 header is refused."""
    hub, secrets = await start(make_hub, GITHUB)
    delivery = GITHUB.signed(secrets["k1"])
    headers = {k: v for k, v in delivery.headers.items() if k != "X-Hub-Signature-256"}
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(secrets["k1"].encode(), delivery.body, "sha1").hexdigest()
    assert_refused(await hub.post(f"{TENANT}/gh", delivery.body, headers), "bad_signature", "missing_header")
    assert await hub.event_count() == 0


async def test_hmac_millisecond_timestamps_use_the_same_window(make_hub: HubFactory) -> None:
    options = {**HMAC.options, "timestampUnit": "ms"}
    secret = SecretSpec("k1", "HMAC_MS_SECRET", new_secret("hmac"))
    doc = connector_doc("hm-ms", "hmac", [secret], webhook={"replayWindow": "60s", "options": options})
    hub = await make_hub(specs_yaml(doc), env={secret.env: secret.value})

    def signed(at_ms: int) -> tuple[bytes, dict[str, str]]:
        request_id = str(uuid.uuid4())
        body = orjson.dumps({"type": "order.created", "id": request_id})
        mac = hmac.new(secret.value.encode(), f"{request_id}.{at_ms}.".encode() + body, hashlib.sha256).hexdigest()
        headers = {"X-Request-Id": request_id, "X-Timestamp": str(at_ms), "X-Signature": "sha256=" + mac}
        return body, headers

    now_ms = int(time.time() * 1000)
    assert_refused(await hub.post(f"{TENANT}/hm-ms", *signed(now_ms - 65_000)), "replay_window", "timestamp_too_old")
    assert_refused(await hub.post(f"{TENANT}/hm-ms", *signed(now_ms + 65_000)), "replay_window", "timestamp_in_future")
    # Seconds where milliseconds are expected is 1970: far outside the window, never "close enough".
    assert_refused(await hub.post(f"{TENANT}/hm-ms", *signed(now_ms // 1000)), "replay_window", "timestamp_too_old")
    reply = await hub.post(f"{TENANT}/hm-ms", *signed(now_ms - 30_000))
    assert reply.status == 202, reply.body
    assert await hub.event_count() == 1
