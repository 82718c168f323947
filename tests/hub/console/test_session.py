"""The session cookie: signed, expiring (lifetime and idle), carrying a key id and CSRF secret only."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from hub.console.session import EPHEMERAL_WARNING, Session, SessionCodec, signing_secret
from hub.settings import Settings

SECRET = b"0" * 32


def test_a_session_round_trips_and_holds_only_the_key_id_and_csrf_secret() -> None:
    codec = SessionCodec(SECRET)
    session = Session.new("0123456789abcdef")
    value = codec.dumps(session)
    assert codec.loads(value) == session
    payload = base64.urlsafe_b64decode(value.split(".")[0] + "==")
    assert set(payload.decode().strip("{}").replace('"', "").split(",")) == {
        f"k:{session.key_id}",
        f"c:{session.csrf}",
        f"i:{session.issued_at}",
    }


def test_a_tampered_or_foreign_cookie_is_refused() -> None:
    value = SessionCodec(SECRET).dumps(Session.new("0123456789abcdef"))
    forged = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert SessionCodec(SECRET).loads(forged) is None
    assert SessionCodec(b"1" * 32).loads(value) is None
    assert SessionCodec(SECRET).loads("not-a-cookie") is None


def test_a_session_past_its_lifetime_is_refused_even_when_active() -> None:
    codec = SessionCodec(SECRET, lifetime_s=3600, idle_s=600)
    session = Session("0123456789abcdef", "csrf", issued_at=time.time() - 3601)
    assert codec.loads(codec.dumps(session)) is None
    assert codec.loads(codec.dumps(Session("0123456789abcdef", "csrf", time.time() - 3500))) is not None


def test_an_idle_session_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = SessionCodec(SECRET, lifetime_s=3600, idle_s=600)
    now = time.time()
    with monkeypatch.context() as m:  # signed (last used) 11 minutes ago
        m.setattr("itsdangerous.timed.time.time", lambda: now - 660)
        value = codec.dumps(Session("0123456789abcdef", "csrf", now - 660))
    assert codec.loads(value) is None


def test_the_signing_secret_is_derived_from_the_master_key_and_shared_by_processes() -> None:
    master = base64.b64encode(bytes(range(32))).decode()
    first = signing_secret(Settings(master_key=SecretStr(master)))
    assert first == signing_secret(Settings(master_key=SecretStr(master)))
    assert first != master.encode()
    assert first != signing_secret(Settings(signing_key=SecretStr("another")))


def test_the_master_key_file_is_used_too(tmp_path: Path) -> None:
    path = tmp_path / "master"
    path.write_text("a key in a file\n")
    assert signing_secret(Settings(master_key_file=path)) == signing_secret(
        Settings(signing_key=SecretStr("a key in a file"))
    )


def test_without_keys_the_secret_is_per_process_and_the_log_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        first, second = signing_secret(Settings()), signing_secret(Settings())
    assert first != second
    assert EPHEMERAL_WARNING in caplog.messages
