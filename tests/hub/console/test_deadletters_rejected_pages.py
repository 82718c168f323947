"""The Dead letters and Rejected pages over HTTP on a real nats-server and valkey-server: listing,
one record, redrive and discard (one, selected, all matching as a job), retry of a kept request
after its key is fixed, tenant isolation (another tenant's record is the same 404 page as a missing
one), CSRF, scopes, audit records, signatures never shown; and the connectors page's rates."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from events.deadletter import DeadLetter, FailureClass
from events.streams import AUDIT_STREAM, INVOCATIONS_STREAM
from events.subjects import dlq_subject, rejected_subject
from hub.app.embedded import RunningServer
from hub.control.plane import Actor
from hub.control.rates import Counts, RateStore
from hub.history.deadletters import get_dead_letter
from hub.ingress.rejected import RejectedRecord
from hub.jobs.store import JobStore
from tests.hub.console.conftest import ConsoleUnderTest, Page, console_under_test
from tests.hub.control.fixtures import MASTER_KEY
from tests.hub.gate.harness import stream_messages
from tests.hub.ingress.signing import github_headers

pytestmark = pytest.mark.integration

READ_ONLY = ["connector.catalog.read", "connector.operation.read"]
BODY = b'{"zen": "Keep it logically awesome.", "hook_id": 7, "note": "<script>alert(1)</script>"}'
SENDER_SECRET = "the secret the sender signs with"


@pytest.fixture
async def hub(
    nats_server: RunningServer, valkey_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ConsoleUnderTest]:
    """tests/hub/console/conftest.py's console with Valkey (retry, rates), `a-read` holding READ_ONLY."""
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)
    async with console_under_test(nats_server, valkey_server, read_only=READ_ONLY, console_redis=True) as under_test:
        yield under_test


async def dead_letter(hub: ConsoleUnderTest, tenant: str, route: str = "hook", error: str = "http 503") -> int:
    """A dead letter of `tenant`/gh in HUB_DLQ; its sequence."""
    envelope = {"specversion": "1.0", "id": f"ev-{time.monotonic_ns()}", "type": "github.push", "data": BODY.decode()}
    letter = DeadLetter(
        invocation_id=f"{tenant}:gh:{envelope['id']}:{route}",
        tenant=tenant,
        connector="gh",
        route=route,
        target="http://127.0.0.1:9/hook",
        failure_class=FailureClass.TRANSIENT,
        error=error,
        attempts=3,
        first_attempt_at=None,
        failed_at="2026-12-06T09:00:00Z",
        envelope=orjson.dumps(envelope),
    )
    ack = await hub.nc.jetstream().publish(dlq_subject(tenant, "gh", route), letter.to_json())
    return ack.seq


async def kept(hub: ConsoleUnderTest, tenant: str, body: bytes = BODY) -> int:
    """A GitHub delivery to `tenant`/gh signed with SENDER_SECRET, kept as refused (bad signature)."""
    headers = github_headers(body, SENDER_SECRET)
    record = RejectedRecord(
        tenant=tenant,
        connector="gh",
        provider="github",
        error="invalid_signature",
        reason="mismatch",
        detail="no signature matched",
        status=401,
        received_at=time.time(),
        remote="127.0.0.1",
        method="POST",
        url=f"http://127.0.0.1:8080/hooks/{tenant}/gh",
        headers=list(headers.items()),
        withheld=["Authorization"],
        body=body,
        body_bytes=len(body),
    )
    ack = await hub.nc.jetstream().publish(rejected_subject(tenant, "gh"), record.to_json())
    return ack.seq


async def audit_records(hub: ConsoleUnderTest, action: str) -> list[dict[str, Any]]:
    records = [orjson.loads(m.data) for m in await stream_messages(hub.nc.jetstream(), AUDIT_STREAM)]
    return [r for r in records if r["action"] == action]


