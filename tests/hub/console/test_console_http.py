"""The console over HTTP on a real bus: sign-in and the session cookie, security headers, CSRF,
ended sessions, tenant isolation, audited actions, and a Set key value that never comes back."""

from __future__ import annotations

import time

import orjson
import pytest
from yarl import URL

from events.streams import AUDIT_STREAM
from hub.console.security import CONTENT_SECURITY_POLICY
from hub.console.session import Session, SessionCodec, signing_secret
from hub.control.plane import Actor
from hub.gate.breaker import BreakerState
from hub.settings import Settings
from schemas.connector import ConnectorDocument
from tests.conftest import wait_for
from tests.hub.console.conftest import ConsoleUnderTest, Page
from tests.hub.control.fixtures import webhook_connector
from tests.hub.gate.harness import stream_messages

PAGES = ("/console/connectors", "/console/connectors/a/gh", "/console/keys", "/console/audit")
SECRET_VALUE = "whsec-console-test-7f3a9c1e5b"


async def audit_records(console: ConsoleUnderTest) -> list[dict[str, object]]:
    return [orjson.loads(m.data) for m in await stream_messages(console.nc.jetstream(), AUDIT_STREAM)]


def assert_alert(page: Page, status: int, code: str) -> None:
    assert page.status == status, page.text
    assert 'role="alert"' in page.text
    assert f'data-code="{code}"' in page.text


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(console: ConsoleUnderTest) -> None:
    page = await console.browser.sign_in(console.keys["a"])
    assert page.headers["Location"] == "/console/connectors"
    [cookie] = page.set_cookies
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "secure" not in attributes  # plain HTTP here; Secure when the request came over TLS
    secret_part = console.keys["a"].rsplit("_", 1)[1]
    assert secret_part not in cookie
    assert console.keys["a"] not in cookie
    assert (await console.browser.get("/console/connectors")).status == 200


async def test_a_wrong_key_gets_401_in_an_alert_and_is_audited(console: ConsoleUnderTest) -> None:
    page = await console.browser.post("/console/sign-in", {"key": "chk_0123456789abcdef_" + "x" * 43})
    assert page.status == 401
    assert 'role="alert"' in page.text
    assert "x" * 43 not in page.text
    assert not page.set_cookies
    records = await audit_records(console)
    assert any(r["action"] == "denied" and r["outcome"] == "invalid_key" for r in records)


async def test_without_a_session_pages_redirect_to_sign_in(console: ConsoleUnderTest) -> None:
    for path in PAGES:
        page = await console.browser.get(path)
        assert (page.status, page.headers["Location"]) == (303, "/console/sign-in"), path
    root = await console.browser.get("/")
    assert (root.status, root.headers["Location"]) == (303, "/console/")


async def test_every_console_answer_carries_the_security_headers(console: ConsoleUnderTest) -> None:
    anonymous = [await console.browser.get(p) for p in ("/", "/console/sign-in", "/console/static/console.js")]
    await console.browser.sign_in(console.keys["a"])
    pages = [await console.browser.get(p) for p in (*PAGES, "/console/connectors/b/gh", "/console/no-such-page")]
    for page in anonymous + pages:
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    for page in pages:
        assert page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in "".join(p.text for p in pages)  # no inline script: CSP allows 'self' only


async def test_a_form_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    console: ConsoleUnderTest,
) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/connectors/a/gh")).csrf()
    path = "/console/connectors/a/gh/enabled"
    assert_alert(await browser.post(path, {"revision": "1", "enabled": "false"}), 403, "csrf_failed")
    assert_alert(
        await browser.post(path, {"csrf": token[::-1], "revision": "1", "enabled": "false"}), 403, "csrf_failed"
    )
    cross = await browser.post(
        path, {"csrf": token, "revision": "1", "enabled": "false"}, {"Origin": "https://evil.example"}
    )
    assert_alert(cross, 403, "cross_origin")
    stored = await console.plane.specs.connector("a", "gh")
    assert stored is not None
    assert (stored.revision, stored.document.spec.enabled) == (1, True)  # type: ignore[union-attr]
    records = await audit_records(console)
    assert sorted(r["outcome"] for r in records if r["action"] == "denied") == [
        "cross_origin",
        "csrf_failed",
        "csrf_failed",
    ]


async def test_an_ended_session_is_refused(console: ConsoleUnderTest) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/connectors/a/gh")).csrf()
    codec = SessionCodec(signing_secret(Settings()))
    key_id = console.keys["a"].split("_")[1]
    expired = codec.dumps(Session(key_id, token, time.time() - 9 * 3600))
    browser.session.cookie_jar.clear()
    browser.session.cookie_jar.update_cookies({"hub_console": expired}, URL(browser.base + "/console/"))
    page = await browser.get("/console/connectors")
    assert (page.status, page.headers["Location"]) == (303, "/console/sign-in?ended=1")
    browser.session.cookie_jar.update_cookies({"hub_console": expired}, URL(browser.base + "/console/"))
    refused = await browser.post(
        "/console/connectors/a/gh/enabled", {"csrf": token, "revision": "1", "enabled": "false"}
    )
    assert_alert(refused, 401, "session_ended")
    assert (await console.plane.specs.connector("a", "gh")).document.spec.enabled  # type: ignore[union-attr]


