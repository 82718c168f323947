"""Poll runs end to end (in-process scheduler, real nats-server and valkey-server, loopback sources):
pages published once with the cursor saved after each, conditional requests, overlapping pages and
a re-poll from an older cursor, a crash in the middle of a page, RSS and Atom feeds, and
`connector-hub status`."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from nats.js.api import PubAck

from adapters.pollers.base import PollState
from events.envelope import Envelope
from hub import cli
from hub.app.embedded import RunningServer
from hub.errors import ClaimHeld, PublishUnavailable
from hub.ingest.context import HubContext
from hub.ingest.dedupe import DedupeStore
from hub.ingest.ingestor import EventSource, Ingestor, IngestResult
from hub.ingest.publisher import Publisher
from hub.poll.egress import ADDRESS_REMEDY
from hub.poll.store import SourceKey
from tests.hub.gate.harness import sample, until
from tests.hub.poll.fixtures import PollerFactory, PollerUnderTest
from tests.hub.poll.sources import (
    LOOPBACK,
    PollSource,
    cursor_pages,
    feed,
    json_page,
    poll_connector,
    poll_source,
    specs_yaml,
)

pytestmark = pytest.mark.integration

API = SourceKey("acme", "api")
CLAIM_TTL_S = 30.0


def labels(connector: str = "api", tenant: str = "acme", **more: str) -> dict[str, str]:
    return {"tenant": tenant, "connector": connector, **more}


def metric(poller: PollerUnderTest, name: str, connector: str = "api", **more: str) -> float:
    return sample(poller.metrics.registry, name, labels(connector, **more))


def runs(poller: PollerUnderTest, outcome: str, connector: str = "api") -> float:
    return metric(poller, "hub_poll_runs_total", connector, outcome=outcome)


def ids_of(events: Sequence[dict[str, Any]], connector: str = "api") -> list[str]:
    return [e["id"] for e in events if e["hubconnector"] == connector]


def once_each(ids: Sequence[str]) -> dict[str, int]:
    """The ids seen more than once (empty when every id is there once)."""
    return {i: n for i, n in Counter(ids).items() if n > 1}


# --- 1. three pages, then nothing new --------------------------------------------------------------


def numbered_page(n: int, last: int = 3) -> dict[str, Any]:
    return {
        "items": [{"id": f"{n}-{i}", "kind": "created"} for i in range(3)],
        "next": f"/items?page={n + 1}" if n < last else None,
        "cursor": f"c{n}",
    }


async def test_three_pages_then_a_conditional_request_answered_304(make_poller: PollerFactory) -> None:
    async with poll_source() as source:
        # Every page has its own ETag: only the first page's describes where a run starts.
        pages = {str(n): json_page(numbered_page(n), etag=f'"v{n}"') for n in (1, 2, 3)}

        async def items(request: web.Request) -> web.StreamResponse:
            return await pages[request.query.get("page", "1")](request)

        source.route("/items", items)
        poll = {
            "kind": "http_json",
            "interval": "1s",
            "request": {"url": source.url("/items")},
            "items": {"path": "items", "id": "id", "type": "kind", "cursor": "cursor"},
            "pagination": {"nextLink": "next"},
            "egress": LOOPBACK,
        }
        poller = await make_poller(specs_yaml(poll_connector("api", poll)))

        await until(lambda: runs(poller, "not_modified") >= 1, 10, "a run answered 304")

        expected = [f"{n}-{i}" for n in (1, 2, 3) for i in range(3)]
        assert ids_of(await poller.events()) == expected  # each once, in page order
        assert runs(poller, "ok") == 1
        assert metric(poller, "hub_poll_items_published_total") == 9

        first_run, conditional = source.requests[:3], source.requests[3]
        assert [r.query.get("page") for r in first_run] == [None, "2", "3"]
        assert [r.status for r in first_run] == [200, 200, 200]
        assert all("If-None-Match" not in r.headers for r in first_run)
        assert conditional.path == "/items"
        assert conditional.query == {}
        assert conditional.headers.get("If-None-Match") == '"v1"'
        assert conditional.status == 304
        assert all(r.status == 304 for r in source.requests[3:] if r.answered_at)  # no run since saw a 200

        assert await poller.store.load_state(API, None) == PollState(cursor="c3", etag='"v1"')
        status = await poller.status("acme", "api")
        assert (status["state"], status["cursor"], status["itemsPublished"]) == ("active", "c3", "9")


# --- 2. overlapping pages, and a re-poll from an older cursor ----------------------------------------


async def test_overlapping_pages_and_an_older_cursor_publish_nothing_twice(make_poller: PollerFactory) -> None:
    items = [{"id": n, "title": f"item {n}"} for n in range(1, 11)]
    async with poll_source() as source:
        # Each page starts with the last item of the page before: [1-4] [4-7] [7-10].
        source.route("/items", cursor_pages(lambda: items, page_size=4, overlap=1))
        poll = {
            "kind": "http_json",
            "interval": "1h",
            "request": {"url": source.url("/items"), "query": {"after": "{cursor}"}},
            "items": {"path": "items", "id": "id", "cursor": "id", "cursorFrom": "lastItem"},
            "pagination": {"nextLink": "next"},
            "egress": LOOPBACK,
        }
        poller = await make_poller(specs_yaml(poll_connector("api", poll)), lease_ttl_s=1.5)

        await until(lambda: runs(poller, "ok") == 1, 10, "the first run")
        assert ids_of(await poller.events()) == [str(n) for n in range(1, 11)]
        assert metric(poller, "hub_poll_duplicates_total") == 2  # items 4 and 7, each seen on two pages
        assert (await poller.store.load_state(API, None)).cursor == "10"

        # The source gets two new items; the stored cursor is set back, as after a restore from a backup.
        items.extend({"id": n, "title": f"item {n}"} for n in (11, 12))
        await poller.store.save_state(API, PollState(cursor="4"))
        await poller.store.set_next_run_at(API, time.time())

        await until(lambda: runs(poller, "ok") == 2, 10, "the re-poll")
        ids = ids_of(await poller.events())
        assert once_each(ids) == {}
        assert ids == [str(n) for n in range(1, 13)]
        # Re-poll: [4-7] [7-10] [10-12]: 4+4+1 already published, 11 and 12 new.
        assert [r.query.get("after") for r in source.requests] == ["", "4", "7", "4", "7", "10"]
        assert metric(poller, "hub_poll_duplicates_total") == 2 + 9
        assert metric(poller, "hub_poll_items_published_total") == 12
        # Caught by the dedupe claims in Valkey (kept for dedupeWindow), before JetStream's shorter window.
        assert sample(poller.metrics.registry, "hub_jetstream_duplicates_total", labels()) == 0
        assert (await poller.store.load_state(API, None)).cursor == "12"
        assert (await poller.status("acme", "api"))["cursor"] == "12"


# --- 3. a crash in the middle of a page ------------------------------------------------------------


class CrashingIngestor(Ingestor):
    """The hub's ingestor, except that its `crash_on`-th batch publishes only its first `keep`
    events and then fails, as a process would that died half way through a page."""

    def __init__(self, context: HubContext, *, crash_on: int, keep: int) -> None:
        super().__init__(
            DedupeStore(context.redis, context.metrics, claim_ttl_s=CLAIM_TTL_S),
            Publisher(context.nats, context.metrics),
            context.metrics,
            claim_ttl_s=CLAIM_TTL_S,
        )
        self.crash_on = crash_on
        self.keep = keep
        self.calls = 0

    async def ingest(self, connector: EventSource, envelopes: Sequence[Envelope]) -> IngestResult:
        self.calls += 1
        if self.calls == self.crash_on:
            await super().ingest(connector, envelopes[: self.keep])
            raise PublishUnavailable("simulated crash after part of the page")
        return await super().ingest(connector, envelopes)


class FlakyPublisher(Publisher):
    """The hub's publisher, except that its `fail_on`-th publish is not acknowledged."""

    def __init__(self, context: HubContext, *, fail_on: int) -> None:
        super().__init__(context.nats, context.metrics)
        self.fail_on = fail_on
        self.calls = 0

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str], msg_id: str, deadline_s: float
    ) -> PubAck:
        self.calls += 1
        if self.calls == self.fail_on:
            raise PublishUnavailable("simulated: no PubAck")
        return await super().publish(subject, payload, headers, msg_id, deadline_s)


