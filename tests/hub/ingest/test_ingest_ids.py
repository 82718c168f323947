"""Event ids and trace context from untrusted input, and the envelope the ingest path builds."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import NormalizedEvent, SigningSecret, Verification
from adapters.webhooks.github import GitHubAdapter
from hub.ingest.connectors import Connector
from hub.ingest.ingestor import Provenance, build_envelope, safe_event_id, traceparent_for

HASHED = re.compile(r"sha256:[0-9a-f]{64}")
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
VALID_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "raw",
    ["evt_1NG8Du2eZvKYlo2C", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "msg_2Lz:a/b?c=d#e", "!", "~" * 200, "x" * 200],
)
def test_printable_ascii_ids_are_kept(raw: str) -> None:
    assert safe_event_id(raw) == raw


@pytest.mark.parametrize(
    "raw", ["", "a b", "a\r\nb", "a\tb", "nul\x00", "del\x7f", "é", "x" * 201, "ok\n", " leading", "\u2028"]
)
def test_other_ids_are_hashed(raw: str) -> None:
    hashed = safe_event_id(raw)
    assert HASHED.fullmatch(hashed)
    assert hashed == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    assert safe_event_id(raw) == hashed


@settings(max_examples=500, database=None)
@given(st.text())
def test_any_id_becomes_a_safe_key(raw: str) -> None:
    """Deterministic, and always 1-200 printable ASCII characters (a Valkey key and a Nats-Msg-Id)."""
    safe = safe_event_id(raw)
    assert safe == safe_event_id(raw)
    assert re.fullmatch(r"[\x21-\x7e]{1,200}", safe)
    assert safe == raw or HASHED.fullmatch(safe)


def test_different_bad_ids_hash_differently() -> None:
    assert safe_event_id("a b") != safe_event_id("a  b")
    assert safe_event_id("x" * 201) != safe_event_id("x" * 202)


@pytest.mark.parametrize(
    "incoming",
    [VALID_TRACEPARENT, "00-" + "a" * 32 + "-" + "b" * 16 + "-00", "00-" + "0" * 31 + "1-" + "0" * 15 + "1-01"],
)
def test_valid_traceparent_is_kept(incoming: str) -> None:
    assert traceparent_for(incoming) == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        None,
        "",
        "garbage",
        VALID_TRACEPARENT.upper(),
        VALID_TRACEPARENT + "\r\nX-Injected: 1",
        " " + VALID_TRACEPARENT,
        VALID_TRACEPARENT[:-1],
        VALID_TRACEPARENT.replace("-", "_"),
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace-id is invalid (W3C)
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero parent-id is invalid (W3C)
        "ff" + VALID_TRACEPARENT[2:],  # version ff is invalid (W3C)
    ],
)
def test_malformed_traceparent_is_replaced(incoming: str | None) -> None:
    replaced = traceparent_for(incoming)
    assert replaced != incoming
    assert TRACEPARENT.fullmatch(replaced)
    _, trace_id, parent_id, _ = replaced.split("-")
    assert trace_id != "0" * 32
    assert parent_id != "0" * 16


def test_new_traces_are_fresh() -> None:
    assert len({traceparent_for(None) for _ in range(50)}) == 50


def github_connector() -> Connector:
    return Connector(
        tenant="acme",
        name="gh",
        provider="github",
        adapter=GitHubAdapter.configure(),
        secrets=(SigningSecret("k1", b"secret"),),
        replay_window_s=300.0,
        dedupe_window_s=3600.0,
        max_body_bytes=1024,
        publish_deadline_s=5.0,
    )


def provenance(traceparent: str | None = VALID_TRACEPARENT) -> Provenance:
    return Provenance(
        verification=Verification(scheme="hmac-sha256", key_id="k1"),
        received_at=1714564800.5,
        body_sha256="ab" * 32,
        traceparent=traceparent,
    )


def test_build_envelope() -> None:
    event = NormalizedEvent(
        id="delivery 1",
        type="github.push",
        data=orjson.Fragment(b'{"ref":"main"}'),
        subject="acme/widgets",
        time=datetime(2024, 5, 1, 11, 0, tzinfo=UTC),
    )
    envelope = build_envelope(github_connector(), event, provenance())
    assert envelope.id == safe_event_id("delivery 1")
    assert envelope.source == "hub://acme/gh"
    assert (envelope.hubtenant, envelope.hubconnector, envelope.hubprovider) == ("acme", "gh", "github")
    assert (envelope.hubverified, envelope.hubkeyid) == ("hmac-sha256", "k1")
    assert envelope.time == "2024-05-01T11:00:00.000Z"
    assert envelope.hubreceivedat == "2024-05-01T12:00:00.500Z"
    assert envelope.traceparent == VALID_TRACEPARENT
    assert b'"data":{"ref":"main"}' in envelope.to_json()


def test_build_envelope_without_event_time_uses_received_time() -> None:
    event = NormalizedEvent(id="d", type="github.ping", data={})
    envelope = build_envelope(github_connector(), event, provenance(None))
    assert envelope.time == envelope.hubreceivedat == "2024-05-01T12:00:00.500Z"
    assert envelope.subject is None
    assert "ce-subject" not in envelope.to_headers()