async def test_a_revoked_key_signs_its_sessions_out(console: ConsoleUnderTest) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    assert (await browser.get("/console/connectors")).status == 200
    await console.plane.keys.revoke(console.keys["a"].split("_")[1])
    page = await browser.get("/console/connectors")
    assert (page.status, page.headers["Location"]) == (303, "/console/sign-in?ended=1")


async def test_a_tenant_key_sees_another_tenants_things_as_missing(console: ConsoleUnderTest) -> None:
    before = await console.plane.specs.connector("b", "gh")
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/connectors")).csrf()

    def same(existing: Page, missing: Page) -> None:
        assert existing.status == missing.status == 404
        assert existing.text == missing.text  # the pages name no request id

    same(await browser.get("/console/connectors/b/gh"), await browser.get("/console/connectors/b/nope"))
    same(await browser.get("/console/connectors/b/gh/status"), await browser.get("/console/connectors/b/nope/status"))
    for action, form in (
        ("enabled", {"revision": "1", "enabled": "false"}),
        ("poll", {}),
        ("secrets/gh-secret", {"value": "taken over"}),
    ):
        existing = await browser.post(f"/console/connectors/b/gh/{action}", {"csrf": token, **form})
        missing = await browser.post(f"/console/connectors/b/nope/{action}", {"csrf": token, **form})
        same(existing, missing)
    listing = await browser.get("/console/connectors")
    assert "a/gh" in listing.text
    assert "b/gh" not in listing.text
    assert (await browser.get("/console/connectors?tenant=b")).status == 404
    b_key_id = console.keys["b"].split("_")[1]
    keys = await browser.get("/console/keys")
    assert b_key_id not in keys.text
    same(
        await browser.post(f"/console/keys/{b_key_id}/revoke", {"csrf": token}),
        await browser.post("/console/keys/0000000000000000/revoke", {"csrf": token}),
    )
    assert (await console.plane.keys.get(b_key_id)).revoked_at is None  # type: ignore[union-attr]
    assert await console.plane.specs.connector("b", "gh") == before
    assert (await console.plane.secrets.info("b", "gh-secret")).versions[-1].version == 1  # type: ignore[union-attr]
    audit = await browser.get("/console/audit")
    assert "b/gh" not in audit.text
    assert (await browser.get("/console/audit?tenant=b")).status == 404


async def test_a_key_without_the_scope_gets_403_naming_it(console: ConsoleUnderTest) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a-read"])
    page = await browser.get("/console/connectors/a/gh")
    assert page.status == 200
    assert "Set key" not in page.text
    assert "Disable connector" not in page.text
    token = page.csrf()
    refused = await browser.post("/console/connectors/a/gh/secrets/gh-secret", {"csrf": token, "value": "x"})
    assert_alert(refused, 403, "insufficient_scope")
    assert "connector.credential.manage" in refused.text
    assert_alert(await browser.get("/console/keys"), 403, "insufficient_scope")