def paged_poll(source: PollSource) -> dict[str, Any]:
    return {
        "kind": "http_json",
        "interval": "1h",
        "request": {"url": source.url("/items"), "query": {"after": "{cursor}"}},
        "items": {"path": "items", "id": "id", "cursor": "id", "cursorFrom": "lastItem"},
        "pagination": {"nextLink": "next"},
        "backoff": {"initial": "50ms", "max": "100ms"},
        "egress": LOOPBACK,
    }


async def crash_on_the_second_page(make_poller: PollerFactory, source: PollSource) -> PollerUnderTest:
    """Items 1-8 in pages [1-4] [5-8]; the first run dies after publishing 5 and 6; the retry finishes."""
    items = [{"id": n} for n in range(1, 9)]
    source.route("/items", cursor_pages(lambda: items, page_size=4))
    poller = await make_poller(
        specs_yaml(poll_connector("api", paged_poll(source))),
        wrap_ingestor=lambda context: CrashingIngestor(context, crash_on=2, keep=2),
    )
    await until(lambda: runs(poller, "ok") == 1, 10, "the run after the crash")
    assert runs(poller, "failed") == 1
    return poller


async def test_crash_after_half_a_page_then_the_next_run_completes_it(make_poller: PollerFactory) -> None:
    async with poll_source() as source:
        poller = await crash_on_the_second_page(make_poller, source)

        assert ids_of(await poller.events()) == [str(n) for n in range(1, 9)]  # every item exactly once
        # Page 1's state was saved before page 2 began, page 2's never was: the retry resumes at page 2.
        assert [r.query.get("after") for r in source.requests] == ["", "4", "4"]
        assert metric(poller, "hub_poll_duplicates_total") == 2  # 5 and 6, published before the crash
        assert await poller.store.load_state(API, None) == PollState(cursor="8")
        status = await poller.status("acme", "api")
        assert (status["state"], status["cursor"], status["failures"]) == ("active", "8", "0")
        assert "lastError" not in status


