"""One delivery attempt to a real HTTP server (binary mode, outcome classes) or a real NATS subject."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import nats
import orjson
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from events.envelope import Envelope
from hub.app.embedded import RunningServer
from hub.gate.targets import Delivered, Failed, HttpDispatcher, SubjectDispatcher, classify
from schemas.connector import HttpTarget
from schemas.policy import PolicyEgress

pytestmark = pytest.mark.integration

DATA = {"ref": "refs/heads/main", "commits": [{"id": "c1", "message": "fix: ünïcode"}]}
ATTRIBUTES = {  # the plain-ASCII attributes, which travel as ce-* headers unchanged
    "id": "d-1",
    "source": "hub://acme/gh-acme",
    "type": "github.push",
    "time": "2024-05-01T12:00:00.000Z",
    "hubtenant": "acme",
    "hubconnector": "gh-acme",
    "hubprovider": "github",
    "hubreceivedat": "2024-05-01T12:00:01.250Z",
    "hubverified": "hmac-sha256",
    "hubbodysha256": "ab" * 32,
}
ENVELOPE = Envelope(**ATTRIBUTES, subject="Zürich office", data=DATA)
BODY = ENVELOPE.to_json()
LOOPBACK = PolicyEgress(allowedNetworks=["127.0.0.0/8"])
"""The targets here listen on loopback: the tenant's Policy must grant it."""


@dataclass
class Target:
    """A local HTTP server: `/status/<code>` answers that code; `/hang` waits for `release`."""

    url: str
    requests: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hanging: asyncio.Event = field(default_factory=asyncio.Event)

    def http(self, path: str, **options: Any) -> HttpTarget:
        return HttpTarget.model_validate({"url": f"{self.url}{path}", **options})


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    state = Target(url="")

    async def status(request: web.Request) -> web.Response:
        state.requests.append(request)
        state.bodies.append(await request.read())
        headers = {"Retry-After": request.query["retry_after"]} if "retry_after" in request.query else {}
        code = int(request.match_info["code"])
        if 300 <= code < 400:
            headers["Location"] = "/status/200"
        return web.Response(status=code, headers=headers, body=b"secret details " * 100)

    async def hang(request: web.Request) -> web.Response:
        state.hanging.set()
        await state.release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_post("/hang", hang)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[HttpDispatcher]:
    dispatcher = HttpDispatcher()
    yield dispatcher
    await dispatcher.close()


@pytest.fixture
async def nc(nats_server: RunningServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url, allow_reconnect=False)
    yield client
    await client.close()


async def test_binary_mode_headers_and_body(target: Target, http: HttpDispatcher) -> None:
    own_headers = {"Authorization": "Bearer s3cr3t", "X-Team": "payments"}
    http_target = target.http("/status/202", method="PUT", headers=own_headers)

    outcome = await http.send(http_target, BODY, "inv-1", egress=LOOPBACK, extra_attributes={"hubcoalesced": "20"})

    assert outcome == Delivered(202)
    [request] = target.requests
    assert request.method == "PUT"
    ce = {name.lower(): value for name, value in request.headers.items() if name.lower().startswith("ce-")}
    expected = {f"ce-{name}": value for name, value in ATTRIBUTES.items()}
    assert ce == expected | {"ce-specversion": "1.0", "ce-subject": "Z%C3%BCrich%20office", "ce-hubcoalesced": "20"}
    assert request.headers.getall("ce-id") == ["d-1"]
    assert request.headers.getall("Content-Type") == ["application/json"]
    assert request.headers.getall("Idempotency-Key") == ["inv-1"]
    assert request.headers["Authorization"] == "Bearer s3cr3t"
    assert request.headers["X-Team"] == "payments"
    assert target.bodies == [orjson.dumps(DATA)]


async def test_target_headers_never_replace_the_events(target: Target, http: HttpDispatcher) -> None:
    forged = {"Content-Type": "text/plain", "ce-id": "forged", "IDEMPOTENCY-KEY": "forged", "Host": "evil", "X-A": "1"}
    unchecked = HttpTarget.model_construct(  # the spec schema refuses these; the dispatcher holds anyway
        url=f"{target.url}/status/200", method="POST", headers=forged, timeout=timedelta(seconds=5)
    )

    assert await http.send(unchecked, BODY, "inv-1", egress=LOOPBACK) == Delivered(200)

    [request] = target.requests
    assert request.headers.getall("ce-id") == ["d-1"]
    assert request.headers.getall("Content-Type") == ["application/json"]
    assert request.headers.getall("Idempotency-Key") == ["inv-1"]
    assert request.headers.getall("Host") == [target.url.removeprefix("http://")]
    assert request.headers["X-A"] == "1"


async def test_text_data_goes_as_is_and_typed_attributes_as_canonical_strings(
    target: Target, http: HttpDispatcher
) -> None:
    event = {"id": "1", "source": "s", "type": "t", "specversion": "1.0", "datacontenttype": "text/plain"}
    envelope = orjson.dumps(event | {"hubattempt": 3, "hubreplay": True, "hubnote": None, "data": "héllo"})

    assert await http.send(target.http("/status/200"), envelope, "inv-1", egress=LOOPBACK) == Delivered(200)

    [request] = target.requests
    assert request.headers["Content-Type"] == "text/plain"
    assert (request.headers["ce-hubattempt"], request.headers["ce-hubreplay"]) == ("3", "true")
    assert "ce-hubnote" not in request.headers
    assert "ce-datacontenttype" not in request.headers
    assert target.bodies == ["héllo".encode()]