def assert_alert(page: Page, status: int, code: str) -> None:
    assert page.status == status, page.text
    assert 'role="alert"' in page.text
    assert f'data-code="{code}"' in page.text


def main_of(page: Page) -> str:
    """The page's main content (the header names the key, which differs between keys)."""
    return page.text[page.text.index("<main") :]


async def test_dead_letters_list_filter_and_show_escaped(hub: ConsoleUnderTest) -> None:
    own = await dead_letter(hub, "a", route="hook", error="http 503 <b>bold</b>")
    other_route = await dead_letter(hub, "a", route="audit")
    foreign = await dead_letter(hub, "b")
    await hub.browser.sign_in(hub.keys["a"])

    listing = await hub.browser.get("/console/deadletters")
    assert listing.status == 200
    assert f'href="/console/deadletters/{own}"' in listing.text
    assert f'href="/console/deadletters/{other_route}"' in listing.text
    assert f'href="/console/deadletters/{foreign}"' not in listing.text  # tenant b's
    filtered = await hub.browser.get("/console/deadletters?route=audit")
    assert f'href="/console/deadletters/{own}"' not in filtered.text
    assert f'href="/console/deadletters/{other_route}"' in filtered.text
    assert_alert(await hub.browser.get("/console/deadletters?class=nope"), 400, "bad_request")

    one = await hub.browser.get(f"/console/deadletters/{own}")
    assert one.status == 200
    assert "http 503 &lt;b&gt;bold&lt;/b&gt;" in one.text
    assert "<b>bold</b>" not in one.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in one.text  # the envelope, pretty-printed and escaped
    assert '"specversion": "1.0"'.replace('"', "&#34;") in one.text


async def test_another_tenants_dead_letter_is_the_same_404_as_a_missing_one(hub: ConsoleUnderTest) -> None:
    foreign = await dead_letter(hub, "b")
    await hub.browser.sign_in(hub.keys["a"])
    answers = [
        await hub.browser.get(path)
        for path in (f"/console/deadletters/{foreign}", "/console/deadletters/999999", "/console/deadletters/x1")
    ]
    for page in answers:
        assert_alert(page, 404, "not_found")
    assert main_of(answers[0]) == main_of(answers[1]) == main_of(answers[2])
    csrf = (await hub.browser.get("/console/deadletters")).csrf()
    for action in ("redrive", "discard"):
        page = await hub.browser.post(f"/console/deadletters/{foreign}/{action}", {"csrf": csrf})
        assert_alert(page, 404, "not_found")
    assert await get_dead_letter(hub.nc, foreign) is not None  # untouched
    selected = await hub.browser.post("/console/deadletters/discard", {"csrf": csrf, "seq": str(foreign)})
    assert selected.status == 303  # another tenant's is skipped as a missing one
    assert await get_dead_letter(hub.nc, foreign) is not None


async def test_redrive_one_publishes_an_invocation_deletes_the_letter_and_audits(hub: ConsoleUnderTest) -> None:
    seq = await dead_letter(hub, "a")
    await hub.browser.sign_in(hub.keys["a"])
    csrf = (await hub.browser.get(f"/console/deadletters/{seq}")).csrf()

    answer = await hub.browser.post(f"/console/deadletters/{seq}/redrive", {"csrf": csrf})

    assert (answer.status, answer.headers["Location"]) == (303, "/console/deadletters?notice=redriven")
    assert await get_dead_letter(hub.nc, seq) is None
    [invocation] = await stream_messages(hub.nc.jetstream(), INVOCATIONS_STREAM)
    assert invocation.subject == "hub.invocations.a.gh.hook"
    assert (invocation.headers or {})["Hub-Invocation-Id"].startswith("a:gh:ev-")
    [record] = await audit_records(hub, "deadletter_redrive")
    assert (record["tenant"], record["target"], record["outcome"]) == ("a", f"dlq/{seq}", "redriven")
    notice = await hub.browser.get(answer.headers["Location"])
    assert 'role="status"' in notice.text
    assert "sent again" in notice.text