async def test_items_of_pages_saved_before_a_failure_are_counted(make_poller: PollerFactory) -> None:
    """Page 1 (items 1-4) was published and its state saved by the run that failed on page 2: those
    items were published (acknowledged by JetStream) and must be counted somewhere, the metric
    and the status's itemsPublished alike; then 7 and 8 by the retry (5 and 6 are duplicates)."""
    async with poll_source() as source:
        poller = await crash_on_the_second_page(make_poller, source)

        assert len(ids_of(await poller.events())) == 8
        assert metric(poller, "hub_poll_items_published_total") == 6
        assert (await poller.status("acme", "api"))["itemsPublished"] == "6"


async def test_publish_failing_inside_a_page_is_completed_without_duplicates(make_poller: PollerFactory) -> None:
    """The third of four concurrent publishes gets no PubAck: the other three are in the stream and
    marked done; the retry finds them delivered and publishes only the fourth (JetStream is not even
    asked to drop a copy)."""
    async with poll_source() as source:
        source.route("/items", json_page({"items": [{"id": n} for n in range(1, 5)]}))
        poll = paged_poll(source) | {"items": {"path": "items", "id": "id"}}

        def flaky(context: HubContext) -> Ingestor:
            dedupe = DedupeStore(context.redis, context.metrics, claim_ttl_s=CLAIM_TTL_S)
            return Ingestor(dedupe, FlakyPublisher(context, fail_on=3), context.metrics, claim_ttl_s=CLAIM_TTL_S)

        poller = await make_poller(specs_yaml(poll_connector("api", poll)), wrap_ingestor=flaky)
        await until(lambda: runs(poller, "ok") == 1, 10, "the run after the failed publish")

        assert runs(poller, "failed") == 1
        ids = ids_of(await poller.events())
        assert sorted(ids) == ["1", "2", "3", "4"]
        assert once_each(ids) == {}
        assert metric(poller, "hub_poll_duplicates_total") == 3
        assert sample(poller.metrics.registry, "hub_jetstream_duplicates_total", labels()) == 0
        assert len(source.requests) == 2


