"""Provider-specific answers through the real ingress: every handshake an adapter answers, and a
reply an adapter needs once the events are published (Discord's deferred interaction response), carry
`X-Content-Type-Options: nosniff` and `Cache-Control: no-store`. A handshake may echo the sender's text
(Graph's validationToken, a Slack or Twitch challenge): a browser must never sniff it into HTML."""

from __future__ import annotations

import orjson
import pytest

from adapters.base import TestRequest
from tests.conftest import HubFactory, Reply
from tests.hub.ingress.handshakes import PROVIDERS, Handshake, connectors_yaml, handshakes, secrets_env, send, sign
from tests.hub.ingress.signing import TENANT

pytestmark = pytest.mark.integration

HARDENED = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def hardening(reply: Reply) -> dict[str, str | None]:
    return {name: reply.headers.get(name) for name in HARDENED}


async def test_every_handshake_reply_is_never_sniffed_nor_cached(make_hub: HubFactory) -> None:
    hub = await make_hub(connectors_yaml(PROVIDERS), env=secrets_env(PROVIDERS))
    cases: list[Handshake] = handshakes()
    assert PROVIDERS == ["discord", "github", "intercom", "msgraph", "slack", "twitch", "x", "zoom"]
    for case in cases:
        reply = await send(hub, case.provider, case)
        assert (reply.status, reply.body) == (case.status, case.answer), case.id
        assert hardening(reply) == HARDENED, case.id
    assert await hub.event_count() == 0  # a handshake publishes nothing


async def test_a_reply_after_publishing_is_never_sniffed_nor_cached(make_hub: HubFactory) -> None:
    hub = await make_hub(connectors_yaml(["discord"]), env=secrets_env(["discord"]))
    interaction = {"id": "1180000000000000001", "application_id": "1", "type": 2, "token": "t", "data": {"name": "go"}}
    request = sign("discord", TestRequest({"Content-Type": "application/json"}, orjson.dumps(interaction)))
    reply = await hub.post(f"{TENANT}/discord", request.body, request.headers)
    assert (reply.status, reply.body) == (200, b'{"type":5}')  # a deferred response, once published
    assert hardening(reply) == HARDENED
    assert await hub.event_count() == 1
