"""Redaction over a real hub: what the rules hide appears in no stored event (body or headers), no log
record and no history page; hashes join within a tenant and not across; truncation on and off; a
connector without rules publishes what it did before."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web
from nats.js.api import RawStreamMsg

from events.envelope import headers_to_attributes
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from hub.settings import Settings
from tests.conftest import HubFactory, HubUnderTest, wait_for
from tests.hub.control.fixtures import MASTER_KEY
from tests.hub.ingress.signing import github_headers

pytestmark = pytest.mark.integration

SECRET = "redaction e2e github secret"
RULES = """
  redact:
    - {path: /pusher/email, action: mask}
    - {path: /sender/login, action: hash}
    - {path: /head_commit/message, action: drop}
    - {path: /commits/*/author/email, action: mask}"""


def connector(tenant: str, name: str, extra: str = "") -> str:
    return f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: {name}, tenant: {tenant}}}
spec:
  type: webhook
  provider: github
  secrets: [{{name: k1, secretRef: {{source: env, name: REDACTION_GH_SECRET}}}}]{extra}
"""


SPECS = "---".join(
    [
        connector("acme", "gh", RULES),
        connector("beta", "gh", RULES),
        connector("acme", "plain"),
        connector("acme", "big", "\n  truncateOver: 2048"),
    ]
)
HIDDEN = ["ada.hidden@example.com", "ada-hidden-login", "Hidden commit message", "bob.hidden@example.com"]


def push(**overrides: Any) -> bytes:
    body = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "octo-org/hello-world"},
        "pusher": {"name": "ada", "email": HIDDEN[0]},
        "sender": {"login": HIDDEN[1], "id": 2},
        "head_commit": {"id": "abc", "message": HIDDEN[2]},
        "commits": [{"id": "abc", "author": {"name": "Bob", "email": HIDDEN[3]}}],
    }
    return orjson.dumps({**body, **overrides})


@dataclass
class Setup:
    hub: HubUnderTest
    api: str
    session: aiohttp.ClientSession
    key: str

    async def history(self, tenant: str, name: str, event_id: str) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.key}"}
        url = f"{self.api}/v1/connectors/{tenant}/{name}/events/{quote(event_id, safe='')}"
        async with self.session.get(url, headers=headers) as response:
            return response.status, await response.read()


@pytest.fixture
async def setup(make_hub: HubFactory, nats_server: RunningServer) -> AsyncIterator[Setup]:
    """A hub with each tenant's redaction key in its store, and its admin API (an operator key)."""
    nc = await nats.connect(nats_server.url)
    plane = await ControlPlane.open(nc.jetstream(), load_master_key(MASTER_KEY, None))
    await plane.secrets.set("acme", "redaction-key", b"acme's redaction key")
    await plane.secrets.set("beta", "redaction-key", b"beta's redaction key")
    hub = await make_hub(SPECS, env={"REDACTION_GH_SECRET": SECRET}, master_key=MASTER_KEY)
    admin = AdminContext(
        plane, "http://hub.test", None, 300, nc=hub.nc, redis=hub.redis, settings=Settings(master_key=MASTER_KEY)
    )
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    key, _ = await plane.create_key(None, ["connector.operation.read"], "t", Actor("t"))
    session = aiohttp.ClientSession()
    try:
        yield Setup(hub, f"http://{host}:{port}", session, key)
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()


async def deliver(hub: HubUnderTest, path: str, body: bytes) -> str:
    reply = await hub.post(path, body, github_headers(body, SECRET))
    assert reply.status == 202, reply.body
    (event_id,) = reply.json()["ids"]
    return str(event_id)


def stored(messages: list[RawStreamMsg], event_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The envelope (as JSON) and the decoded ce-* attributes of the stored event with that id."""
    for message in messages:
        envelope = orjson.loads(message.data or b"")
        if envelope["id"] == event_id:
            return envelope, headers_to_attributes(message.headers)
    raise AssertionError(f"event {event_id} not stored")


async def test_hidden_values_reach_no_stream_log_or_history_page(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = push()
    first = await deliver(setup.hub, "acme/gh", body)
    second = await deliver(setup.hub, "acme/gh", push(ref="refs/heads/dev"))  # another delivery, same login
    other = await deliver(setup.hub, "beta/gh", body)
    messages = await setup.hub.events()
    assert len(messages) == 3

    for message in messages:  # the raw bytes of every stored message, body and headers
        raw = (message.data or b"") + orjson.dumps(message.headers)
        for hidden in HIDDEN:
            assert hidden.encode() not in raw
    for record in caplog.records:
        for hidden in HIDDEN:
            assert hidden not in repr(record.__dict__)
    for tenant, event_id in (("acme", first), ("beta", other)):
        status, page = await setup.history(tenant, "gh", event_id)
        assert status == 200, page
        assert b"[redacted]" in page
        for hidden in HIDDEN:
            assert hidden.encode() not in page

    envelope, attributes = stored(messages, first)
    data = envelope["data"]
    assert data["pusher"] == {"name": "ada", "email": "[redacted]"}
    assert data["head_commit"] == {"id": "abc"}
    assert data["commits"][0]["author"] == {"name": "Bob", "email": "[redacted]"}
    assert data["ref"] == "refs/heads/main"
    assert orjson.loads(attributes["hubredactions"]) == {
        "count": 4,
        "paths": ["/pusher/email", "/sender/login", "/head_commit/message", "/commits/*/author/email"],
    }
    assert envelope["hubredactions"] == attributes["hubredactions"]
    assert envelope["hubbodysha256"] == hashlib.sha256(body).hexdigest()  # of the bytes GitHub signed
    assert (envelope["type"], envelope["subject"]) == ("github.push", "octo-org/hello-world")

    again, _ = stored(messages, second)
    beta, _ = stored(messages, other)
    login = data["sender"]["login"]
    assert len(login) == 64
    assert again["data"]["sender"]["login"] == login  # equal values join within the tenant
    assert beta["data"]["sender"]["login"] != login  # and not across tenants


