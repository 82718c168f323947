"""The guarded poll client against real loopback servers: egress refusals, redirects, outcome classes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from adapters.pollers.base import EgressRefused, FetchRequest, InvalidPayload, SourceRejected, SourceUnavailable
from hub.poll.client import GuardedClient
from hub.poll.egress import ADDRESS_REMEDY, HOST_REMEDY, EgressPolicy, system_lookup
from schemas.poll import Egress, PollSettings

pytestmark = pytest.mark.integration

LOOPBACK = {"allowedNetworks": ["127.0.0.1/32"]}
TWO_HOSTS = {"allowedHosts": ["a.test", "b.test"], **LOOPBACK}
AUTH = {"Authorization": "Bearer s3cr3t-token"}


class Seen(NamedTuple):
    method: str
    host: str  # the Host header
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Source:
    """A loopback HTTP source; records every request it gets. `/hang` waits for `release`."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    close_connections: bool = False

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.host, request.path, request.headers.copy(), await request.read()))
        response = await self.answer(request, *request.path.strip("/").partition("/")[::2])
        if self.close_connections:
            response.force_close()
        return response

    async def answer(self, request: web.Request, kind: str, arg: str) -> web.StreamResponse:
        if kind == "redirect":
            return web.Response(status=int(arg), headers={"Location": request.query["to"]})
        if kind == "loop":
            return web.Response(status=302, headers={"Location": "/loop"})
        if kind == "status":  # the query's parameters are the answer's headers
            return web.Response(status=int(arg), headers=dict(request.query), text="" if arg == "304" else "details")
        if kind == "big":
            return web.Response(body=b"x" * int(arg))
        if kind == "big-streamed":  # chunked: no Content-Length to refuse it by
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"x" * int(arg))
            return response
        if kind == "hang":
            await self.release.wait()
        body = {"method": request.method, "query": dict(request.query)}
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers={"X-Page": "1"})


@pytest.fixture
async def source() -> AsyncIterator[Source]:
    state = Source()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.port = runner.addresses[0][1]
    yield state
    state.release.set()
    await runner.cleanup()


@dataclass
class Lookup:
    """An injected name lookup: answers each name from `table` (a list of answers is used one per call)."""

    table: dict[str, list[list[str]]]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int, family: int) -> Sequence[str]:
        self.asked.append(host)
        answers = self.table.get(host)
        if not answers:
            raise OSError(f"unknown host {host}")
        return answers.pop(0) if len(answers) > 1 else answers[0]


def client(url: str, lookup: Lookup | None = None, timeout_s: float = 5.0, **options: Any) -> GuardedClient:
    policy = EgressPolicy(Egress.model_validate(options.pop("egress", {})), url)
    return GuardedClient(policy, timeout_s=timeout_s, lookup=lookup or system_lookup, **options)


async def refused(guarded: GuardedClient, request: FetchRequest) -> str:
    async with guarded:
        with pytest.raises(EgressRefused) as caught:
            await guarded.fetch(request)
    return caught.value.reason


async def test_loopback_spec_is_refused_without_connecting() -> None:
    accepted: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = PollSettings.model_validate(
        {"kind": "http_json", "interval": "1m", "request": {"url": f"http://127.0.0.1:{port}/items"}}
    )
    async with server:
        guarded = GuardedClient(EgressPolicy.for_settings(settings), timeout_s=5.0)
        reason = await refused(guarded, FetchRequest(settings.request.url))
    assert reason == f"address not allowed: 127.0.0.1 (loopback); {ADDRESS_REMEDY}"
    assert accepted == []


