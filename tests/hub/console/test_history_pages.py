"""The console's Events, Event, Replay and Job pages over HTTP on a real nats-server: filters and
cursor paging, the live fragment of newer rows, the event's journey, a replay from dry run to a
finished job, cancel, CSRF, scopes, and another tenant's events and jobs answered as missing ones."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from events.journey import JourneyWriter, RouteStep, attempt, routed, throttled
from events.streams import AUDIT_STREAM, REPLAY_STREAM
from hub.app.embedded import RunningServer
from hub.console.events_page import PAGE_SIZE
from hub.control.plane import Actor
from hub.gate.catalog import catalog_of
from hub.history.events import journey_of
from hub.jobs import replay
from hub.jobs.selection import Selection
from hub.jobs.store import JobStore
from hub.runtime.live import Live
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from tests.conftest import wait_for
from tests.hub.console.conftest import ConsoleUnderTest, Page
from tests.hub.control.fixtures import webhook_connector
from tests.hub.gate.harness import envelope, publish_event, stream_messages
from tests.hub.jobs.fixtures import job_ended, runner

READ, INVOKE = "connector.operation.read", "connector.operation.invoke"
ODD_ID = "delivery/1 with spaces?&%"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


async def audit_records(console: ConsoleUnderTest) -> list[dict[str, Any]]:
    return [orjson.loads(m.data) for m in await stream_messages(console.nc.jetstream(), AUDIT_STREAM)]


async def publish(console: ConsoleUnderTest, tenant: str, event_id: str, event_type: str = "github.push") -> None:
    await publish_event(console.nc.jetstream(), envelope(tenant, "gh", event_type, event_id=event_id))


def assert_alert(page: Page, status: int, code: str) -> None:
    assert page.status == status, page.text
    assert 'role="alert"' in page.text
    assert f'data-code="{code}"' in page.text


def link(page: Page, rel: str) -> str:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', page.text)
    assert match is not None, f"no {rel} link"
    return html.unescape(match.group(1))


def hidden_fields(page: Page, action: str) -> dict[str, str]:
    form = page.text.split(f'method="post" action="{action}"', 1)[1].split("</form>", 1)[0]
    return {name: html.unescape(value) for name, value in HIDDEN.findall(form)}


def event_ids(page: Page) -> list[str]:
    return [
        html.unescape(i) for i in re.findall(r'<th scope="row"><a href="/console/events/[^"]+">([^<]*)</a>', page.text)
    ]


async def test_the_events_page_lists_the_tenants_events_filtered_and_paged(console: ConsoleUnderTest) -> None:
    for n in range(PAGE_SIZE + 5):
        await publish(console, "a", f"a{n:03d}", "github.issues.opened" if n == 7 else "github.push")
    await publish(console, "b", "b-only")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    first = await browser.get("/console/events")
    assert first.status == 200, first.text
    shown = event_ids(first)
    assert shown == [f"a{n:03d}" for n in range(PAGE_SIZE + 4, 4, -1)]  # newest first, one page
    assert "b-only" not in first.text
    assert 'name="tenant"' not in first.text  # a tenant key has no tenant filter
    second = await browser.get(link(first, "next"))
    assert event_ids(second) == ["a004", "a003", "a002", "a001", "a000"]
    assert 'rel="next"' not in second.text
    oldest = await browser.get("/console/events?order=oldest&connector=gh")
    assert event_ids(oldest)[:2] == ["a000", "a001"]
    typed = await browser.get("/console/events?type=github.issues.*")
    assert event_ids(typed) == ["a007"]
    by_id = await browser.get("/console/events?connector=gh&id=a042")
    assert event_ids(by_id) == ["a042"]
    past = await browser.get("/console/events?until=2000-01-01T00:00:00Z")
    assert event_ids(past) == []
    assert "No event matches." in past.text

    await browser.sign_in(console.keys["operator"])
    everything = await browser.get("/console/events?tenant=b")
    assert event_ids(everything) == ["b-only"]


async def test_a_wrong_filter_is_named_in_an_alert_and_the_form_kept(console: ConsoleUnderTest) -> None:
    await console.browser.sign_in(console.keys["a"])
    page = await console.browser.get("/console/events?since=last+tuesday&connector=gh")
    assert_alert(page, 400, "bad_request")
    assert "since must be an RFC 3339 time or a duration" in page.text
    assert 'id="f-since" name="since" value="last tuesday"' in page.text
    assert 'aria-invalid="true"' in page.text
    assert_alert(await console.browser.get("/console/events?order=sideways"), 400, "bad_request")
    assert_alert(await console.browser.get("/console/events?connector=Not_A_Name"), 400, "bad_request")


async def test_the_newer_fragment_holds_only_rows_stored_after_the_newest_shown(console: ConsoleUnderTest) -> None:
    await publish(console, "a", "old-1")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    page = await browser.get("/console/events?connector=gh")
    newer = re.search(r'data-newer="([^"]+)" data-after="(\d+)"', page.text)
    assert newer is not None
    url, after = html.unescape(newer.group(1)), newer.group(2)
    assert url == "/console/events/newer?connector=gh"
    assert 'href="/console/events?connector=gh">Refresh</a>' in page.text  # the same without JavaScript
    await publish(console, "a", "new-1")
    await publish(console, "b", "new-of-b")
    fragment = await browser.get(f"{url}&after={after}")
    assert fragment.status == 200
    assert event_ids(fragment) == ["new-1"]
    newest = re.search(r'data-after="(\d+)"', fragment.text)
    assert newest is not None
    assert int(newest.group(1)) > int(after)
    assert event_ids(await browser.get(f"{url}&after={newest.group(1)}")) == []
    assert_alert(await browser.get(f"{url}&after=x"), 400, "bad_request")
    older = await browser.get("/console/events?order=oldest")
    assert "data-newer" not in older.text  # live rows only on the newest-first first page


async def test_the_event_page_shows_envelope_headers_provenance_and_the_journey(console: ConsoleUnderTest) -> None:
    js = console.nc.jetstream()
    event = envelope("a", "gh", "github.push", data={"title": "<script>alert(1)</script>"}, event_id=ODD_ID)
    await publish_event(js, event)
    sequence = (await js.stream_info("HUB_EVENTS")).state.last_seq
    invocation = f"a:gh:{ODD_ID}:hook"
    writer = JourneyWriter(console.nc)
    await writer.write(
        "a",
        "gh",
        routed(ODD_ID, sequence, "github.push", [RouteStep("hook", "allow", "all", "rule all allows", invocation)]),
    )
    await writer.write("a", "gh", throttled(ODD_ID, invocation, "hook", "rate", 0.25))
    await writer.write(
        "a",
        "gh",
        attempt(
            ODD_ID,
            invocation,
            "hook",
            number=1,
            status=503,
            latency_ms=12.5,
            delivered=False,
            error_class="transient",
            error="HTTP 503",
        ),
    )
    await writer.write(
        "a", "gh", attempt(ODD_ID, invocation, "hook", number=2, status=200, latency_ms=3.0, delivered=True)
    )

    async def journey_stored() -> bool:
        return len(await journey_of(console.nc, "a", "gh", ODD_ID)) == 4

    await wait_for(journey_stored, what="the journey records")
    await publish(console, "a", "not-routed")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    listing = await browser.get("/console/events?connector=gh")
    href = f"/console/events/a/gh/{quote(ODD_ID, safe='')}"
    assert f'href="{html.escape(href)}"' in listing.text
    page = await browser.get(href)
    assert page.status == 200, page.text
    text = page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert" not in text
    assert "Nats-Msg-Id" in text
    assert "ce-type" in text
    assert "hubverified" in text
    assert "hmac-sha256" in text
    timeline = text.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    kinds = re.findall(r"<strong>(Routed|Throttled|Attempt \d)</strong>", timeline)
    assert kinds == ["Routed", "Throttled", "Attempt 1", "Attempt 2"]
    assert "Route <strong>hook</strong>" in timeline
    assert "allow" in timeline
    assert "<code>all</code>" in timeline
    assert "250.0 ms" in timeline  # the throttle's delay
    assert "503" in timeline
    assert "12.5 ms" in timeline
    assert "transient" in timeline
    assert ">delivered</span>" in timeline
    assert ">failed</span>" in timeline
    plain = await browser.get("/console/events/a/gh/not-routed")
    assert plain.status == 200
    assert "Not routed yet" in plain.text
    assert '<ol class="timeline">' not in plain.text


async def test_another_tenants_event_and_job_are_the_same_404_as_missing_ones(console: ConsoleUnderTest) -> None:
    await publish(console, "b", "b-event")
    store = await JobStore.open(console.nc.jetstream())
    b_job = await replay.start(store, replay.ReplayRequest(Selection(tenant="b"), "subject"), created_by="t")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/events")).csrf()

    def same(existing: Page, missing: Page) -> None:
        assert existing.status == missing.status == 404, existing.text
        assert existing.text == missing.text

    same(await browser.get("/console/events/b/gh/b-event"), await browser.get("/console/events/b/gh/no-such"))
    same(await browser.get("/console/events/a/gh/b-event"), await browser.get("/console/events/a/gh/no-such"))
    same(await browser.get("/console/events?tenant=b"), await browser.get("/console/events?tenant=zz"))
    missing_job = "0" * 32
    same(await browser.get(f"/console/jobs/{b_job.id}"), await browser.get(f"/console/jobs/{missing_job}"))
    same(await browser.get(f"/console/jobs/{b_job.id}"), await browser.get("/console/jobs/not-a-job"))
    same(
        await browser.get(f"/console/jobs/{b_job.id}/progress"),
        await browser.get(f"/console/jobs/{missing_job}/progress"),
    )
    same(
        await browser.post(f"/console/jobs/{b_job.id}/cancel", {"csrf": token}),
        await browser.post(f"/console/jobs/{missing_job}/cancel", {"csrf": token}),
    )
    same(
        await browser.get("/console/replay?tenant=b&mode=subject"),
        await browser.get("/console/replay?tenant=zz&mode=subject"),
    )
    stored = await store.get(b_job.id)
    assert stored is not None
    assert stored.job.state == "pending"
    assert not stored.job.cancel_requested
    replay_page = await browser.get("/console/replay")
    assert b_job.id[:12] not in replay_page.text  # a's job list holds no job of b
    await browser.sign_in(console.keys["operator"])
    assert (await browser.get(f"/console/jobs/{b_job.id}")).status == 200


async def route_a_gh_to_a_subject(console: ConsoleUnderTest) -> None:
    actor = Actor("test")
    ref = [{"secretRef": {"source": "store", "name": "gh-secret"}}]
    route = {"name": "hook", "match": {"types": ["github.push"]}, "target": {"subject": "svc.a.hook"}}
    stored = await console.plane.specs.connector("a", "gh")
    assert stored is not None
    document = webhook_connector("a", "gh", ref, routes=[route])
    document["metadata"]["revision"] = stored.revision
    await console.plane.apply(ConnectorDocument.model_validate(document), actor)
    policy = {"allowedSubjects": ["svc.a"], "rules": [{"name": "pushes", "effect": "allow", "types": ["github.push"]}]}
    await console.plane.apply(
        PolicyDocument.model_validate(
            {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "a", "tenant": "a"}, "spec": policy}
        ),
        actor,
    )


async def test_replay_from_dry_run_to_a_succeeded_job(console: ConsoleUnderTest, nats_server: RunningServer) -> None:
    await route_a_gh_to_a_subject(console)
    for n in range(3):
        await publish(console, "a", f"r{n}")
    await publish(console, "a", "r-issue", "github.issues.opened")
    await publish(console, "b", "not-mine")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    gate = await browser.get("/console/replay?connector=gh&since=1h&mode=gate")
    assert gate.status == 200, gate.text
    assert "<strong>4</strong> events match" in gate.text
    decisions = gate.text.split("What the policy decides now", 1)[1].split("</table>", 1)[0]
    assert "1 event match no route" in decisions
    row = '<th scope="row">hook</th><td><span class="pill pill-allow">allow</span></td><td><code>pushes</code></td>'
    assert row + "<td>3</td>" in decisions

    dry = await browser.get("/console/replay?connector=gh&type=github.push&mode=subject")
    assert "<strong>3</strong> events match" in dry.text
    fields = hidden_fields(dry, "/console/replay")
    assert fields["tenant"] == "a"
    assert fields["type"] == "github.push"
    assert fields["mode"] == "subject"
    started = await browser.post("/console/replay", fields)
    assert started.status == 303, started.text
    job_id = started.headers["Location"].split("/console/jobs/", 1)[1].split("?", 1)[0]
    job_page = await browser.get(started.headers["Location"])
    assert "The replay is queued" in job_page.text
    assert 'data-live="/console/jobs/' in job_page.text
    [record] = [r for r in await audit_records(console) if r["action"] == "replay_start"]
    assert (record["tenant"], record["target"], record["outcome"]) == ("a", f"job/{job_id}", "accepted")

    store = await JobStore.open(console.nc.jetstream())
    async with runner(nats_server.url, Live(catalog_of([], []))):
        job = await job_ended(store, job_id)
    assert (job.state, job.progress.done, job.result) == ("succeeded", 3, {"mode": "subject", "events": 3})
    replayed = await stream_messages(console.nc.jetstream(), REPLAY_STREAM)
    assert sorted(m.subject for m in replayed) == ["hub.replay.a.gh.github.push"] * 3
    progress = await browser.get(f"/console/jobs/{job_id}/progress")
    assert ">succeeded</span>" in progress.text
    assert "3 of 3" in progress.text
    assert "data-final" in progress.text
    done = await browser.get(f"/console/jobs/{job_id}")
    assert "Cancel job" not in done.text
    assert job_id[:12] in (await browser.get("/console/replay")).text


async def test_a_wrong_replay_selection_is_named(console: ConsoleUnderTest) -> None:
    await console.browser.sign_in(console.keys["a"])
    page = await console.browser.get("/console/replay?id=x&mode=gate")
    assert_alert(page, 422, "invalid_spec")
    assert "an event id is looked up within one tenant and connector" in page.text
    assert_alert(await console.browser.get("/console/replay?since=soon&mode=gate"), 422, "invalid_spec")
    assert_alert(await console.browser.get("/console/replay?mode=sideways"), 422, "invalid_spec")


async def test_cancel_stops_a_pending_job_and_is_audited(console: ConsoleUnderTest) -> None:
    store = await JobStore.open(console.nc.jetstream())
    job = await replay.start(store, replay.ReplayRequest(Selection(tenant="a"), "gate"), created_by="t")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    page = await browser.get(f"/console/jobs/{job.id}")
    assert ">pending</span>" in page.text
    assert "Cancel job" in page.text
    canceled = await browser.post(f"/console/jobs/{job.id}/cancel", {"csrf": page.csrf()})
    assert (canceled.status, canceled.headers["Location"]) == (303, f"/console/jobs/{job.id}?notice=cancel_requested")
    stored = await store.get(job.id)
    assert stored is not None
    assert stored.job.state == "canceled"
    after = await browser.get(canceled.headers["Location"])
    assert ">canceled</span>" in after.text
    assert "Cancel job" not in after.text
    [record] = [r for r in await audit_records(console) if r["action"] == "job_cancel"]
    assert (record["tenant"], record["target"], record["outcome"]) == ("a", f"job/{job.id}", "requested")


async def test_replay_and_cancel_need_the_csrf_token(console: ConsoleUnderTest) -> None:
    store = await JobStore.open(console.nc.jetstream())
    job = await replay.start(store, replay.ReplayRequest(Selection(tenant="a"), "gate"), created_by="t")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/replay")).csrf()
    form = {"connector": "gh", "mode": "subject"}
    assert_alert(await browser.post("/console/replay", form), 403, "csrf_failed")
    assert_alert(await browser.post("/console/replay", form | {"csrf": token[::-1]}), 403, "csrf_failed")
    cross = await browser.post("/console/replay", form | {"csrf": token}, {"Origin": "https://evil.example"})
    assert_alert(cross, 403, "cross_origin")
    assert_alert(await browser.post(f"/console/jobs/{job.id}/cancel", {}), 403, "csrf_failed")
    assert [s.job.id for s in await store.all()] == [job.id]  # no replay started
    stored = await store.get(job.id)
    assert stored is not None
    assert stored.job.state == "pending"
    denied = [r["outcome"] for r in await audit_records(console) if r["action"] == "denied"]
    assert sorted(denied) == ["cross_origin", "csrf_failed", "csrf_failed", "csrf_failed"]


@pytest.mark.parametrize(
    ("scopes", "path", "allowed"),
    [
        (["connector.catalog.read"], "/console/events", False),
        ([READ], "/console/events", True),
        ([READ], "/console/replay", False),
        ([INVOKE], "/console/replay", True),
        ([INVOKE], "/console/events", False),
    ],
)
async def test_pages_need_their_scope(console: ConsoleUnderTest, scopes: list[str], path: str, allowed: bool) -> None:
    await console.browser.sign_in(await console.key("a", scopes))
    page = await console.browser.get(path)
    if allowed:
        assert page.status == 200, page.text
    else:
        assert_alert(page, 403, "insufficient_scope")


async def test_a_read_only_key_follows_a_job_but_cannot_cancel_it(console: ConsoleUnderTest) -> None:
    store = await JobStore.open(console.nc.jetstream())
    job = await replay.start(store, replay.ReplayRequest(Selection(tenant="a"), "gate"), created_by="t")
    browser = console.browser
    await browser.sign_in(await console.key("a", [READ]))
    page = await browser.get(f"/console/jobs/{job.id}")
    assert page.status == 200
    assert "Cancel job" not in page.text
    nav = page.text.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    assert ">Events</a>" in nav
    assert ">Replay</a>" not in nav
    assert_alert(await browser.post(f"/console/jobs/{job.id}/cancel", {"csrf": page.csrf()}), 403, "insufficient_scope")
    stored = await store.get(job.id)
    assert stored is not None
    assert stored.job.state == "pending"