async def test_without_rules_the_stored_envelope_embeds_the_body_as_sent(setup: Setup) -> None:
    body = b'{"ref":  "refs/heads/main", "pusher": {"email": "kept@example.com"}}'  # spacing as sent
    event_id = await deliver(setup.hub, "acme/plain", body)
    envelope_bytes = (await setup.hub.events())[-1].data or b""
    assert b'"data":' + body in envelope_bytes
    envelope = orjson.loads(envelope_bytes)
    assert envelope["id"] == event_id
    assert not {"hubredactions", "hubtruncated", "huboriginalsize"} & set(envelope)


async def test_truncation_on_cuts_to_fit_and_off_keeps_everything(setup: Setup) -> None:
    body = push(notes="n" * 20_000)
    cut_id = await deliver(setup.hub, "acme/big", body)
    whole_id = await deliver(setup.hub, "acme/plain", body)
    messages = await setup.hub.events()

    cut, attributes = stored(messages, cut_id)
    assert attributes["hubtruncated"] == "true"
    assert attributes["huboriginalsize"] == str(len(body))
    assert len(orjson.dumps(cut["data"])) <= 2048
    assert cut["data"]["sender"]["id"] == 2  # numbers and keys kept; only long strings are cut
    assert cut["data"]["notes"] == "n" * len(cut["data"]["notes"])

    whole, attributes = stored(messages, whole_id)
    assert "hubtruncated" not in attributes
    assert whole["data"]["notes"] == "n" * 20_000


async def test_a_refused_request_to_a_connector_with_rules_is_kept_without_its_body(setup: Setup) -> None:
    """A refused request's body holds what the rules hide, and redacting it would break the signature a
    retry checks: it is kept without its body, while a connector without rules keeps its body."""
    body = push()
    bad = github_headers(body, "not the secret")
    assert (await setup.hub.post("acme/gh", body, bad)).status == 401
    assert (await setup.hub.post("acme/plain", body, bad)).status == 401

    async def kept() -> list[bytes]:
        info = await setup.hub.js.stream_info("HUB_REJECTED")
        return (
            [
                (await setup.hub.js.get_msg("HUB_REJECTED", seq)).data or b""
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
            ]
            if info.state.messages
            else []
        )

    await wait_for(lambda: _count_is(kept, 2), timeout=10, what="both refusals kept")
    by_connector = {(record := orjson.loads(data))["connector"]: record for data in await kept()}
    assert base64.b64decode(by_connector["gh"]["body"]) == b""
    assert by_connector["gh"]["body_bytes"] == len(body)  # not kept whole: a retry says so
    assert base64.b64decode(by_connector["plain"]["body"]) == body


async def _count_is(read: Any, n: int) -> bool:
    return len(await read()) == n
