"""rss poller: RSS 2.0 and Atom entries, stable ids, times, validators, 304 and non-feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from adapters.pollers.base import FetchRequest, FetchResponse, InvalidPayload, Page, PollState
from adapters.pollers.rss import RssPoller
from schemas.poll import PollSettings

FEED_URL = "https://blog.example.com/feed.xml"
RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>Example Engineering</title>
    <link>https://blog.example.com/</link>
    <description>Posts</description>
    <item>
      <title>Release 2.0</title>
      <link>https://blog.example.com/posts/release-2</link>
      <guid isPermaLink="false">urn:uuid:7c1b9a52-4f1e-4b1e-9a55-1d2c3b4a5f60</guid>
      <pubDate>Tue, 05 Mar 2024 10:30:00 +0100</pubDate>
      <dc:creator>Ada</dc:creator>
      <description>&lt;p&gt;What is new&lt;/p&gt;</description>
    </item>
    <item>
      <title>No guid here</title>
      <link>/posts/no-guid</link>
      <pubDate>Mon, 04 Mar 2024 08:00:00 GMT</pubDate>
    </item>
  </channel>
</rss>
"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Status</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2024-03-06T09:00:00Z</updated>
  <entry>
    <title>Incident resolved</title>
    <link href="https://status.example.com/incidents/42"/>
    <id>tag:status.example.com,2024:incident-42</id>
    <updated>2024-03-06T09:00:00Z</updated>
    <author><name>Ops</name></author>
    <summary>All good.</summary>
  </entry>
  <entry>
    <title>Maintenance</title>
    <link href="https://status.example.com/maintenance/7"/>
    <id>tag:status.example.com,2024:maintenance-7</id>
    <published>2024-03-01T22:00:00-05:00</published>
    <updated>2024-03-02T10:00:00Z</updated>
  </entry>
</feed>
"""


class FakeClient:
    """Records every request and answers with the canned response."""

    def __init__(self, response: FetchResponse) -> None:
        self.response = response
        self.requests: list[FetchRequest] = []

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        self.requests.append(request)
        return self.response


POLLER = RssPoller.configure(
    "blog", PollSettings.model_validate({"kind": "rss", "interval": "15m", "request": {"url": FEED_URL}})
)


def feed(body: bytes, **headers: str) -> FetchResponse:
    return FetchResponse(200, {"content-type": "application/rss+xml", **headers}, body, FEED_URL)


async def fetch(response: FetchResponse, state: PollState | None = None) -> tuple[Page, FakeClient]:
    client = FakeClient(response)
    return await POLLER.fetch_page(client, state or PollState(), None), client


async def test_rss_entries() -> None:
    page, client = await fetch(feed(RSS))
    assert client.requests == [FetchRequest(FEED_URL, headers={})]
    first, second = page.events
    assert first.id == "urn:uuid:7c1b9a52-4f1e-4b1e-9a55-1d2c3b4a5f60"
    assert second.id == "https://blog.example.com/posts/no-guid"  # no guid: the link, resolved against the URL
    assert [e.type for e in page.events] == ["blog.entry", "blog.entry"]
    assert first.subject == "https://blog.example.com/posts/release-2"
    assert first.time == datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
    assert second.time == datetime(2024, 3, 4, 8, tzinfo=UTC)
    assert first.data == {
        "id": "urn:uuid:7c1b9a52-4f1e-4b1e-9a55-1d2c3b4a5f60",
        "title": "Release 2.0",
        "link": "https://blog.example.com/posts/release-2",
        "summary": "<p>What is new</p>",
        "published": "2024-03-05T09:30:00+00:00",
        "updated": None,
        "author": "Ada",
        "feed_title": "Example Engineering",
    }
    assert orjson.loads(orjson.dumps(first.data)) == first.data
    assert page.newest_item_time == datetime(2024, 3, 5, 9, 30, tzinfo=UTC).timestamp()
    assert page.next_request is None
    assert not page.not_modified


async def test_atom_entries() -> None:
    page, _ = await fetch(feed(ATOM, **{"content-type": "application/atom+xml"}))
    first, second = page.events
    assert [e.id for e in page.events] == [
        "tag:status.example.com,2024:incident-42",
        "tag:status.example.com,2024:maintenance-7",
    ]
    assert first.time == datetime(2024, 3, 6, 9, tzinfo=UTC)  # only updated
    assert second.time == datetime(2024, 3, 2, 3, tzinfo=UTC)  # published wins over updated
    assert second.data["updated"] == "2024-03-02T10:00:00+00:00"
    assert first.data["author"] == "Ops"
    assert first.data["summary"] == "All good."
    assert first.data["feed_title"] == "Status"
    assert first.subject == "https://status.example.com/incidents/42"
    assert page.newest_item_time == datetime(2024, 3, 6, 9, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("body", [RSS, ATOM])
async def test_ids_are_stable_across_parses(body: bytes) -> None:
    once, _ = await fetch(feed(body))
    again, _ = await fetch(feed(body))
    assert [e.id for e in once.events] == [e.id for e in again.events]
    assert len({e.id for e in once.events}) == 2


async def test_validators_are_sent_and_taken() -> None:
    state = PollState(cursor="kept", etag='"old"', last_modified="Mon, 04 Mar 2024 08:00:00 GMT")
    response = feed(RSS, etag='"new"', **{"last-modified": "Tue, 05 Mar 2024 10:00:00 GMT"})
    page, client = await fetch(response, state)
    assert client.requests[0].headers == {
        "If-None-Match": '"old"',
        "If-Modified-Since": "Mon, 04 Mar 2024 08:00:00 GMT",
    }
    assert page.state == PollState(cursor="kept", etag='"new"', last_modified="Tue, 05 Mar 2024 10:00:00 GMT")


async def test_not_modified() -> None:
    state = PollState(etag='"old"')
    page, _ = await fetch(FetchResponse(304, {}, b"", FEED_URL), state)
    assert page.not_modified
    assert page.events == []
    assert page.state == state


async def test_empty_feed_is_fine() -> None:
    page, _ = await fetch(feed(b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'))
    assert page.events == []
    assert page.newest_item_time is None


async def test_bozo_feed_with_entries_is_read() -> None:
    broken = RSS.replace(b"</channel>\n</rss>", b"<unclosed></channel>")
    page, _ = await fetch(feed(broken))
    assert page.events[0].id == "urn:uuid:7c1b9a52-4f1e-4b1e-9a55-1d2c3b4a5f60"


@pytest.mark.parametrize(
    "body",
    [
        b"<?xml version='1.0'?><rss version='2.0'><channel><title>Oops</titl",
        b"<html><body>Sign in</body></html>",
        b"",
        b'{"a": 1}',
    ],
)
async def test_not_a_feed(body: bytes) -> None:
    with pytest.raises(InvalidPayload, match="not an RSS or Atom feed"):
        await fetch(feed(body, **{"content-type": "text/html"}))


async def test_entry_without_id_or_link() -> None:
    body = b'<rss version="2.0"><channel><title>t</title><item><title>Anonymous</title></item></channel></rss>'
    with pytest.raises(InvalidPayload, match="entry 0 has no id, guid or link"):
        await fetch(feed(body))


async def test_body_that_names_a_local_file_is_not_opened(tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(RSS)
    with pytest.raises(InvalidPayload, match="not an RSS or Atom feed"):
        await fetch(feed(str(local).encode()))
