"""The audit log's two shared rules: a record of what an actor did carries that actor's identity, and
a denied request is audited under a tenant that is a valid subject token (real nats-server)."""

from __future__ import annotations

import orjson
import pytest
from nats.aio.client import Client as NATS

from events.streams import AUDIT_STREAM
from events.subjects import HUB_WIDE, audit_subject
from hub.control.audit import AuditLog, denial_tenant
from hub.control.plane import Actor


@pytest.fixture
def nc(streams_nc: NATS) -> NATS:
    return streams_nc


async def _last(nc: NATS, tenant: str, action: str) -> dict[str, object]:
    message = await nc.jetstream().get_last_msg(AUDIT_STREAM, audit_subject(tenant, action))
    record: dict[str, object] = orjson.loads(message.data or b"")
    return record


async def test_a_record_by_an_actor_carries_its_key_request_and_detail(nc: NATS) -> None:
    audit = AuditLog(nc.jetstream())
    actor = Actor(key_id="key-1", request_id="req-1", tenant="a")
    await audit.record_by(actor, "a", "job_cancel", "job/j1", "requested", {"kind": "replay"})
    record = await _last(nc, "a", "job_cancel")
    assert {k: record[k] for k in ("tenant", "target", "outcome", "keyId", "requestId", "detail")} == {
        "tenant": "a",
        "target": "job/j1",
        "outcome": "requested",
        "keyId": "key-1",
        "requestId": "req-1",
        "detail": {"kind": "replay"},
    }


async def test_a_record_without_a_tenant_is_the_hubs_and_an_actor_without_a_request_has_none(nc: NATS) -> None:
    audit = AuditLog(nc.jetstream())
    await audit.record_by(Actor(key_id="cli:ops"), None, "replay_start", "job/j2", "accepted")
    record = await _last(nc, HUB_WIDE, "replay_start")
    seen = (record["tenant"], record["keyId"], "requestId" in record, record["detail"])
    assert seen == (HUB_WIDE, "cli:ops", False, {})


@pytest.mark.parametrize(
    ("path_tenant", "caller_tenant", "audited_under"),
    [
        ("a", "b", "a"),  # the path names the tenant acted on
        (None, "b", "b"),
        (None, None, HUB_WIDE),
        ("a.b", "b", HUB_WIDE),  # not a subject token: never the caller's, never a new subject level
        ("*", None, HUB_WIDE),
        ("", "b", "b"),
    ],
)
def test_a_denial_is_audited_under_the_paths_tenant_only_when_it_is_a_valid_name(
    path_tenant: str | None, caller_tenant: str | None, audited_under: str
) -> None:
    assert denial_tenant(path_tenant, caller_tenant) == audited_under
