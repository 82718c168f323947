"""The console's deletion, Deleted and Retention pages over HTTP on a real bus: delete from the
connector page's confirmation, restore from the Deleted page (its spec back as a new revision),
conflicts as alerts, tenant isolation, CSRF, scopes, and the retention table."""

from __future__ import annotations

import html
import re

import orjson

from events.streams import AUDIT_STREAM, DLQ_STREAM, PREFIXES, STREAMS
from hub.control.plane import Actor
from schemas.connector import ConnectorDocument
from tests.hub.console.conftest import ConsoleUnderTest, Page
from tests.hub.control.fixtures import webhook_connector
from tests.hub.gate.harness import stream_messages


def assert_alert(page: Page, status: int, code: str) -> None:
    assert page.status == status, page.text
    assert 'role="alert"' in page.text
    assert f'data-code="{code}"' in page.text


def nav_labels(page: Page) -> list[str]:
    nav = page.text.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    return re.findall(r">([^<>]+)</a>", nav)


async def audit_records(console: ConsoleUnderTest) -> list[dict[str, object]]:
    return [orjson.loads(m.data) for m in await stream_messages(console.nc.jetstream(), AUDIT_STREAM)]


async def delete_from_page(console: ConsoleUnderTest, tenant: str, name: str) -> Page:
    confirm = await console.browser.get(f"/console/connectors/{tenant}/{name}/delete")
    assert confirm.status == 200, confirm.text
    revision = re.search(r'name="revision" value="(\d+)"', confirm.text)
    assert revision is not None
    form = {"csrf": confirm.csrf(), "revision": revision.group(1)}
    return await console.browser.post(f"/console/connectors/{tenant}/{name}/delete", form)


async def test_delete_list_restore_serves_the_spec_again_as_a_new_revision(console: ConsoleUnderTest) -> None:
    before = await console.plane.specs.connector("a", "gh")
    assert before is not None
    await console.browser.sign_in(console.keys["a"])
    page = await console.browser.get("/console/connectors/a/gh")
    assert 'href="/console/connectors/a/gh/delete"' in page.text
    assert "restorable for 7d" in page.text

    deleted = await delete_from_page(console, "a", "gh")
    assert (deleted.status, deleted.headers["Location"]) == (303, "/console/deleted?notice=deleted")
    assert await console.plane.specs.connector("a", "gh") is None
    assert (await console.browser.get("/console/connectors/a/gh")).status == 404

    listing = await console.browser.get(deleted.headers["Location"])
    assert listing.status == 200
    assert "The connector is deleted" in listing.text
    assert '<th scope="row">a/gh</th>' in listing.text
    assert "gh-secret" in listing.text
    assert 'action="/console/connectors/a/gh/restore"' in listing.text

    restored = await console.browser.post("/console/connectors/a/gh/restore", {"csrf": listing.csrf()})
    assert (restored.status, restored.headers["Location"]) == (303, "/console/connectors/a/gh?notice=restored")
    after = await console.plane.specs.connector("a", "gh")
    assert after is not None
    assert after.revision > before.revision
    assert after.document.model_dump(exclude={"metadata"}) == before.document.model_dump(exclude={"metadata"})
    assert await console.plane.secrets.info("a", "gh-secret") is not None
    page = await console.browser.get("/console/connectors/a/gh?notice=restored")
    assert page.status == 200
    assert "restored as a new revision" in page.text
    assert f"<dt>Revision</dt><dd>{after.revision}</dd>" in page.text
    assert "No deleted connector." in (await console.browser.get("/console/deleted")).text

    actions = {(r["action"], r["outcome"], r["target"]) for r in await audit_records(console)}
    assert {("connector_delete", "trashed", "a/gh"), ("connector_restore", "restored", "a/gh")} <= actions


async def test_a_restore_conflict_is_an_alert_and_changes_nothing(console: ConsoleUnderTest) -> None:
    await console.browser.sign_in(console.keys["a"])
    await delete_from_page(console, "a", "gh")
    await console.plane.secrets.set("a", "other", b"another secret")
    again = webhook_connector("a", "gh", [{"secretRef": {"source": "store", "name": "other"}}])
    await console.plane.apply(ConnectorDocument.model_validate(again), Actor("test"))
    csrf = (await console.browser.get("/console/deleted")).csrf()
    answer = await console.browser.post("/console/connectors/a/gh/restore", {"csrf": csrf})
    assert_alert(answer, 409, "restore_conflict")
    assert "a/gh" in html.unescape(answer.text)
    assert len(await console.plane.trash.entries("a")) == 1
    records = await audit_records(console)
    assert any(r["action"] == "connector_restore" and r["outcome"] == "conflict" for r in records)