async def test_loopback_allowed_by_allowed_networks(source: Source) -> None:
    async with client(source.url("/items"), egress=LOOPBACK) as guarded:
        response = await guarded.fetch(FetchRequest(source.url("/items?since=5")))
        validators = {"If-None-Match": '"v1"'}
        unchanged = await guarded.fetch(FetchRequest(source.url('/status/304?ETag="v1"'), headers=validators))
    assert (unchanged.status, unchanged.header("etag"), unchanged.body) == (304, '"v1"', b"")
    assert response.status == 200
    assert orjson.loads(response.body) == {"method": "GET", "query": {"since": "5"}}
    assert response.header("X-PAGE") == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.url == source.url("/items?since=5")
    assert [(seen.path, seen.headers["User-Agent"], seen.headers.get("If-None-Match")) for seen in source.seen] == [
        ("/items", "connector-hub", None),
        ("/status/304", "connector-hub", '"v1"'),
    ]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            f"address not allowed: 169.254.169.254 (link-local); {ADDRESS_REMEDY}",
        ),
        (
            "http://10.0.0.1:8080/api",
            f"address not allowed: 10.0.0.1 (private); {ADDRESS_REMEDY}",
        ),
        (
            "http://[fe80::1]/",
            f"address not allowed: fe80::1 (link-local); {ADDRESS_REMEDY}",
        ),
        ("http://2130706433/", "address not allowed: 2130706433 (not a canonical IP address)"),
    ],
)
async def test_non_public_ip_literals_fail_fast(url: str, reason: str) -> None:
    lookup = Lookup({})
    started = time.monotonic()
    assert await refused(client(url, lookup, timeout_s=5.0), FetchRequest(url)) == reason
    assert time.monotonic() - started < 1.0
    assert lookup.asked == []


@pytest.mark.parametrize(
    ("answer", "why"), [(["10.0.0.1"], "10.0.0.1 (private)"), (["93.184.216.34", "127.0.0.1"], "127.0.0.1 (loopback)")]
)
async def test_name_resolving_to_a_private_address_is_refused(source: Source, answer: list[str], why: str) -> None:
    lookup = Lookup({"api.test": [answer]})
    url = source.url("/items", host="api.test")
    assert (
        await refused(client(url, lookup), FetchRequest(url))
        == f"address not allowed: {why} for api.test; {ADDRESS_REMEDY}"
    )
    assert lookup.asked == ["api.test"]
    assert source.seen == []


async def test_dns_rebinding_connects_to_the_checked_address_only(source: Source) -> None:
    # First answer: the allowed loopback address; a later lookup would answer a forbidden one.
    lookup = Lookup({"api.test": [["127.0.0.1"], ["169.254.169.254"]]})
    source.close_connections = True  # every fetch needs a new connection, hence a new lookup
    url = source.url("/items", host="api.test")
    async with client(url, lookup, egress=LOOPBACK) as guarded:
        assert (await guarded.fetch(FetchRequest(url))).status == 200
        assert lookup.asked == ["api.test"]  # one lookup, checked and connected to: no second resolution
        assert [seen.host for seen in source.seen] == [f"api.test:{source.port}"]
        with pytest.raises(EgressRefused) as caught:
            await guarded.fetch(FetchRequest(url))
    assert caught.value.reason == f"address not allowed: 169.254.169.254 (link-local) for api.test; {ADDRESS_REMEDY}"
    assert lookup.asked == ["api.test", "api.test"]
    assert len(source.seen) == 1


async def test_redirect_to_another_allowed_host_drops_credentials(source: Source) -> None:
    lookup = Lookup({"a.test": [["127.0.0.1"]], "b.test": [["127.0.0.1"]]})
    target = source.url("/items", host="b.test")
    url = source.url(f"/redirect/302?to={source.url('/redirect/307', host='a.test')}?to={target}", host="a.test")
    async with client(url, lookup, egress=TWO_HOSTS, auth_headers=AUTH) as guarded:
        response = await guarded.fetch(FetchRequest(url, headers={"Accept": "application/json"}))
    assert response.status == 200
    assert response.url == target
    assert [(seen.host.split(":")[0], seen.headers.get("Authorization")) for seen in source.seen] == [
        ("a.test", AUTH["Authorization"]),
        ("a.test", AUTH["Authorization"]),
        ("b.test", None),
    ]
    assert [seen.headers["Accept"] for seen in source.seen] == ["application/json"] * 3


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        (
            "http://evil.test:{port}/steal?token=zzz",
            f"host not allowed: evil.test; {HOST_REMEDY}",
        ),
        (
            "http://169.254.169.254/latest/meta-data/?token=zzz",
            f"address not allowed: 169.254.169.254 (link-local); {ADDRESS_REMEDY}",
        ),
        ("file:///etc/passwd?token=zzz", "scheme not allowed: file"),
    ],
)
async def test_redirect_refused(source: Source, location: str, reason: str) -> None:
    lookup = Lookup({"a.test": [["127.0.0.1"]], "evil.test": [["127.0.0.1"]]})
    url = source.url(f"/redirect/302?to={location.format(port=source.port)}", host="a.test")
    egress = {"allowedHosts": ["a.test", "169.254.169.254"], **LOOPBACK}
    got = await refused(client(url, lookup, egress=egress, auth_headers=AUTH), FetchRequest(url))
    assert got == f"redirect to {location.format(port=source.port).split('?')[0]} refused: {reason}"
    assert lookup.asked == ["a.test"]
    assert len(source.seen) == 1


