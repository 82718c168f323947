"""A scriptable loopback poll source for the poll tests.

`PollSource` is an aiohttp server on 127.0.0.1 (or another loopback address) that records every
request it gets (method, path, query, headers, arrival and answer times) and the most requests it
held at once, and answers each path from a script the test sets: one-shot answers queued in
order (`queue`), then the path's standing answer (`route`). Answers are built with the helpers
below: JSON pages with an ETag (304 when the request's `If-None-Match` matches), statuses (with
e.g. `Retry-After`), redirects, RSS/Atom bodies, and a cursor-paged list of items.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml
from aiohttp import web
from multidict import CIMultiDict

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""How a source answers one request."""


@dataclass
class Seen:
    """One request as the source got it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    at: float
    """time.monotonic() when it arrived."""
    wall: float
    """time.time() when it arrived."""
    status: int = 0
    answered_at: float = 0.0
    """time.monotonic() when the answer was ready (0.0 while in flight)."""


@dataclass
class PollSource:
    """A loopback HTTP source whose answers the test scripts; see the module docstring."""

    host: str = "127.0.0.1"
    port: int = 0
    delay_s: float = 0.0
    """Every request is held this long before it is answered (a slow source)."""
    requests: list[Seen] = field(default_factory=list, repr=False)
    concurrent: int = 0
    max_concurrent: int = 0
    routes: dict[str, Answer] = field(default_factory=dict, repr=False)
    queued: defaultdict[str, list[Answer]] = field(default_factory=lambda: defaultdict(list), repr=False)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, answer: Answer) -> None:
        """The standing answer of `path` (replacing any before)."""
        self.routes[path] = answer

    def queue(self, path: str, *answers: Answer) -> None:
        """One-shot answers of `path`, used in order before its standing answer."""
        self.queued[path].extend(answers)

    def seen(self, path: str | None = None) -> list[Seen]:
        """The requests (of one path), in arrival order."""
        return [r for r in self.requests if path is None or r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(
            request.method,
            request.path,
            dict(request.query),
            request.headers.copy(),
            time.monotonic(),
            time.time(),
        )
        self.requests.append(seen)
        queued = self.queued.get(request.path)
        if queued:  # chosen on arrival: a queued answer is the next request's
            answer = queued.pop(0)
        elif request.path in self.routes:
            answer = self.routes[request.path]
        else:
            answer = status(404)
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # a slow source is what is under test, not a wait
            response = await answer(request)
            seen.status = response.status
            seen.answered_at = time.monotonic()
            return response
        finally:
            self.concurrent -= 1


@contextlib.asynccontextmanager
async def poll_source(host: str = "127.0.0.1", **options: Any) -> AsyncIterator[PollSource]:
    """A PollSource listening on a free port of `host` until the block ends."""
    source = PollSource(host=host, **options)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", source.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    source.port = runner.addresses[0][1]
    try:
        yield source
    finally:
        await runner.cleanup()


# --- Answers ------------------------------------------------------------------------------------


def _matches(request: web.Request, etag: str | None, last_modified: str | None) -> bool:
    """The request's validators say it already has this representation."""
    if etag is not None and request.headers.get("If-None-Match") == etag:
        return True
    return last_modified is not None and request.headers.get("If-Modified-Since") == last_modified


def json_page(
    body: Any,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """A JSON body (with `ETag`/`Last-Modified` when given); 304 when the request's validators match."""

    async def answer(request: web.Request) -> web.StreamResponse:
        validators = {"ETag": etag, "Last-Modified": last_modified}
        present = {k: v for k, v in validators.items() if v is not None} | dict(headers or {})
        if _matches(request, etag, last_modified):
            return web.Response(status=304, headers=present)
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers=present)

    return answer


def status(code: int, *, headers: Mapping[str, str] | None = None, body: bytes = b"") -> Answer:
    """A bare status, e.g. 500, or 429 with `{"Retry-After": "2"}`."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, headers=dict(headers or {}), body=body)

    return answer


def redirect(location: str, code: int = 302) -> Answer:
    """A redirect to `location` (absolute or relative)."""
    return status(code, headers={"Location": location})


def feed(body: str, *, content_type: str = "application/rss+xml", etag: str | None = None) -> Answer:
    """An RSS or Atom document; 304 when the request's `If-None-Match` matches `etag`."""

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = {"ETag": etag} if etag is not None else {}
        if _matches(request, etag, None):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body.encode(), headers={"Content-Type": content_type, **headers})

    return answer


def cursor_pages(items: Callable[[], Sequence[Mapping[str, Any]]], *, page_size: int, overlap: int = 0) -> Answer:
    """A list of items with integer `id`s, paged by `?after=<id>` and a body `next` link.

    A page holds up to `page_size` items after `after` (from the first without it), starting
    `overlap` items earlier: each page repeats the end of the one before, as APIs that page by
    an inclusive time or id do. The body is `{"items": [...], "next": "<path>?after=<last id>"}`,
    `next` null on the last page. `items` is called per request, so the test may add items.
    """

    async def answer(request: web.Request) -> web.StreamResponse:
        every = list(items())
        after = request.query.get("after", "")
        start = 0
        if after:
            start = next((i for i, item in enumerate(every) if int(item["id"]) > int(after)), len(every))
            start = max(0, start - overlap)
        page = every[start : start + page_size]
        more = start + page_size < len(every)
        link = f"{request.path}?after={page[-1]['id']}" if page and more else None
        return web.json_response({"items": page, "next": link})

    return answer


def held(answer: Answer, release: asyncio.Event) -> Answer:
    """`answer`, given only once `release` is set (the request stays open meanwhile)."""

    async def held_answer(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return await answer(request)

    return held_answer


# --- Specs --------------------------------------------------------------------------------------

LOOPBACK: dict[str, Any] = {"allowedNetworks": ["127.0.0.1/32"]}
"""The egress section that allows a loopback source (and nothing else non-public)."""


def poll_connector(
    name: str, poll: Mapping[str, Any], *, provider: str = "acme-api", tenant: str = "acme", enabled: bool = True
) -> dict[str, Any]:
    """A poll Connector document."""
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": name, "tenant": tenant},
        "spec": {"type": "poll", "provider": provider, "enabled": enabled, "poll": dict(poll)},
    }


def specs_yaml(*documents: Mapping[str, Any]) -> str:
    """Documents as one YAML text (`---` between them)."""
    return yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)


def slow(answer: Answer, seconds: float) -> Answer:
    """`answer`, `seconds` later than the source's usual delay (a request that takes long)."""

    async def slow_answer(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)  # the scripted slowness is the behaviour under test
        return await answer(request)

    return slow_answer
