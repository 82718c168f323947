"""Refused requests for known connectors are kept on HUB_REJECTED, without credentials, within bounds."""

from __future__ import annotations

import base64
import contextlib

import orjson
import pytest
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from events.streams import REJECTED_RECORD_MAX_BYTES, REJECTED_STREAM
from events.subjects import rejected_subject
from hub.ingress.rejected import RejectedRecord
from schemas.connector import MAX_CAPTURE_BODY_BYTES
from tests.conftest import HubFactory, HubUnderTest, wait_for
from tests.hub.ingress.signing import github_headers
from tests.hub.ingress.test_ingress_edge import raw_post

pytestmark = pytest.mark.integration

GITHUB_SECRET = "rejected-capture github secret"
TOKEN_VALUE = "tok-3f9a1c77e2b54d0e9a8b"
URL_TOKEN_KEY = "rejected-capture url signing key"


def connector(name: str, provider: str, env: str, webhook: str = "{}") -> str:
    return f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: {name}, tenant: acme}}
spec:
  type: webhook
  provider: {provider}
  secrets: [{{name: k1, secretRef: {{source: env, name: {env}}}}}]
  webhook: {webhook}
"""


SPECS = "---".join(
    [
        connector("gh", "github", "CAPTURE_GH_SECRET"),
        connector("gh-small", "github", "CAPTURE_GH_SECRET", "{captureRejected: {maxBodyBytes: 10}}"),
        connector("gh-off", "github", "CAPTURE_GH_SECRET", "{captureRejected: {enabled: false}}"),
        connector("tok", "token", "CAPTURE_TOKEN", "{options: {header: X-Webhook-Token, prefix: ''}}"),
        connector("bearer", "token", "CAPTURE_TOKEN"),
        connector("legacy", "url-token", "CAPTURE_URL_KEY"),
    ]
)
ENV = {"CAPTURE_GH_SECRET": GITHUB_SECRET, "CAPTURE_TOKEN": "the right token", "CAPTURE_URL_KEY": URL_TOKEN_KEY}
BODY = b'{"id": "evt_1", "zen": "keep it logically awesome"}'


async def start(make_hub: HubFactory, **settings: object) -> HubUnderTest:
    return await make_hub(SPECS, env=ENV, **settings)


async def kept(hub: HubUnderTest, name: str) -> list[RawStreamMsg]:
    """The raw messages kept for acme/<name>."""
    state = (await hub.js.stream_info(REJECTED_STREAM)).state
    if not state.messages:
        return []
    subject = rejected_subject("acme", name)
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        with contextlib.suppress(NotFoundError):  # a sequence the per-subject limit removed
            msg = await hub.js.get_msg(REJECTED_STREAM, seq)
            if msg.subject == subject:
                found.append(msg)
    return found


async def kept_count(hub: HubUnderTest, name: str, count: int) -> list[RawStreamMsg]:
    """Wait until `count` records of acme/<name> are stored (they are published without a PubAck)."""

    async def stored() -> bool:
        return len(await kept(hub, name)) >= count

    await wait_for(stored, what=f"{count} records of {name}")
    return await kept(hub, name)


def record_of(msg: RawStreamMsg) -> RejectedRecord:
    assert msg.data is not None
    return RejectedRecord.from_json(msg.data)


async def test_a_bad_signature_is_kept_with_reason_sender_and_headers(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    headers = github_headers(BODY, "not the secret", event="push")
    reply = await hub.post("acme/gh", BODY, headers)
    assert reply.status == 401

    (msg,) = await kept_count(hub, "gh", 1)
    record = record_of(msg)
    assert (record.error, record.reason, record.status) == ("bad_signature", reply.json()["reason"], 401)
    assert record.detail == reply.json()["detail"]
    assert record.remote == "127.0.0.1"
    assert (record.method, record.path) == ("POST", "/hooks/acme/gh")
    kept_headers = dict(record.headers)
    assert kept_headers["X-Hub-Signature-256"] == headers["X-Hub-Signature-256"]  # a MAC reveals no key
    assert kept_headers["X-GitHub-Delivery"] == headers["X-GitHub-Delivery"]
    assert record.body == BODY
    assert record.body_complete


async def test_credential_headers_are_never_kept(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    secret_cookie = "session=cookie-value-0a1b2c"
    for name, headers in (
        ("tok", {"X-Webhook-Token": TOKEN_VALUE, "Cookie": secret_cookie}),
        ("bearer", {"Authorization": f"Bearer {TOKEN_VALUE}", "Proxy-Authorization": f"Basic {TOKEN_VALUE}"}),
    ):
        reply = await hub.post(f"acme/{name}", BODY, headers)
        assert reply.status == 401, reply.body
        (msg,) = await kept_count(hub, name, 1)
        assert msg.data is not None
        assert TOKEN_VALUE.encode() not in msg.data
        assert b"cookie-value" not in msg.data
        record = record_of(msg)
        assert {h.lower() for h in record.withheld} >= {h.lower() for h in headers}
        assert not {h.lower() for h, _ in record.headers} & {h.lower() for h in headers}


async def test_a_url_token_is_kept_out_of_the_path(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    token = "eyJhbGciOi.wrong-token-9c8d7e"
    async with hub.session.post(f"{hub.url}/hooks/acme/legacy?token={token}&source=crm", data=BODY) as response:
        assert response.status == 401
    (msg,) = await kept_count(hub, "legacy", 1)
    assert msg.data is not None
    assert b"wrong-token-9c8d7e" not in msg.data
    record = record_of(msg)
    assert record.path == "/hooks/acme/legacy?source=crm"


async def test_the_body_cap_is_respected(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    reply = await hub.post("acme/gh-small", BODY, github_headers(BODY, "wrong"))
    assert reply.status == 401
    (msg,) = await kept_count(hub, "gh-small", 1)
    record = record_of(msg)
    assert record.body == BODY[:10]
    assert record.body_bytes == len(BODY)
    assert not record.body_complete


async def test_capture_off_and_unknown_connectors_keep_nothing(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    assert (await hub.post("acme/gh-off", BODY, github_headers(BODY, "wrong"))).status == 401
    assert (await hub.post("acme/nobody", BODY, github_headers(BODY, "wrong"))).status == 404
    # a later refusal of a capturing connector is kept: the earlier ones had their turn before it
    assert (await hub.post("acme/gh", BODY, github_headers(BODY, "wrong"))).status == 401
    await kept_count(hub, "gh", 1)
    state = (await hub.js.stream_info(REJECTED_STREAM)).state
    assert state.messages == 1
    assert await kept(hub, "gh-off") == []
    assert await kept(hub, "nobody") == []


async def test_malformed_and_too_large_requests_are_kept(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    garbage = b"{not json"
    assert (await hub.post("acme/gh", garbage, github_headers(garbage, GITHUB_SECRET))).status == 400
    large = b"x" * (1_048_576 + 1)
    assert (await hub.post("acme/gh", large, github_headers(large, GITHUB_SECRET))).status == 413
    first, second = await kept_count(hub, "gh", 2)
    assert (record_of(first).error, record_of(first).body) == ("bad_payload", garbage)
    too_large = record_of(second)
    assert (too_large.status, too_large.body_bytes) == (413, None)  # refused before its body was read


async def test_a_flood_keeps_the_per_connector_bound(make_hub: HubFactory) -> None:
    hub = await start(make_hub, rejected_per_connector=5)
    for _ in range(30):
        assert (await hub.post("acme/gh", BODY, github_headers(BODY, "wrong"))).status == 401
    await hub.nc.flush()
    await kept_count(hub, "gh", 5)
    info = await hub.js.stream_info(REJECTED_STREAM, subjects_filter=rejected_subject("acme", "gh"))
    assert info.state.subjects == {rejected_subject("acme", "gh"): 5}
    metrics = hub.context.metrics.registry
    recorded = metrics.get_sample_value("hub_rejected_recorded_total", {"tenant": "acme", "connector": "gh"})
    dropped = metrics.get_sample_value(
        "hub_rejected_dropped_total", {"tenant": "acme", "connector": "gh", "cause": "rate"}
    )
    assert recorded is not None
    assert dropped is not None
    assert recorded > 5  # more were published than the stream keeps
    assert recorded + dropped == 30  # the rate limit took the rest


def test_the_largest_body_preview_fits_one_record() -> None:
    record = RejectedRecord(
        tenant="t" * 63,
        connector="c" * 63,
        provider="github",
        error="bad_signature",
        reason="no_match",
        detail="d" * 200,
        status=401,
        received_at=0.0,
        remote="127.0.0.1",
        method="POST",
        url="http://h/" + "p" * 2000,
        headers=[("X-H", "v" * (24 * 1024 - 12))],
        withheld=["Authorization"],
        body=b"\xff" * MAX_CAPTURE_BODY_BYTES,
        body_bytes=MAX_CAPTURE_BODY_BYTES,
    )
    encoded = record.to_json()
    assert len(encoded) < REJECTED_RECORD_MAX_BYTES
    assert base64.b64decode(orjson.loads(encoded)["body"]) == record.body
    assert RejectedRecord.from_json(encoded) == record


async def test_header_bytes_that_are_not_utf8_are_kept_replaced(make_hub: HubFactory) -> None:
    hub = await start(make_hub)
    signature = github_headers(BODY, GITHUB_SECRET)["X-Hub-Signature-256"].encode()
    headers = [(b"X-GitHub-Event", b"push\xff"), (b"X-GitHub-Delivery", b"d-1"), (b"X-Hub-Signature-256", signature)]
    assert (await raw_post(hub, "acme/gh", BODY, headers)).status == 400
    (msg,) = await kept_count(hub, "gh", 1)
    assert dict(record_of(msg).headers)["X-GitHub-Event"] == "push\ufffd"