async def test_too_many_redirects_and_redirect_without_location(source: Source) -> None:
    async with client(source.url("/"), egress=LOOPBACK, max_redirects=3) as guarded:
        with pytest.raises(SourceRejected, match=r"^too many redirects \(more than 3\)$"):
            await guarded.fetch(FetchRequest(source.url("/loop")))
        assert len(source.seen) == 4
        with pytest.raises(SourceRejected, match=r"^http 302 without Location$"):
            await guarded.fetch(FetchRequest(source.url("/redirect/302?to=")))


async def test_post_body_sent_and_see_other_becomes_get(source: Source) -> None:
    async with client(source.url("/"), egress=LOOPBACK) as guarded:
        posted = await guarded.fetch(FetchRequest(source.url("/search"), method="POST", body=b'{"q": 1}'))
        assert orjson.loads(posted.body)["method"] == "POST"
        await guarded.fetch(FetchRequest(source.url("/redirect/303?to=/done"), method="POST", body=b"once"))
        await guarded.fetch(FetchRequest(source.url("/redirect/307?to=/again"), method="POST", body=b"twice"))
    assert [(seen.method, seen.path, seen.body) for seen in source.seen] == [
        ("POST", "/search", b'{"q": 1}'),
        ("POST", "/redirect/303", b"once"),
        ("GET", "/done", b""),
        ("POST", "/redirect/307", b"twice"),
        ("POST", "/again", b"twice"),
    ]


@pytest.mark.parametrize(
    ("path", "error", "reason", "retry_after"),
    [
        ("/status/429?Retry-After=7", SourceUnavailable, "http 429", 7.0),
        ("/status/503?Retry-After=12", SourceUnavailable, "http 503", 12.0),
        ("/status/500?Retry-After=12", SourceUnavailable, "http 500", None),
        ("/status/408", SourceUnavailable, "http 408", None),
        ("/status/404", SourceRejected, "http 404", None),
        ("/status/401?token=zzz", SourceRejected, "http 401", None),
    ],
)
async def test_statuses_are_classified(
    source: Source, path: str, error: type[Exception], reason: str, retry_after: float | None
) -> None:
    async with client(source.url("/"), egress=LOOPBACK, auth_headers=AUTH) as guarded:
        with pytest.raises(error) as caught:
            await guarded.fetch(FetchRequest(source.url(path)))
    assert str(caught.value) == reason
    assert getattr(caught.value, "retry_after_s", "missing") == retry_after


async def test_a_source_that_never_answers_times_out(source: Source) -> None:
    started = time.monotonic()
    async with client(source.url("/"), egress=LOOPBACK, timeout_s=0.2) as guarded:
        with pytest.raises(SourceUnavailable, match=r"^timeout after 0\.2s$"):
            await guarded.fetch(FetchRequest(source.url("/hang")))
    assert time.monotonic() - started < 2.0
    assert [seen.path for seen in source.seen] == ["/hang"]


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
    async with client(url, egress=LOOPBACK) as guarded:
        with pytest.raises(SourceUnavailable, match=rf"^connection to 127\.0\.0\.1:{port} failed: Connection refused$"):
            await guarded.fetch(FetchRequest(url))


@pytest.mark.parametrize("path", ["/big/4096", "/big-streamed/4096"])
async def test_body_over_the_cap_is_invalid(source: Source, path: str) -> None:
    async with client(source.url("/"), egress=LOOPBACK, max_body_bytes=1024) as guarded:
        with pytest.raises(InvalidPayload, match=r"^response larger than 1024 bytes$"):
            await guarded.fetch(FetchRequest(source.url(path)))
        assert len((await guarded.fetch(FetchRequest(source.url("/big/1024")))).body) == 1024
