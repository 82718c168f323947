"""`connector-hub delete [--purge]`, `trash`, `restore` and `retention` against a real bus."""

from __future__ import annotations

from pathlib import Path

import orjson

from events.streams import AUDIT_STREAM, JOURNEYS_STREAM, PREFIXES, STREAMS
from hub.app.embedded import RunningServer
from hub.control.plane import Actor
from schemas.connector import ConnectorDocument
from tests.hub.cli.test_cli_control import cli
from tests.hub.control.fixtures import ControlUnderTest, webhook_connector


async def seed(control: ControlUnderTest, name: str) -> None:
    """A connector `acme/<name>` with a store secret only it uses."""
    await control.plane.set_secret("acme", f"{name}-signing", b"cli-restore-secret", Actor("test"))
    refs = [{"secretRef": {"source": "store", "name": f"{name}-signing"}}]
    await control.plane.apply(ConnectorDocument.model_validate(webhook_connector("acme", name, refs)), Actor("test"))


async def test_delete_lists_in_the_trash_and_restore_brings_it_back(
    nats_server: RunningServer, tmp_path: Path, control: ControlUnderTest
) -> None:
    await seed(control, "gh")
    deleted = cli(nats_server, tmp_path, "delete", "acme/gh")
    assert deleted.returncode == 0, deleted.stderr
    lines = deleted.stdout.splitlines()
    assert lines[0].startswith("deleted connector acme/gh (revision ")
    assert "`connector-hub restore acme/gh` brings it back" in lines[1]
    assert lines[2] == "secrets kept in the trash with it: gh-signing"
    assert await control.plane.specs.connector("acme", "gh") is None

    listed = orjson.loads(cli(nats_server, tmp_path, "trash", "--tenant", "acme", "--json").stdout)
    assert [(row["name"], row["secrets"], row["retention"]) for row in listed] == [("gh", ["gh-signing"], "7d")]
    assert listed[0]["deletedBy"].startswith("cli:")

    restored = cli(nats_server, tmp_path, "restore", "acme/gh")
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines()[1] == "restored secrets: gh-signing"
    assert await control.plane.specs.connector("acme", "gh") is not None
    assert await control.plane.secrets.info("acme", "gh-signing") is not None
    again = cli(nats_server, tmp_path, "restore", "acme/gh")
    assert (again.returncode, again.stderr.strip()) == (
        1,
        "connector-hub: no deleted connector acme/gh in the trash (never deleted, or purged)",
    )
    assert cli(nats_server, tmp_path, "trash").stdout.strip() == "the trash is empty"


async def test_delete_purge_keeps_nothing(
    nats_server: RunningServer, tmp_path: Path, control: ControlUnderTest
) -> None:
    await seed(control, "gone")
    purged = cli(nats_server, tmp_path, "delete", "acme/gone", "--purge")
    assert purged.stdout.splitlines()[1:] == ["wiped secrets: gone-signing"]
    assert await control.plane.trash.entries("acme") == []
    assert await control.plane.secrets.info("acme", "gone-signing") is None
    refused = cli(nats_server, tmp_path, "restore", "acme/gone")
    assert refused.returncode == 1


async def test_retention_shows_streams_and_the_deleted_retention(
    nats_server: RunningServer, tmp_path: Path, control: ControlUnderTest
) -> None:
    shown = cli(nats_server, tmp_path, "retention", "--deleted-retention", "36h")
    assert shown.returncode == 0, shown.stderr
    audit_row = next(line for line in shown.stdout.splitlines() if line.startswith(AUDIT_STREAM))
    assert audit_row.split()[1] == "90d"
    assert "deleted connectors: restorable for 36h (HUB_DELETED_RETENTION), 0 kept" in shown.stdout
    report = orjson.loads(cli(nats_server, tmp_path, "retention", "--json").stdout)
    assert [row["stream"] for row in report["streams"]] == list(STREAMS)
    assert all(row["exists"] for row in report["streams"])


async def test_retention_counts_each_streams_subjects_which_size_its_index_in_nats_server(
    nats_server: RunningServer, tmp_path: Path, control: ControlUnderTest
) -> None:
    js = control.nc.jetstream()
    for event in ("e1", "e1", "e2"):  # two journeys, one of two records
        await js.publish(f"{PREFIXES[JOURNEYS_STREAM]}.acme.gh.{event}", b"{}")
    report = orjson.loads(cli(nats_server, tmp_path, "retention", "--json").stdout)
    journeys = next(row for row in report["streams"] if row["stream"] == JOURNEYS_STREAM)
    assert (journeys["messages"], journeys["subjects"]) == (3, 2)
    table = cli(nats_server, tmp_path, "retention").stdout.splitlines()
    assert table[0].split()[-1] == "subjects"
    assert next(line for line in table if line.startswith(JOURNEYS_STREAM)).split()[-2:] == ["3", "2"]


def test_an_audit_retention_below_its_floor_is_refused(nats_server: RunningServer, tmp_path: Path) -> None:
    refused = cli(nats_server, tmp_path, "retention", "--audit-max-age", "7d")
    assert refused.returncode != 0
    assert "HUB_AUDIT_MAX_AGE (7d) is below HUB_AUDIT_MIN_AGE (30d)" in refused.stderr
