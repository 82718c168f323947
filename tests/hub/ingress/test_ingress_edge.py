"""Rules at the edge, through the real ingress: body caps (also inflated and chunked), unknown and
disabled connectors, malformed signature headers, hostile JSON, untrusted event types in subjects,
the GitHub ping handshake, and no redirects. Every refusal is a 4xx, never a 5xx."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from tests.conftest import HubFactory, HubUnderTest, Reply
from tests.hub.ingress.signing import (
    GITHUB,
    HMAC,
    PROVIDERS,
    STANDARD,
    STRIPE,
    TENANT,
    Provider,
    SecretSpec,
    connector_doc,
    github_headers,
    github_signature,
    hmac_headers,
    new_secret,
    provider_param,
    specs_yaml,
    standard_webhooks_signature,
    stripe_signature,
)

pytestmark = pytest.mark.integration

CAP = 1024


async def start(make_hub: HubFactory, provider: Provider, **webhook: Any) -> tuple[HubUnderTest, str]:
    secret = SecretSpec("k1", f"EDGE_{provider.connector.upper()}_SECRET", new_secret(provider.name))
    hub = await make_hub(specs_yaml(provider.doc([secret], **webhook)), env={secret.env: secret.value})
    return hub, secret.value


def assert_error(reply: Reply, status: int, error: str) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body[:300])
    body = reply.json()
    assert body["error"] == error, body
    return body


def padded_github_body(size: int) -> bytes:
    """A valid push payload of exactly `size` bytes."""
    head = b'{"ref":"refs/heads/main","pad":"'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


# --- body caps -------------------------------------------------------------------------------


async def test_body_over_the_cap_is_413_with_content_length(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB, maxBodyBytes=CAP)
    at_cap, over = padded_github_body(CAP), padded_github_body(CAP + 1)

    assert_error(await hub.post(f"{TENANT}/gh", over, github_headers(over, secret)), 413, "too_large")
    huge = padded_github_body(2 * 1024 * 1024)  # a file object: aiohttp warns about large raw bytes
    async with hub.session.post(
        f"{hub.url}/hooks/{TENANT}/gh", data=io.BytesIO(huge), headers=github_headers(huge, secret)
    ) as response:
        assert response.request_info.headers["Content-Length"] == str(len(huge))
        assert_error(Reply(response.status, await response.read(), dict(response.headers)), 413, "too_large")
    assert (await hub.post(f"{TENANT}/gh", at_cap, github_headers(at_cap, secret))).status == 202
    assert await hub.event_count() == 1


async def test_body_over_the_cap_is_413_when_chunked(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB, maxBodyBytes=CAP)

    async def post_chunked(body: bytes) -> Reply:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 100):
                yield body[i : i + 100]

        headers = github_headers(body, secret)
        async with hub.session.post(f"{hub.url}/hooks/{TENANT}/gh", data=chunks(), headers=headers) as response:
            assert "Content-Length" not in response.request_info.headers
            return Reply(response.status, await response.read(), dict(response.headers))

    over = padded_github_body(4 * CAP)
    assert_error(await post_chunked(over), 413, "too_large")
    within = padded_github_body(CAP)
    assert (await post_chunked(within)).status == 202
    assert await hub.event_count() == 1


async def test_gzip_is_capped_after_inflating_and_verified_over_the_inflated_bytes(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB, maxBodyBytes=CAP)
    path = f"{TENANT}/gh"

    bomb_plain = padded_github_body(512 * 1024)
    bomb = gzip.compress(bomb_plain)
    assert len(bomb) < CAP
    headers = github_headers(bomb_plain, secret, **{"Content-Encoding": "gzip"})
    assert_error(await hub.post(path, bomb, headers), 413, "too_large")

    plain = padded_github_body(CAP)
    headers = github_headers(plain, secret, **{"Content-Encoding": "gzip"})
    reply = await hub.post(path, gzip.compress(plain), headers)
    assert reply.status == 202, reply.body
    [message] = await hub.events()
    assert orjson.loads(message.data)["data"] == orjson.loads(plain)

    deflated = padded_github_body(CAP // 2)
    headers = github_headers(deflated, secret, **{"Content-Encoding": "deflate"})
    assert (await hub.post(path, zlib.compress(deflated), headers)).status == 202

    signed_over_compressed = gzip.compress(padded_github_body(CAP // 2))
    headers = github_headers(signed_over_compressed, secret, **{"Content-Encoding": "gzip"})
    assert_error(await hub.post(path, signed_over_compressed, headers), 401, "bad_signature")
    assert await hub.event_count() == 2


GZIPPED_PLAIN = padded_github_body(600)
GZIPPED = gzip.compress(GZIPPED_PLAIN)


def _flip(data: bytes, start: int, end: int) -> bytes:
    return data[:start] + bytes(b ^ 0xFF for b in data[start:end]) + data[end:]


CORRUPT_GZIP = {
    "bad-deflate-stream": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage-not-deflate-data" * 4,
    "no-gzip-magic": b"this is not gzip at all",
    "bad-crc32": _flip(GZIPPED, len(GZIPPED) - 8, len(GZIPPED) - 4),
    "bad-isize": _flip(GZIPPED, len(GZIPPED) - 4, len(GZIPPED)),
    "trailing-garbage": GZIPPED + b"garbage",
    "truncated-mid-stream": GZIPPED[: len(GZIPPED) // 2],
    "truncated-before-trailer": GZIPPED[:-8],
}


@pytest.mark.parametrize("name", list(CORRUPT_GZIP))
async def test_corrupt_gzip_is_400(make_hub: HubFactory, name: str) -> None:
    """Signed over the JSON the sender meant, so only the gzip framing is wrong: 400 bad_payload."""
    hub, secret = await start(make_hub, GITHUB, maxBodyBytes=CAP)
    headers = github_headers(GZIPPED_PLAIN, secret, **{"Content-Encoding": "gzip", "Connection": "close"})
    reply = await hub.post(f"{TENANT}/gh", CORRUPT_GZIP[name], headers)
    assert reply.status == 400, (reply.status, reply.body)
    assert reply.json()["error"] == "bad_payload"
    assert await hub.event_count() == 0


async def test_corrupt_gzip_leaves_the_connection_usable(make_hub: HubFactory) -> None:
    """After a 400 for a corrupt body the next request on the same keep-alive connection is served
    (or the 400 says `Connection: close`, so the client does not reuse it)."""
    hub, secret = await start(make_hub, GITHUB, maxBodyBytes=CAP)
    headers = github_headers(GZIPPED_PLAIN, secret, **{"Content-Encoding": "gzip"})
    reply = await hub.post(f"{TENANT}/gh", CORRUPT_GZIP["bad-crc32"], headers)
    assert reply.status == 400, (reply.status, reply.body)
    fine = GITHUB.signed(secret)
    assert (await hub.post(f"{TENANT}/gh", fine.body, fine.headers)).status == 202


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "bogus", "gzip, gzip"])
async def test_unsupported_content_encoding_is_415(make_hub: HubFactory, encoding: str) -> None:
    """An encoding the ingress does not inflate is refused, never read as if it were plain."""
    hub, secret = await start(make_hub, GITHUB, maxBodyBytes=CAP)
    headers = github_headers(GZIPPED_PLAIN, secret, **{"Content-Encoding": encoding})
    reply = await hub.post(f"{TENANT}/gh", GZIPPED_PLAIN, headers)
    assert_error(reply, 415, "unsupported_encoding")
    assert await hub.event_count() == 0


# --- unknown, disabled, never 3xx --------------------------------------------------------------


async def test_unknown_and_disabled_connectors_are_a_bare_404(make_hub: HubFactory) -> None:
    on = SecretSpec("k1", "EDGE_ON_SECRET", new_secret("github"))
    off = SecretSpec("k1", "EDGE_OFF_SECRET", new_secret("github"))
    hub = await make_hub(
        specs_yaml(
            connector_doc("gh", "github", [on]),
            connector_doc("gh-off", "github", [off], enabled=False),
            connector_doc("gh", "github", [off], tenant="other"),
        ),
        env={on.env: on.value, off.env: off.value},
    )
    body = padded_github_body(200)
    for path, secret in (
        ("acme/nope", on.value),  # unknown connector
        ("nobody/gh", on.value),  # unknown tenant
        ("acme/gh-off", off.value),  # disabled, even validly signed
        ("other/gh-off", off.value),
        ("ACME/gh", on.value),  # names are case-sensitive lowercase
    ):
        reply = await hub.post(path, body, github_headers(body, secret))
        assert reply.status == 404, (path, reply.status)
        assert reply.json() == {"error": "not_found"}, (path, reply.body)
        assert set(reply.headers) & {"Retry-After", "Location"} == set()
    assert await hub.event_count() == 0
    assert (await hub.post("other/gh", body, github_headers(body, off.value))).status == 202


NOT_ROUTES = [
    "/hooks/acme/gh/",
    "/hooks//gh",
    "/hooks/acme//gh",
    "/hooks/acme/gh/extra",
    "/hooks/acme/gh//",
    "/hooks/acme",
    "/hooks/acme/",
    "/hooks/",
    "/hooks",
    "//hooks/acme/gh",
    "/Hooks/acme/gh",
]


async def test_ingest_paths_never_redirect(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB)
    body = padded_github_body(200)
    seen: dict[tuple[str, str], int] = {}
    for path in NOT_ROUTES:
        for method in ("POST", "GET", "PUT", "HEAD"):
            async with hub.session.request(
                method, hub.url + path, data=body, headers=github_headers(body, secret), allow_redirects=False
            ) as response:
                seen[method, path] = response.status
    assert {k: v for k, v in seen.items() if v not in (404, 405)} == {}
    assert await hub.event_count() == 0


# --- malformed signature headers ---------------------------------------------------------------


def github_cases(secret: str, body: bytes) -> dict[str, list[tuple[str, str]]]:
    good = github_signature(body, secret)
    hexsig = good.removeprefix("sha256=")
    h = "X-Hub-Signature-256"
    return {
        "empty": [(h, "")],
        "prefix-only": [(h, "sha256=")],
        "truncated": [(h, good[:-2])],
        "over-long": [(h, good + "00")],
        "wrong-prefix": [(h, "sha1=" + hexsig)],
        "no-prefix": [(h, hexsig)],
        "uppercase-prefix": [(h, "SHA256=" + hexsig)],
        "uppercase-hex": [(h, "sha256=" + hexsig.upper())],
        "non-hex": [(h, "sha256=" + "zz" * 32)],
        "base64-instead-of-hex": [(h, "sha256=" + base64.b64encode(bytes.fromhex(hexsig)).decode())],
        "a-hundred-signatures": [(h, ",".join([good] * 100))],
        "thousands-of-tiny-items": [(h, "sha256=" + ",".join(["a"] * 3000))],
        "duplicated-header": [(h, good), (h, good)],
        "duplicated-header-one-bad": [(h, "sha256=" + "0" * 64), (h, good)],
        "non-ascii": [(h, "sha256=" + "é" * 64)],
    }


def stripe_cases(secret: str, body: bytes) -> dict[str, list[tuple[str, str]]]:
    good = stripe_signature(body, secret)
    t, v1 = good.split(",")
    h = "Stripe-Signature"
    return {
        "empty": [(h, "")],
        "t-only": [(h, t)],
        "v1-only": [(h, v1)],
        "truncated": [(h, good[:-2])],
        "over-long": [(h, good + "00")],
        "wrong-scheme": [(h, f"{t},v0={v1[3:]}")],
        "non-hex": [(h, f"{t},v1={'zz' * 32}")],
        "uppercase-hex": [(h, f"{t},v1={v1[3:].upper()}")],
        "non-numeric-t": [(h, f"t=abc,{v1}")],
        "negative-t": [(h, f"t=-1,{v1}")],
        "huge-t": [(h, f"t={'9' * 400},{v1}")],
        "two-t": [(h, f"{t},{t},{v1}")],
        "no-equals": [(h, "garbage")],
        "empty-items": [(h, ",,,,")],
        "a-hundred-signatures": [(h, t + "," + ",".join([v1] * 100))],
        "thousands-of-tiny-items": [(h, t + "," + ",".join(["v1="] * 2000))],
        "duplicated-header": [(h, good), (h, good)],
        "non-ascii": [(h, f"{t},v1={'é' * 64}")],
    }


def standard_cases(secret: str, body: bytes, msg_id: str, timestamp: str) -> dict[str, list[tuple[str, str]]]:
    good = standard_webhooks_signature(body, secret, msg_id, int(timestamp))
    b64 = good.removeprefix("v1,")
    h = "webhook-signature"
    return {
        "empty": [(h, "")],
        "version-only": [(h, "v1,")],
        "truncated": [(h, good[:-4])],
        "over-long": [(h, good[:-1] + "AAAA=")],
        "unpadded": [(h, good.rstrip("="))],
        "wrong-version": [(h, "v2," + b64)],
        "asymmetric-only": [(h, "v1a," + b64)],
        "no-comma": [(h, "v1" + b64)],
        "non-base64": [(h, "v1," + "!" * 44)],
        "hex-instead-of-base64": [(h, "v1," + base64.b64decode(b64).hex())],
        "a-hundred-signatures": [(h, " ".join([good] * 100))],
        "thousands-of-tiny-items": [(h, " ".join(["v1,"] * 2000))],
        "duplicated-header": [(h, good), (h, good)],
        "non-ascii": [(h, "v1," + "é" * 44)],
    }


def malformed_cases(provider: Provider, secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    if provider is GITHUB:
        return github_cases(secret, body)
    if provider is STRIPE:
        return stripe_cases(secret, body)
    return standard_cases(secret, body, headers["webhook-id"], headers["webhook-timestamp"])


_SAMPLE = {"webhook-id": "msg_1", "webhook-timestamp": "1"}
MALFORMED = [
    pytest.param(provider, name, id=f"{provider.name}-{name}")
    for provider in (GITHUB, STRIPE, STANDARD)
    for name in malformed_cases(provider, new_secret(provider.name), _SAMPLE, b"{}")
]


@pytest.mark.parametrize(("provider", "case"), MALFORMED)
async def test_malformed_signature_header_is_401_never_5xx(make_hub: HubFactory, provider: Provider, case: str) -> None:
    hub, secret = await start(make_hub, provider)
    path = f"{TENANT}/{provider.connector}"
    delivery = provider.signed(secret)
    base = [(k, v) for k, v in delivery.headers.items() if k.lower() != provider.signature_header.lower()]
    signature_headers = malformed_cases(provider, secret, delivery.headers, delivery.body)[case]

    reply = await hub.post(path, delivery.body, base + signature_headers)

    body = assert_error(reply, 401, "bad_signature")
    assert body["reason"] in {
        "malformed_signature",
        "duplicate_header",
        "too_many_signatures",
        "unsupported_scheme",
    }, body
    assert await hub.event_count() == 0
    assert await dedupe_keys(hub) == []
    assert (await hub.post(path, delivery.body, delivery.headers)).status == 202


@pytest.mark.parametrize("provider", **provider_param((GITHUB, STRIPE, STANDARD)))
async def test_signature_header_beyond_the_header_size_limit_is_4xx(make_hub: HubFactory, provider: Provider) -> None:
    hub, secret = await start(make_hub, provider)
    delivery = provider.signed(secret)
    signature = delivery.headers[provider.signature_header]
    sep = " " if provider is STANDARD else ","
    headers = {**delivery.headers, provider.signature_header: sep.join([signature] * 400)}
    reply = await hub.post(f"{TENANT}/{provider.connector}", delivery.body, headers)
    assert 400 <= reply.status < 500, (reply.status, reply.body[:200])
    assert await hub.event_count() == 0


# --- hostile JSON, validly signed --------------------------------------------------------------

HOSTILE = {
    "deep-nesting": b"[" * 50_000 + b"]" * 50_000,
    "deep-object-nesting": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "invalid-utf8": b'{"id":"evt_\xff\xfe","type":"x\xc3\x28","action":"\xed\xa0\x80"}',
    "lone-surrogate-escape": b'{"id":"evt_1","type":"a","action":"\\ud800"}',
    "nan": b'{"id":"evt_nan","type":"invoice.paid","amount":NaN}',
    "infinity": b'{"id":"evt_inf","type":"invoice.paid","amount":Infinity}',
    "1e999": b'{"id":"evt_big","type":"invoice.paid","amount":1e999}',
    "huge-number": b'{"id":"evt_huge","type":"invoice.paid","amount":' + b"9" * 5_000 + b"}",
    "array-not-object": b'[{"id":"evt_arr","type":"invoice.paid"}]',
    "string-not-object": b'"evt_str"',
    "number-not-object": b"42",
    "null": b"null",
    "empty-body": b"",
    "whitespace-only": b" \n\t ",
    "truncated": b'{"id":"evt_trunc","type":"invoice.paid"',
    "trailing-garbage": b'{"id":"evt_tail","type":"invoice.paid"} {"x":1}',
    "bom-prefixed": b'\xef\xbb\xbf{"id":"evt_bom","type":"invoice.paid"}',
    "nul-bytes": b'{"id":"evt_nul","type":"invoice.paid"}\x00',
}


@pytest.mark.parametrize("provider", **provider_param())
async def test_hostile_json_is_400_bad_payload_and_publishes_nothing(make_hub: HubFactory, provider: Provider) -> None:
    hub, secret = await start(make_hub, provider)
    wrong: dict[str, tuple[int, bytes]] = {}
    for name, body in HOSTILE.items():
        reply = await hub.post(
            f"{TENANT}/{provider.connector}", body, provider.headers(body, secret, event_id=provider.new_id())
        )
        if reply.status != 400 or reply.json().get("error") != "bad_payload":
            wrong[name] = (reply.status, reply.body[:200])
    assert wrong == {}, wrong
    assert await hub.event_count() == 0
    assert await dedupe_keys(hub) == []  # refused before any dedupe claim


# --- untrusted event types ---------------------------------------------------------------------

LONG = "e" * 5_000
GITHUB_EVENTS = ["*", ">", "a.b.c", "x y", LONG, "...", ".", "a..b", "hub.events.other.gh.push", "a.*.>", "é"]
ACTIONS = ["*", ">", "a.b.c", "x\r\ny", "line\nbreak", "", " ", LONG, "." * 40, "a." * 30, "\x00\x7f", "ünï"]


def check_subject(subject: str, prefix: str) -> None:
    assert subject.startswith(prefix), subject
    tokens = subject.split(".")
    assert all(tokens), subject
    assert not any(t in ("*", ">") or "*" in t or ">" in t for t in tokens), subject
    assert not any(c.isspace() or ord(c) < 0x20 or ord(c) > 0x7E for c in subject), subject
    assert len(subject) <= 1024, len(subject)


async def test_untrusted_event_types_never_escape_the_connector_subject(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB)
    prefix = f"hub.events.{TENANT}.gh."
    sent: dict[str, str] = {}  # delivery id -> expected envelope type
    for event in GITHUB_EVENTS:
        delivery = str(uuid.uuid4())
        # each body differs, as GitHub's do: the same signed body again would be refused as a replay
        body = orjson.dumps({"zen": "Keep it logically awesome.", "hook_id": delivery})
        reply = await hub.post(f"{TENANT}/gh", body, github_headers(body, secret, event=event, delivery=delivery))
        assert reply.status == 202, (event[:50], reply.status, reply.body[:200])
        sent[delivery] = f"github.{event}"
    for action in ACTIONS:
        body = orjson.dumps({"action": action})
        delivery = str(uuid.uuid4())
        reply = await hub.post(f"{TENANT}/gh", body, github_headers(body, secret, event="issues", delivery=delivery))
        assert reply.status == 202, (action[:50], reply.status, reply.body[:200])
        sent[delivery] = f"github.issues.{action}" if action else "github.issues"

    messages = await hub.events()
    assert len(messages) == len(sent)
    for message in messages:
        check_subject(message.subject, prefix)
        envelope = orjson.loads(message.data)
        assert envelope["type"] == sent[envelope["id"]]
        assert unquote((message.headers or {})["ce-type"]) == envelope["type"]


async def test_hmac_type_from_the_body_is_sanitized_in_the_subject(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, HMAC)
    types = ["*", ">", "a.b.c", "x y", "x\r\ny", LONG]
    for event_type in types:
        body = orjson.dumps({"type": event_type})
        reply = await hub.post(f"{TENANT}/hm", body, hmac_headers(body, secret))
        assert reply.status == 202, (event_type[:50], reply.status, reply.body[:200])
    messages = await hub.events()
    assert [orjson.loads(m.data)["type"] for m in messages] == [f"acme.{t}" for t in types]
    for message in messages:
        check_subject(message.subject, f"hub.events.{TENANT}.hm.")


# --- handshake ---------------------------------------------------------------------------------


async def test_github_ping_is_answered_and_publishes_nothing(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB)
    body = orjson.dumps({"zen": "Design for failure.", "hook_id": 292430182, "hook": {"type": "Repository"}})

    reply = await hub.post(f"{TENANT}/gh", body, github_headers(body, secret, event="ping"))
    assert reply.status == 200, reply.body
    assert reply.json() == {"handshake": "ping"}

    unsigned = {k: v for k, v in github_headers(body, secret, event="ping").items() if k != "X-Hub-Signature-256"}
    assert_error(await hub.post(f"{TENANT}/gh", body, unsigned), 401, "bad_signature")
    wrong = github_headers(body, new_secret("github"), event="ping")
    assert_error(await hub.post(f"{TENANT}/gh", body, wrong), 401, "bad_signature")

    assert await hub.event_count() == 0
    assert await dedupe_keys(hub) == []


# --- the body cap comes before verification, for every provider ------------------------------


@pytest.mark.parametrize("provider", **provider_param(PROVIDERS))
async def test_signed_but_over_the_cap_is_413_before_verification(make_hub: HubFactory, provider: Provider) -> None:
    hub, secret = await start(make_hub, provider, maxBodyBytes=CAP)
    body = orjson.dumps({"id": "evt_big", "type": "invoice.paid", "pad": "x" * (2 * CAP)})
    headers = provider.headers(body, secret, event_id=provider.new_id(), timestamp=int(time.time()))
    assert_error(await hub.post(f"{TENANT}/{provider.connector}", body, headers), 413, "too_large")
    assert await hub.event_count() == 0


# --- raw header bytes that are not UTF-8 -------------------------------------------------------


async def raw_post(hub: HubUnderTest, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Reply:
    """POST with header bytes as given (aiohttp's client only sends UTF-8 text headers)."""
    host, port = hub.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = [f"POST /hooks/{path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
        lines = [line.encode() for line in head] + [b"Connection: close"] + [k + b": " + v for k, v in headers]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return Reply(int(status_line.split()[1]), payload, {})


async def test_non_utf8_header_bytes_are_never_a_5xx(make_hub: HubFactory) -> None:
    """aiohttp hands non-UTF-8 header bytes over as lone surrogates; a validly signed GitHub body
    with such an `X-GitHub-Event` (the header is not signed) must be refused or published cleanly."""
    hub, secret = await start(make_hub, GITHUB)
    body = b'{"action":"opened","repository":{"full_name":"octo-org/hello-world"}}'
    signature = github_signature(body, secret).encode()
    cases = {
        "event": [(b"X-GitHub-Event", b"push\xff"), (b"X-GitHub-Delivery", b"d-event")],
        "event-latin1": [(b"X-GitHub-Event", b"caf\xe9"), (b"X-GitHub-Delivery", b"d-latin1")],
        "delivery": [(b"X-GitHub-Event", b"push"), (b"X-GitHub-Delivery", b"d-\xff\xfe")],
    }
    results = {}
    for name, headers in cases.items():
        reply = await raw_post(hub, f"{TENANT}/gh", body, [*headers, (b"X-Hub-Signature-256", signature)])
        results[name] = reply.status
    bad_signature = await raw_post(
        hub, f"{TENANT}/gh", body, [(b"X-GitHub-Event", b"push"), (b"X-Hub-Signature-256", b"sha256=" + b"\xff" * 64)]
    )
    results["signature"] = bad_signature.status

    # Header text that is not UTF-8 is refused where it is read: 400 invalid_header, 401 for the signature.
    assert results == {"event": 400, "event-latin1": 400, "delivery": 400, "signature": 401}, results
    for message in await hub.events():
        envelope = orjson.loads(message.data)
        assert envelope["type"].startswith("github.")
        check_subject(message.subject, f"hub.events.{TENANT}.gh.")
    for key in await hub.redis.keys("dd:*"):  # no claim is left held by a failed request
        assert await hub.redis.get(key) == b"done"


UNTRUSTED_IDS = ["x y", "*", ">", "a" * 5_000, "é", "id:with:colons", "dd:acme:gh:x", "tab\there", "%00"]


async def test_untrusted_delivery_ids_are_safe_keys_and_still_deduplicated(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB)
    for delivery_id in UNTRUSTED_IDS:
        body = orjson.dumps({"ref": "refs/heads/main", "n": delivery_id[:10]})
        headers = github_headers(body, secret, delivery=delivery_id)
        first = await hub.post(f"{TENANT}/gh", body, headers)
        again = await hub.post(f"{TENANT}/gh", body, headers)
        assert (first.status, again.status) == (202, 200), (delivery_id[:20], first.body, again.body)
        assert first.json()["ids"] == again.json()["ids"]

    messages = await hub.events()
    assert len(messages) == len(UNTRUSTED_IDS)
    for message in messages:
        event_id = orjson.loads(message.data)["id"]
        assert 1 <= len(event_id) <= 200
        assert all(0x21 <= ord(c) <= 0x7E for c in event_id), event_id
        assert (message.headers or {})["Nats-Msg-Id"] == f"{TENANT}:gh:{event_id}"
        assert await hub.redis.get(f"dd:{TENANT}:gh:{event_id}") == b"done"


async def dedupe_keys(hub: HubUnderTest) -> list[bytes]:
    """Every Valkey key but the per-minute request counts (hub/control/rates.py), which refusals add to."""
    return [key async for key in hub.redis.scan_iter() if not key.startswith(b"rates:")]