@pytest.mark.parametrize(
    ("status", "permanent", "trips", "retry_after"),
    [(408, False, True, None), (425, False, False, None), (500, False, True, None), (503, False, True, 7.0)],
)
def test_classify(status: int, permanent: bool, trips: bool, retry_after: float | None) -> None:
    outcome = classify(status, "7")

    assert outcome == Failed(permanent, f"http {status}", status, retry_after, trips_breaker=trips)


async def test_2xx_is_delivered(target: Target, http: HttpDispatcher) -> None:
    assert await http.send(target.http("/status/200"), BODY, "inv-1", egress=LOOPBACK) == Delivered(200)
    assert await http.send(target.http("/status/202"), BODY, "inv-2", egress=LOOPBACK) == Delivered(202)


async def test_503_with_retry_after_is_transient(target: Target, http: HttpDispatcher) -> None:
    outcome = await http.send(
        target.http("/status/503?retry_after=7", headers={"X-Key": "k"}), BODY, "inv-1", egress=LOOPBACK
    )

    assert outcome == Failed(permanent=False, error="http 503", status=503, retry_after_s=7.0)
    assert outcome.trips_breaker


async def test_429_is_transient_throttled_and_does_not_trip_the_breaker(target: Target, http: HttpDispatcher) -> None:
    outcome = await http.send(target.http("/status/429?retry_after=2"), BODY, "inv-1", egress=LOOPBACK)

    assert outcome == Failed(
        permanent=False,
        error="http 429",
        status=429,
        retry_after_s=2.0,
        trips_breaker=False,
        throttled_by_target=True,
    )


@pytest.mark.parametrize("code", [400, 404, 301])
async def test_other_4xx_and_3xx_are_permanent(target: Target, http: HttpDispatcher, code: int) -> None:
    outcome = await http.send(target.http(f"/status/{code}"), BODY, "inv-1", egress=LOOPBACK)

    assert outcome == Failed(permanent=True, error=f"http {code}", status=code, trips_breaker=False)
    assert len(target.requests) == 1  # a redirect is not followed


async def test_a_timeout_is_transient(target: Target, http: HttpDispatcher) -> None:
    outcome = await http.send(target.http("/hang", timeout="200ms"), BODY, "inv-1", egress=LOOPBACK)

    assert target.hanging.is_set()
    assert outcome == Failed(permanent=False, error="timeout after 0.2s")


async def test_connection_refused_is_transient(http: HttpDispatcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = HttpTarget.model_validate({"url": f"http://127.0.0.1:{port}/hook?token=s3cr3t"})

    outcome = await http.send(closed, BODY, "inv-1", egress=LOOPBACK)

    assert outcome == Failed(permanent=False, error="connection refused: ClientConnectorError")


@pytest.mark.parametrize("envelope", [b"not json", b"[1, 2]", b'{"id": "x"}', b'{"id": 1.5, "type": "t"}'])
async def test_an_invalid_envelope_is_permanent_and_sends_nothing(
    target: Target, http: HttpDispatcher, envelope: bytes
) -> None:
    outcome = await http.send(target.http("/status/200"), envelope, "inv-1", egress=LOOPBACK)

    assert isinstance(outcome, Failed)
    assert (outcome.permanent, outcome.trips_breaker) == (True, False)
    assert outcome.error.startswith("invalid envelope")
    assert target.requests == []


async def test_a_subject_captured_by_a_stream_is_stored_once_per_invocation(nc: NATS) -> None:
    js = nc.jetstream()
    await js.add_stream(name="TARGETS", subjects=["targets.>"])
    dispatcher = SubjectDispatcher(nc)
    headers = {"ce-id": "d-1", "ce-type": "github.push"}

    first = await dispatcher.send("targets.orders", BODY, headers, "inv-1", 5.0)
    second = await dispatcher.send("targets.orders", BODY, headers, "inv-1", 5.0)

    assert first == second == Delivered(None)
    assert (await js.stream_info("TARGETS")).state.messages == 1
    stored = await js.get_msg("TARGETS", 1)
    assert stored.data == BODY
    assert stored.headers == headers | {"Nats-Msg-Id": "inv-1"}
    assert headers == {"ce-id": "d-1", "ce-type": "github.push"}  # the caller's dict is left alone


async def test_a_subject_without_a_stream_reaches_a_core_subscriber(nc: NATS) -> None:
    received: asyncio.Queue[Msg] = asyncio.Queue()
    await nc.subscribe("plain.orders", cb=received.put)
    dispatcher = SubjectDispatcher(nc)

    outcome = await dispatcher.send("plain.orders", BODY, {"ce-id": "d-1"}, "inv-1", 5.0)

    assert outcome == Delivered(None)
    message = await asyncio.wait_for(received.get(), 5.0)
    assert (message.data, message.headers) == (BODY, {"ce-id": "d-1"})


async def test_a_closed_connection_is_a_transient_failure(nc: NATS) -> None:
    dispatcher = SubjectDispatcher(nc)
    await nc.close()

    outcome = await dispatcher.send("plain.orders", BODY, {}, "inv-1", 1.0)

    assert outcome == Failed(permanent=False, error="nats error: ConnectionClosedError")
