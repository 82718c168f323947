"""`connector-hub verify`: says exactly why a captured request fails, never printing a secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from hub import cli

GH_SECRET = "gh-debugger-secret"
SW_SECRET = "whsec_ZGVidWdnZXItc2VjcmV0LWRlYnVnZ2VyLXNlY3JldA=="
SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets:
    - {name: old, secretRef: {source: env, name: VERIFY_GH_OLD}}
    - {name: current, secretRef: {source: env, name: VERIFY_GH}}
---
apiVersion: hub/v1
kind: Connector
metadata: {name: sw, tenant: acme}
spec:
  type: webhook
  provider: standard-webhooks
  secrets: [{name: sw-key, secretRef: {source: env, name: VERIFY_SW}}]
"""
BODY = b'{"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}}'


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VERIFY_GH", GH_SECRET)
    monkeypatch.setenv("VERIFY_GH_OLD", "an-older-secret")
    monkeypatch.setenv("VERIFY_SW", SW_SECRET)
    path = tmp_path / "specs.yaml"
    path.write_text(SPECS)
    return path


def run(specs: Path, target: str, headers: str, body: bytes, *extra: str) -> int:
    headers_file, body_file = specs.parent / "headers", specs.parent / "body"
    headers_file.write_text(headers)
    body_file.write_bytes(body)
    argv = ["verify", target, "--connectors", str(specs), "--headers", str(headers_file), "--body", str(body_file)]
    return cli.main([*argv, *extra])


def signature(body: bytes, secret: str = GH_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_valid_capture_names_the_secret_and_the_event(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = f"X-GitHub-Event: push\nX-GitHub-Delivery: d-1\nX-Hub-Signature-256: {signature(BODY)}\n"
    assert run(specs, "acme/gh", lines, BODY) == 0
    out = capsys.readouterr().out
    assert "signature: OK, matched secret current" in out
    assert "event: github.push id d-1" in out
    assert GH_SECRET not in out


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"X-GitHub-Event": "push"}, BODY, "FAILED signature: missing_header"),
        ({"X-Hub-Signature-256": "sha256=zz"}, BODY, "FAILED signature: malformed_signature"),
        ({"X-Hub-Signature-256": signature(BODY, "wrong")}, BODY, "FAILED signature: no_match"),
        ({"X-Hub-Signature-256": signature(BODY)}, BODY + b" ", "FAILED signature: no_match"),
    ],
)
def test_each_failure_is_named_without_secrets_or_signatures(
    specs: Path, capsys: pytest.CaptureFixture[str], headers: dict[str, str], body: bytes, expected: str
) -> None:
    assert run(specs, "acme/gh", json.dumps(headers), body) == 1
    out = capsys.readouterr().out
    assert expected in out
    if "no_match" in expected:
        assert "hint:" in out
    assert GH_SECRET not in out
    sent = headers.get("X-Hub-Signature-256", "")
    assert not sent[7:] or sent[7:] not in out  # the signature itself is never echoed


def test_a_stale_timestamp_says_by_how_much_and_at_lets_it_pass(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed_at = int(time.time()) - 3600
    sig = Webhook(SW_SECRET).sign("msg_1", datetime.fromtimestamp(signed_at, UTC), BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(signed_at)), "webhook-signature": sig}
    assert run(specs, "acme/sw", json.dumps(headers), BODY, "--at", str(signed_at + 3600)) == 1
    assert "FAILED replay window: signed timestamp is 3600s old; the window is 300s" in capsys.readouterr().out
    assert run(specs, "acme/sw", json.dumps(headers), BODY, "--at", str(int(signed_at) + 10)) == 0
    assert "timestamp: 10s old at --at" in capsys.readouterr().out


def test_an_unknown_connector_is_a_configuration_error(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(specs, "acme/nope", "{}", BODY) == 2
    assert "no connector acme/nope" in capsys.readouterr().err