async def test_set_key_stores_a_version_and_the_value_never_comes_back(
    console: ConsoleUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/connectors/a/gh")).csrf()
    stored = await browser.post("/console/connectors/a/gh/secrets/gh-secret", {"csrf": token, "value": SECRET_VALUE})
    assert (stored.status, stored.headers["Location"]) == (303, "/console/connectors/a/gh?notice=secret_set")
    after = await browser.get(stored.headers["Location"])
    assert "set, version 2" in after.text
    assert "The new secret version is stored." in after.text
    empty = await browser.post("/console/connectors/a/gh/secrets/gh-secret", {"csrf": token, "value": ""})
    assert empty.status == 422
    unknown = await browser.post("/console/connectors/a/gh/secrets/other", {"csrf": token, "value": SECRET_VALUE})
    assert unknown.status == 404
    for path in PAGES:
        await browser.get(path)
    for page in browser.pages:
        assert SECRET_VALUE.encode() not in page.body
        assert SECRET_VALUE not in str(page.headers)
    assert all(SECRET_VALUE not in c.value for c in browser.session.cookie_jar)
    assert SECRET_VALUE not in caplog.text
    records = await audit_records(console)
    assert SECRET_VALUE.encode() not in b"".join(orjson.dumps(r) for r in records)
    [record] = [r for r in records if r["action"] == "secret_set" and r["target"] == "a/gh-secret"][-1:]
    assert record["keyId"] == console.keys["a"].split("_")[1]
    assert record["detail"] == {"version": 2}
    info = await console.plane.secrets.info("a", "gh-secret")
    assert info is not None
    assert info.versions[-1].version == 2


async def test_disable_and_enable_apply_the_spec_at_its_revision_and_are_audited(console: ConsoleUnderTest) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/connectors/a/gh")).csrf()
    first = await console.plane.specs.connector("a", "gh")
    assert first is not None
    form = {"csrf": token, "revision": str(first.revision), "enabled": "false"}
    done = await browser.post("/console/connectors/a/gh/enabled", form)
    assert done.headers["Location"] == "/console/connectors/a/gh?notice=disabled"
    stored = await console.plane.specs.connector("a", "gh")
    assert stored is not None
    assert stored.revision > first.revision
    assert not stored.document.spec.enabled  # type: ignore[union-attr]
    stale = await browser.post("/console/connectors/a/gh/enabled", form | {"enabled": "true"})
    assert stale.status == 409
    assert f"revision {stored.revision}" in stale.text
    page = await browser.get("/console/connectors/a/gh")
    assert "Enable connector" in page.text
    assert "pill-disabled" in page.text
    records = [r for r in await audit_records(console) if r["action"] == "connector_apply"]
    assert [(r["outcome"], r.get("keyId")) for r in records[-2:]] == [
        ("updated", console.keys["a"].split("_")[1]),
        ("conflict", console.keys["a"].split("_")[1]),
    ]


async def test_keys_are_created_once_shown_and_revoked(console: ConsoleUnderTest) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/keys")).csrf()
    created = await browser.post(
        "/console/keys", {"csrf": token, "scopes": "connector.catalog.read", "description": "ci", "tenant": "b"}
    )
    assert_alert(created, 403, "tenant_forbidden")
    created = await browser.post(
        "/console/keys", {"csrf": token, "scopes": "connector.catalog.read", "description": "ci"}
    )
    assert created.status == 201
    new_token = created.text.split('id="new-token" type="text" value="')[1].split('"')[0]
    key = await console.plane.keys.authenticate(new_token)
    assert key is not None
    assert (key.tenant, key.scopes) == ("a", frozenset({"connector.catalog.read"}))
    assert new_token not in (await browser.get("/console/keys")).text
    revoked = await browser.post(f"/console/keys/{key.id}/revoke", {"csrf": token})
    assert revoked.headers["Location"] == "/console/keys?notice=revoked"
    assert await console.plane.keys.authenticate(new_token) is None


async def test_a_key_cannot_grant_scopes_it_lacks(console: ConsoleUnderTest) -> None:
    limited = await console.key("a", ["connector.credential.manage"])
    browser = console.browser
    await browser.sign_in(limited)
    token = (await browser.get("/console/keys")).csrf()
    refused = await browser.post("/console/keys", {"csrf": token, "scopes": "connector.instance.manage"})
    assert_alert(refused, 403, "scope_not_held")
    assert len(await console.plane.keys.list("a")) == 3


async def test_the_audit_page_lists_the_tenants_records_newest_first_filtered(console: ConsoleUnderTest) -> None:
    browser = console.browser
    await browser.sign_in(console.keys["a"])
    token = (await browser.get("/console/connectors/a/gh")).csrf()
    for value in ("one", "two"):
        await browser.post("/console/connectors/a/gh/secrets/gh-secret", {"csrf": token, "value": value})

    async def listed() -> bool:
        return (await browser.get("/console/audit?action=secret_set")).text.count("a/gh-secret") == 2

    await wait_for(listed, what="the two secret_set records on the audit page")
    page = await browser.get("/console/audit?action=secret_set")
    assert "connector_apply" not in page.text
    rows = page.text.split("<tbody>")[1].split("<tr>")[1:]
    times = [row.split('<th scope="row">')[1].split("<")[0] for row in rows]
    assert times == sorted(times, reverse=True)
    outcome = await browser.get("/console/audit?outcome=signed_in")
    assert "console_sign_in" in outcome.text
    assert "secret_set" not in outcome.text.split("<tbody>")[1]
    assert (await browser.get("/console/audit?action=Bad*")).status == 400


async def test_the_connector_page_shows_each_routes_breaker_in_this_instance(console: ConsoleUnderTest) -> None:
    document = webhook_connector("a", "routed", [{"secretRef": {"source": "store", "name": "gh-secret"}}])
    target = {"http": {"url": "https://orders.example.com/hooks", "method": "POST"}}
    document["spec"]["routes"] = [{"name": "orders", "match": {"types": ["github.push"]}, "target": target}]
    await console.plane.apply(ConnectorDocument.model_validate(document), Actor("test"))
    await console.browser.sign_in(console.keys["a"])

    not_here = (await console.browser.get("/console/connectors/a/routed")).text
    assert "not dispatched here" in not_here
    console.breakers["states"] = {"http:https://orders.example.com:443": BreakerState.OPEN}
    page = (await console.browser.get("/console/connectors/a/routed")).text
    assert "Circuit breaker (this instance)" in page
    assert '<span class="pill pill-breaker-open">open</span>' in page
    console.breakers["states"] = {}
    assert (
        '<span class="pill pill-breaker-closed">closed</span>'
        in (await console.browser.get("/console/connectors/a/routed")).text
    )
