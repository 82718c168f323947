"""`connector-hub apply/diff/get/list/delete`, `keys`, `secrets` and `service-map verify` against a real bus."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from hub.app.embedded import RunningServer
from hub.control.servicemap import verify_service_map
from tests.hub.control.fixtures import MASTER_KEY, ROOT, SIGNING_KEY, ControlUnderTest

SPECS = """\
apiVersion: hub/v1
kind: Policy
metadata: {name: acme, tenant: acme}
spec: {allowedSubjects: [svc.acme]}
---
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: store, name: gh-signing}}]
  webhook: {maxBodyBytes: %d}
"""


def cli(nats_server: RunningServer, tmp_path: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_NATS_URL": nats_server.url,
        "HUB_DATA_DIR": str(tmp_path / "cli"),
        "HUB_MASTER_KEY": MASTER_KEY,
        "HUB_SIGNING_KEY": SIGNING_KEY,
        "HUB_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def test_apply_is_idempotent_and_diff_shows_fields(nats_server: RunningServer, tmp_path: Path) -> None:
    specs = tmp_path / "specs.yaml"
    specs.write_text(SPECS % 1024)
    refused = cli(nats_server, tmp_path, "apply", "-f", str(specs))
    assert refused.returncode == 1
    assert "connector acme/gh: secretRef: secret gh-signing is not in the store" in refused.stderr
    assert "gh" not in cli(nats_server, tmp_path, "list").stdout.split("no connectors")[0]

    secret = cli(nats_server, tmp_path, "secrets", "set", "acme/gh-signing", stdin=b"cli-secret-value\n")
    assert secret.stdout.strip() == "stored secret acme/gh-signing version 1"
    created = cli(nats_server, tmp_path, "apply", "-f", str(specs))
    assert created.returncode == 0, created.stderr
    assert created.stdout.splitlines() == [
        "Policy acme: created (revision 1)",
        "Connector acme/gh: created (revision 2)",
    ]
    again = cli(nats_server, tmp_path, "apply", "-f", str(specs))
    assert again.stdout.splitlines() == [
        "Policy acme: unchanged (revision 1)",
        "Connector acme/gh: unchanged (revision 2)",
    ]

    specs.write_text(SPECS % 2048)
    diff = cli(nats_server, tmp_path, "diff", "-f", str(specs))
    assert diff.stdout.splitlines() == [
        "Policy acme: unchanged",
        "Connector acme/gh: would change",
        "  ~ spec.webhook.maxBodyBytes: 1024 -> 2048",
    ]
    updated = cli(nats_server, tmp_path, "apply", "-f", str(specs))
    assert "Connector acme/gh: updated (revision 3)" in updated.stdout

    fetched = cli(nats_server, tmp_path, "get", "acme/gh", "--json")
    assert orjson.loads(fetched.stdout)["metadata"]["revision"] == 3
    listed = cli(nats_server, tmp_path, "list", "--json")
    assert [(r["connector"], r["revision"]) for r in orjson.loads(listed.stdout)] == [("acme/gh", 3)]
    secrets = cli(nats_server, tmp_path, "secrets", "list", "acme")
    assert secrets.stdout.startswith("gh-signing: v1 ")
    for output in (created, again, diff, updated, fetched, listed, secrets):
        assert "cli-secret-value" not in output.stdout + output.stderr

    stale = cli(nats_server, tmp_path, "delete", "acme/gh", "--revision", "2")
    assert stale.returncode == 1
    assert "based on revision 2, the store has revision 3" in stale.stderr
    deleted = cli(nats_server, tmp_path, "delete", "acme/gh", "--wipe-secrets")
    assert deleted.stdout.splitlines() == ["deleted connector acme/gh (revision 3)", "wiped secrets: gh-signing"]
    assert cli(nats_server, tmp_path, "get", "acme/gh").returncode == 1


def test_a_bad_spec_file_names_file_document_and_field(nats_server: RunningServer, tmp_path: Path) -> None:
    specs = tmp_path / "bad.yaml"
    specs.write_text(SPECS.replace("provider: github", "provider: github\n  enabled: maybe") % 1)
    failed = cli(nats_server, tmp_path, "apply", "-f", str(specs))
    assert failed.returncode == 1
    assert f"{specs}: document 2: spec.enabled" in failed.stderr


def test_a_key_is_shown_once_and_only_its_hash_is_stored(
    nats_server: RunningServer, tmp_path: Path, control: ControlUnderTest
) -> None:
    created = cli(nats_server, tmp_path, "keys", "create", "--tenant", "acme", "--scopes", "connector.catalog.read")
    token = created.stdout.strip()
    assert token.startswith("chk_")
    assert "shown once" in created.stderr
    key_id = token.split("_")[1]
    listed = cli(nats_server, tmp_path, "keys", "list")
    assert key_id in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout
    unknown = cli(nats_server, tmp_path, "keys", "create", "--tenant", "acme", "--scopes", "connector.everything")
    assert unknown.returncode == 2
    assert "connector.everything" in unknown.stderr
    assert cli(nats_server, tmp_path, "keys", "revoke", key_id).stdout.strip() == f"revoked key {key_id}"


async def test_the_service_map_verifies_and_tampered_or_expired_fails(
    nats_server: RunningServer, tmp_path: Path, control: ControlUnderTest
) -> None:
    await control.api.call("PUT", "/v1/secrets/a/s", control.keys["a"], {"value": "v"})
    document = {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": "gh", "tenant": "a"},
        "spec": {
            "type": "webhook",
            "provider": "github",
            "secrets": [{"secretRef": {"source": "store", "name": "s"}}],
            "routes": [{"name": "r", "match": {"types": ["github.push"]}, "target": {"subject": "svc.a.pushes"}}],
        },
    }
    await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], document)
    reply = await control.api.call("GET", "/v1/connectors/service-map", control.keys["a"])
    service_map = reply.json()
    assert [(c["name"], c["ingressUrl"], c["routes"]) for c in service_map["connectors"]] == [
        ("gh", "http://hub.test/hooks/a/gh", [{"name": "r", "target": {"subject": "svc.a.pushes"}}])
    ]
    assert verify_service_map(reply.body, SIGNING_KEY)["tenant"] == "a"

    good = tmp_path / "map.json"
    good.write_bytes(reply.body)
    verified = cli(nats_server, tmp_path, "service-map", "verify", str(good))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("service map of tenant a verified: 1 connector(s)")

    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(reply.body.replace(b"svc.a.pushes", b"svc.b.pushes"))
    failed = cli(nats_server, tmp_path, "service-map", "verify", str(tampered))
    assert (failed.returncode, "bad_signature" in failed.stderr) == (1, True)

    with pytest.raises(Exception, match="expired"):
        verify_service_map(reply.body, SIGNING_KEY, now=time.time() + service_map["ttlSeconds"] + 60)
    operator_without_tenant = await control.api.call("GET", "/v1/connectors/service-map", control.keys["operator"])
    assert operator_without_tenant.status == 400