# --- 7. RSS and Atom --------------------------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
  <title>The Blog</title><link>https://blog.example/</link><description>posts</description>
  <item><title>One</title><link>https://blog.example/posts/1</link>
    <guid isPermaLink="false">post-1</guid><pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate></item>
  <item><title>Two</title><link>https://blog.example/posts/2</link>
    <guid>https://blog.example/posts/2</guid><pubDate>Tue, 07 Jan 2025 10:00:00 GMT</pubDate></item>
  <item><title>Three, without a guid</title><link>https://blog.example/posts/3</link></item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>News</title><id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2025-01-07T10:00:00Z</updated>
  <entry><title>A</title><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <link href="https://news.example/a"/><updated>2025-01-06T10:00:00Z</updated></entry>
  <entry><title>B</title><id>tag:news.example,2025:b</id>
    <link rel="alternate" href="https://news.example/b"/><published>2025-01-07T09:00:00Z</published>
    <updated>2025-01-07T10:00:00Z</updated></entry>
</feed>
"""


async def test_rss_and_atom_entries_become_envelopes_with_stable_ids(make_poller: PollerFactory) -> None:
    async with poll_source() as source:
        source.route("/rss", feed(RSS))
        source.route("/atom", feed(ATOM, content_type="application/atom+xml"))

        def feed_poll(path: str) -> dict[str, Any]:
            return {"kind": "rss", "interval": "1s", "request": {"url": source.url(path)}, "egress": LOOPBACK}

        poller = await make_poller(
            specs_yaml(
                poll_connector("blog", feed_poll("/rss"), provider="blog"),
                poll_connector("news", feed_poll("/atom"), provider="news"),
            )
        )

        def polled_twice() -> bool:
            return runs(poller, "ok", "blog") >= 2 and runs(poller, "ok", "news") >= 2

        await until(polled_twice, 10, "both feeds polled twice")
        # One synchronous read: the run counters and the duplicate counters move together.
        blog_runs, news_runs = runs(poller, "ok", "blog"), runs(poller, "ok", "news")
        blog_dupes = metric(poller, "hub_poll_duplicates_total", "blog")
        news_dupes = metric(poller, "hub_poll_duplicates_total", "news")

        events = await poller.events()
        blog = [e for e in events if e["hubconnector"] == "blog"]
        news = [e for e in events if e["hubconnector"] == "news"]
        assert [(e["id"], e["type"], e["subject"]) for e in blog] == [
            ("post-1", "blog.entry", "https://blog.example/posts/1"),
            ("https://blog.example/posts/2", "blog.entry", "https://blog.example/posts/2"),
            ("https://blog.example/posts/3", "blog.entry", "https://blog.example/posts/3"),
        ]
        assert [(e["id"], e["type"], e["subject"]) for e in news] == [
            ("urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a", "news.entry", "https://news.example/a"),
            ("tag:news.example,2025:b", "news.entry", "https://news.example/b"),
        ]
        # Every later poll found every id again: the ids are stable and nothing landed twice.
        assert blog_dupes == 3 * (blog_runs - 1)
        assert news_dupes == 2 * (news_runs - 1)
        assert blog[0]["time"].startswith("2025-01-06T10:00:00")
        assert blog[0]["data"]["title"] == "One"
        assert blog[0]["data"]["feed_title"] == "The Blog"
        assert news[1]["time"].startswith("2025-01-07T09:00:00")  # published, not updated
        assert {e["hubverified"] for e in events} == {"poll:rss"}
        assert {e["source"] for e in blog} == {"hub://acme/blog"}


# --- 8. connector-hub status -----------------------------------------------------------------------


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No HUB_* settings from outside; the CLI's logging set-up is undone afterwards."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("aiohttp.access", "nats")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, noisy_level in noisy.items():
            logging.getLogger(name).setLevel(noisy_level)


async def hub_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`connector-hub ARGV` (it runs its own event loop, so in a thread); exit status, stdout, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("cli_environment")
async def test_status_command(
    make_poller: PollerFactory, valkey_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with poll_source() as source:
        source.route("/items", json_page({"items": [{"id": "a"}, {"id": "b"}], "cursor": "c1"}))
        ok = {
            "kind": "http_json",
            "interval": "1h",
            "request": {"url": source.url("/items")},
            "items": {"path": "items", "id": "id", "cursor": "cursor"},
            "egress": LOOPBACK,
        }
        refused = ok | {"request": {"url": "http://10.0.0.1/items"}, "egress": {}}
        text = specs_yaml(
            poll_connector("api", ok),
            poll_connector("broken", refused),
            poll_connector("off", ok, enabled=False),
        )
        poller = await make_poller(text)
        specs = tmp_path / "status-specs.yaml"
        specs.write_text(text)

        async def settled() -> bool:
            return (await poller.status("acme", "api")).get("state") == "active" and (
                await poller.status("acme", "broken")
            ).get("state") == "error"

        await until(settled, 10, "one source ran, one failed")
        assert source.seen("/items")  # the source was really polled
        common = ("status", "--redis-url", valkey_server.url, "--connectors", str(specs))

        code, out, err = await hub_cli(capsys, *common, "--json")
        assert (code, err) == (0, "")
        rows = {row["connector"]: row for row in orjson.loads(out)}
        assert set(rows) == {"acme/api", "acme/broken", "acme/off"}
        api, broken, off = rows["acme/api"], rows["acme/broken"], rows["acme/off"]
        assert (api["state"], api["itemsPublished"], api["cursor"]) == ("active", "2", "c1")
        assert "lastError" not in api
        last_run, last_success, next_run = (
            datetime.fromisoformat(api[k]) for k in ("lastRunAt", "lastSuccessAt", "nextRunAt")
        )
        assert last_run <= last_success < next_run
        assert timedelta(minutes=59) < next_run - last_run <= timedelta(hours=1, seconds=1)
        assert broken["state"] == "error"
        assert broken["lastError"] == f"address not allowed: 10.0.0.1 (private); {ADDRESS_REMEDY}"
        assert "lastSuccessAt" not in broken
        assert off["state"] == "disabled"
        assert "lastRunAt" not in off

        code, out, err = await hub_cli(capsys, *common, "acme/api")
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == "acme/api"
        table = dict(line.split(maxsplit=1) for line in lines[1:])
        assert list(table) == [
            "state",
            "lastRunAt",
            "lastSuccessAt",
            "nextRunAt",
            "itemsPublished",
            "cursor",
            "lastError",
        ]
        assert table["state"] == "active"
        assert table["lastRunAt"] == api["lastRunAt"]
        assert table["nextRunAt"] == api["nextRunAt"]
        assert (table["itemsPublished"], table["cursor"], table["lastError"]) == ("2", "c1", "-")

        code, out, err = await hub_cli(capsys, *common, "acme/broken")
        assert code == 0
        assert f"  lastError      address not allowed: 10.0.0.1 (private); {ADDRESS_REMEDY}" in out.splitlines()

        code, out, err = await hub_cli(capsys, *common, "acme/off")
        assert code == 0
        assert out.splitlines()[:2] == ["acme/off", "  state          disabled"]

        # Without --connectors: the sources Valkey knows (those that ran), no disabled one.
        code, out, err = await hub_cli(capsys, "status", "--redis-url", valkey_server.url, "--json")
        assert (code, err) == (0, "")
        from_valkey = {row["connector"]: row["state"] for row in orjson.loads(out)}
        assert from_valkey == {"acme/api": "active", "acme/broken": "error"}

        code, out, err = await hub_cli(capsys, *common, "acme/nope")
        assert code == 1
        assert "no poll connector acme/nope" in err
        assert out == ""


async def test_a_huge_feed_is_parsed_without_stalling_the_event_loop(make_poller: PollerFactory) -> None:
    """A tenant's feed near the response cap takes feedparser seconds; the loop every tenant shares
    must keep its turns meanwhile (a 20 ms ticker never waits anywhere near that long)."""
    entries = "".join(
        f"<item><title>t{i}</title><guid>g{i}</guid><description>{'x' * 400}</description></item>"
        for i in range(12_000)
    )
    huge = f"<?xml version='1.0'?><rss version='2.0'><channel><title>big</title>{entries}</channel></rss>"
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with poll_source() as source:
        source.route("/huge", feed(huge))
        poll = {"kind": "rss", "interval": "1m", "request": {"url": source.url("/huge")}, "egress": LOOPBACK}
        ticking = asyncio.create_task(ticker())
        try:
            poller = await make_poller(specs_yaml(poll_connector("huge", poll, provider="big")))

            def polled() -> bool:
                return runs(poller, "ok", "huge") >= 1

            await until(polled, 60, "the huge feed polled once")
        finally:
            ticking.cancel()
    assert len(await poller.events()) == 12_000
    assert max(gaps) < 0.75, f"the event loop stalled for {max(gaps):.2f}s"


class ClaimedElsewhereIngestor(Ingestor):
    """The hub's ingestor, except that its first `held` batches find their items claimed by another
    run, as after a run that died mid-page (its claims outlive it by the claim TTL)."""

    def __init__(self, context: HubContext, *, held: int) -> None:
        super().__init__(
            DedupeStore(context.redis, context.metrics, claim_ttl_s=CLAIM_TTL_S),
            Publisher(context.nats, context.metrics),
            context.metrics,
            claim_ttl_s=CLAIM_TTL_S,
        )
        self.held = held
        self.calls = 0

    async def ingest(self, connector: EventSource, envelopes: Sequence[Envelope]) -> IngestResult:
        self.calls += 1
        if self.calls <= self.held:
            raise ClaimHeld(1)
        return await super().ingest(connector, envelopes)


async def test_items_claimed_by_a_dead_run_are_waited_for_not_counted_as_source_failures(
    make_poller: PollerFactory,
) -> None:
    async with poll_source() as source:
        items = [{"id": n} for n in range(1, 5)]
        source.route("/items", cursor_pages(lambda: items, page_size=4))
        poller = await make_poller(
            specs_yaml(poll_connector("api", paged_poll(source) | {"circuit": {"failureThreshold": 1}})),
            wrap_ingestor=lambda context: ClaimedElsewhereIngestor(context, held=2),
        )
        await until(lambda: runs(poller, "ok") == 1, 15, "the run once the claims were released")
        assert runs(poller, "claims_held") == 2
        assert runs(poller, "failed") == 0
        assert ids_of(await poller.events()) == ["1", "2", "3", "4"]
        status = await poller.status("acme", "api")
        assert (status["state"], status["failures"]) == ("active", "0")  # a threshold of 1 never tripped


class StuckIngestor(Ingestor):
    """The hub's ingestor, except that its second batch never returns (the process dies meanwhile)."""

    def __init__(self, context: HubContext) -> None:
        super().__init__(
            DedupeStore(context.redis, context.metrics, claim_ttl_s=CLAIM_TTL_S),
            Publisher(context.nats, context.metrics),
            context.metrics,
            claim_ttl_s=CLAIM_TTL_S,
        )
        self.calls = 0

    async def ingest(self, connector: EventSource, envelopes: Sequence[Envelope]) -> IngestResult:
        self.calls += 1
        if self.calls == 2:
            await asyncio.Event().wait()
        return await super().ingest(connector, envelopes)


async def test_items_stored_by_a_run_that_dies_are_counted(make_poller: PollerFactory) -> None:
    async with poll_source() as source:
        items = [{"id": n} for n in range(1, 9)]
        source.route("/items", cursor_pages(lambda: items, page_size=4))
        stuck: list[StuckIngestor] = []

        def wrap(context: HubContext) -> Ingestor:
            stuck.append(StuckIngestor(context))
            return stuck[0]

        poller = await make_poller(specs_yaml(poll_connector("api", paged_poll(source))), wrap_ingestor=wrap)
        await until(lambda: bool(stuck) and stuck[0].calls == 2, 10, "the run stuck on its second page")
        await poller.polling.stop(0)  # the run dies with page 2 in flight: nothing after it runs
        assert (await poller.status("acme", "api")).get("itemsPublished") == "4"