async def test_a_stale_confirmation_is_a_revision_conflict(console: ConsoleUnderTest) -> None:
    await console.browser.sign_in(console.keys["a"])
    confirm = await console.browser.get("/console/connectors/a/gh/delete")
    form = {"csrf": confirm.csrf(), "revision": "999"}
    assert_alert(await console.browser.post("/console/connectors/a/gh/delete", form), 409, "revision_conflict")
    assert await console.plane.specs.connector("a", "gh") is not None
    form["revision"] = "latest"
    assert_alert(await console.browser.post("/console/connectors/a/gh/delete", form), 422, "invalid_spec")


async def test_another_tenants_connector_is_as_missing_as_an_unknown_one(console: ConsoleUnderTest) -> None:
    await console.plane.delete_connector("b", "gh", Actor("test"))
    await console.browser.sign_in(console.keys["a"])
    listing = await console.browser.get("/console/deleted")
    assert "b/gh" not in listing.text
    csrf = listing.csrf()
    for tenant, name in (("b", "gh"), ("a", "missing")):
        confirm = await console.browser.get(f"/console/connectors/{tenant}/{name}/delete")
        restore = await console.browser.post(f"/console/connectors/{tenant}/{name}/restore", {"csrf": csrf})
        delete = await console.browser.post(
            f"/console/connectors/{tenant}/{name}/delete", {"csrf": csrf, "revision": "1"}
        )
        for answer in (confirm, restore, delete):
            assert_alert(answer, 404, "not_found")
    assert await console.plane.trash.entries("b") != []
    operator = console.new_browser()
    await operator.sign_in(console.keys["operator"])
    assert '<th scope="row">b/gh</th>' in (await operator.get("/console/deleted")).text


async def test_delete_and_restore_need_csrf_and_the_manage_scope(console: ConsoleUnderTest) -> None:
    await console.browser.sign_in(console.keys["a"])
    forged = {"csrf": "forged", "revision": "1"}
    assert_alert(await console.browser.post("/console/connectors/a/gh/delete", forged), 403, "csrf_failed")
    assert await console.plane.specs.connector("a", "gh") is not None
    await console.plane.delete_connector("a", "gh", Actor("test"))
    assert_alert(await console.browser.post("/console/connectors/a/gh/restore", forged), 403, "csrf_failed")
    assert await console.plane.specs.connector("a", "gh") is None

    reader = console.new_browser()
    await reader.sign_in(console.keys["a-read"])
    listing = await reader.get("/console/deleted")
    assert listing.status == 200
    assert '<th scope="row">a/gh</th>' in listing.text
    assert "/restore" not in listing.text
    assert "Deleted" not in nav_labels(listing)
    assert_alert(await reader.get("/console/connectors/a/gh/delete"), 403, "insufficient_scope")
    answer = await reader.post("/console/connectors/a/gh/restore", {"csrf": listing.csrf()})
    assert_alert(answer, 403, "insufficient_scope")
    assert await console.plane.specs.connector("a", "gh") is None


async def test_retention_lists_every_stream_for_operators_only(console: ConsoleUnderTest) -> None:
    js = console.nc.jetstream()
    for route in ("route", "route", "other"):
        await js.publish(f"{PREFIXES[DLQ_STREAM]}.a.gh.{route}", b"x" * 100)
    await console.plane.delete_connector("a", "gh", Actor("test"))
    tenant = console.new_browser()
    await tenant.sign_in(console.keys["a"])
    assert "Retention" not in nav_labels(await tenant.get("/console/connectors"))
    assert_alert(await tenant.get("/console/retention"), 403, "operator_only")

    await console.browser.sign_in(console.keys["operator"])
    page = await console.browser.get("/console/retention")
    assert page.status == 200, page.text
    assert "Retention" in nav_labels(page)
    rows = dict(re.findall(r'<th scope="row">(HUB_\w+)</th>(.*?)</tr>', page.text, re.S))
    assert set(rows) == set(STREAMS)
    dlq = (await js.stream_info(DLQ_STREAM)).state
    cells = re.findall(r"<td>([^<]*)</td>", rows[DLQ_STREAM])
    assert cells[2:] == [f"{dlq.bytes:,}", "3", "2"]  # bytes, messages, distinct subjects
    assert cells[0] != "no limit"
    assert "<dt>Deleted connectors restorable for</dt><dd>7d</dd>" in page.text
    assert "<dt>Deleted connectors kept now</dt><dd>1</dd>" in page.text