async def test_redrive_selected_and_all_matching_start_jobs(hub: ConsoleUnderTest) -> None:
    first, second = await dead_letter(hub, "a"), await dead_letter(hub, "a", route="audit")
    await hub.browser.sign_in(hub.keys["a"])
    csrf = (await hub.browser.get("/console/deadletters")).csrf()

    selected = await hub.browser.post("/console/deadletters/redrive", {"csrf": csrf, "seq": [str(first), str(second)]})
    everything = await hub.browser.post("/console/deadletters/redrive", {"csrf": csrf, "all": "1", "route": "audit"})

    jobs = {s.job.id: s.job for s in await (await JobStore.open(hub.nc.jetstream())).all()}
    for answer in (selected, everything):
        assert answer.status == 303
        job_id = answer.headers["Location"].rsplit("job=", 1)[1]
        assert jobs[job_id].tenant == "a"
        shown = await hub.browser.get(answer.headers["Location"])
        assert f'href="/console/jobs/{job_id}"' in shown.text
    by_id = {answer.headers["Location"].rsplit("job=", 1)[1] for answer in (selected, everything)}
    params = [jobs[job_id].params for job_id in sorted(by_id)]
    assert {"seqs": [first, second]} in params
    assert {"filter": {"tenant": "a", "route": "audit"}} in params
    assert len(await audit_records(hub, "deadletter_redrive")) == 2
    none = await hub.browser.post("/console/deadletters/redrive", {"csrf": csrf})
    assert_alert(none, 422, "invalid_spec")


async def test_discard_selected_deletes_and_audits_each(hub: ConsoleUnderTest) -> None:
    first, second = await dead_letter(hub, "a"), await dead_letter(hub, "a")
    await hub.browser.sign_in(hub.keys["operator"])
    csrf = (await hub.browser.get("/console/deadletters")).csrf()

    answer = await hub.browser.post("/console/deadletters/discard", {"csrf": csrf, "seq": [str(first), str(second)]})

    assert answer.status == 303
    assert await get_dead_letter(hub.nc, first) is None
    assert await get_dead_letter(hub.nc, second) is None
    records = await audit_records(hub, "deadletter_discard")
    assert sorted(r["target"] for r in records) == [f"dlq/{first}", f"dlq/{second}"]


async def test_forms_need_csrf_and_the_invoke_scope(hub: ConsoleUnderTest) -> None:
    seq, kept_seq = await dead_letter(hub, "a"), await kept(hub, "a")
    await hub.browser.sign_in(hub.keys["a"])
    refused = await hub.browser.post(f"/console/deadletters/{seq}/redrive", {"csrf": "forged"})
    assert_alert(refused, 403, "csrf_failed")
    refused = await hub.browser.post(f"/console/rejected/a/gh/{kept_seq}/retry", {})
    assert_alert(refused, 403, "csrf_failed")

    reader = hub.new_browser()
    await reader.sign_in(hub.keys["a-read"])
    page = await reader.get(f"/console/deadletters/{seq}")
    assert page.status == 200
    assert "/redrive" not in page.text
    csrf = page.csrf()
    for path in (f"/console/deadletters/{seq}/redrive", "/console/deadletters/discard"):
        assert_alert(await reader.post(path, {"csrf": csrf, "seq": str(seq)}), 403, "insufficient_scope")
    assert_alert(
        await reader.post(f"/console/rejected/a/gh/{kept_seq}/retry", {"csrf": csrf}), 403, "insufficient_scope"
    )
    assert await get_dead_letter(hub.nc, seq) is not None


async def test_rejected_list_and_show_withhold_credentials_and_hide_signatures(hub: ConsoleUnderTest) -> None:
    seq, foreign = await kept(hub, "a"), await kept(hub, "b")
    await hub.browser.sign_in(hub.keys["a"])

    listing = await hub.browser.get("/console/rejected")
    assert f'href="/console/rejected/a/gh/{seq}"' in listing.text
    assert f"/console/rejected/b/gh/{foreign}" not in listing.text
    assert "invalid_signature: mismatch" in listing.text

    one = await hub.browser.get(f"/console/rejected/a/gh/{seq}")
    assert one.status == 200
    assert "Authorization</th><td>withheld" in one.text
    assert "X-Hub-Signature-256</th><td>kept, not shown" in one.text
    assert "sha256=" not in one.text  # the signature value never
    assert "X-GitHub-Event</th><td><code>push</code>" in one.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in one.text
    assert "<script>alert" not in one.text


async def test_another_tenants_kept_request_is_the_same_404_as_a_missing_one(hub: ConsoleUnderTest) -> None:
    foreign = await kept(hub, "b")
    await hub.browser.sign_in(hub.keys["a"])
    paths = (f"/console/rejected/b/gh/{foreign}", f"/console/rejected/a/gh/{foreign}", "/console/rejected/a/gh/0x")
    answers = [await hub.browser.get(path) for path in paths]
    for page in answers:
        assert_alert(page, 404, "not_found")
    assert main_of(answers[0]) == main_of(answers[1]) == main_of(answers[2])
    csrf = (await hub.browser.get("/console/rejected")).csrf()
    assert_alert(await hub.browser.post(f"/console/rejected/b/gh/{foreign}/retry", {"csrf": csrf}), 404, "not_found")
    assert_alert(await hub.browser.get("/console/rejected?tenant=b"), 404, "not_found")


async def test_retry_is_still_refused_then_recovered_after_the_key_is_fixed_then_duplicate(
    hub: ConsoleUnderTest,
) -> None:
    seq = await kept(hub, "a")
    await hub.browser.sign_in(hub.keys["a"])
    path = f"/console/rejected/a/gh/{seq}"
    csrf = (await hub.browser.get(path)).csrf()

    before = await hub.browser.post(f"{path}/retry", {"csrf": csrf})
    assert before.status == 200
    assert 'data-outcome="still_refused"' in before.text
    assert "invalid_signature" in before.text

    await hub.plane.set_secret("a", "gh-secret", SENDER_SECRET.encode(), Actor("test"))
    recovered = await hub.browser.post(f"{path}/retry", {"csrf": csrf})
    assert 'data-outcome="recovered"' in recovered.text
    again = await hub.browser.post(f"{path}/retry", {"csrf": csrf})
    assert 'data-outcome="duplicate"' in again.text

    events = await stream_messages(hub.nc.jetstream(), "HUB_EVENTS")
    assert len(events) == 1
    assert (events[0].headers or {}).get("ce-hubrecoveredat")
    outcomes = [r["outcome"] for r in await audit_records(hub, "rejected_retry")]
    assert outcomes == ["still_refused", "recovered", "duplicate"]
    assert all(SENDER_SECRET not in page.text for page in hub.browser.pages)


async def test_the_connectors_page_shows_rates_for_the_rows_shown(
    hub: ConsoleUnderTest, valkey_server: RunningServer
) -> None:
    redis = Redis.from_url(valkey_server.url)
    try:
        await RateStore(redis).add({("a", "gh"): Counts(accepted=20, refused=5)})
    finally:
        await redis.aclose()
    await hub.browser.sign_in(hub.keys["operator"])
    page = await hub.browser.get("/console/connectors")
    row_a = page.text[page.text.index('href="/console/connectors/a/gh"') :].split("</tr>", 1)[0]
    row_b = page.text[page.text.index('href="/console/connectors/b/gh"') :].split("</tr>", 1)[0]
    assert "<td>4.0</td>" in row_a
    assert "<td>20.0 %</td>" in row_a
    assert row_b.count("<td>n/a</td>") == 1
    assert "<td>0.0</td>" in row_b
    assert "Events per minute" in page.text
    assert "Rejection rate" in page.text
