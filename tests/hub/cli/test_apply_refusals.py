"""`connector-hub apply`, `diff` and `validate` refuse (exit 1, naming file, document and field) a
connector no instance would serve: a replay window the duplicate window cannot cover, a webhook
connector with no secret, and a store secret while the CLI has no master key to read it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hub import cli
from hub.app.embedded import RunningServer
from hub.control.plane import Actor
from tests.hub.control.fixtures import MASTER_KEY, ControlUnderTest

HEAD = """\
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
"""
ENV_SECRET = "  secrets: [{secretRef: {source: env, name: ONLY_ON_THE_INSTANCES}}]\n"
REPLAY_600S = HEAD + ENV_SECRET + "  webhook: {replayWindow: 600s}\n"
NO_SECRET = HEAD + "  secrets: []\n"
STORE_SECRET = HEAD + "  secrets: [{secretRef: {source: store, name: gh-signing}}]\n"

REFUSED = [
    pytest.param(REPLAY_600S, "spec.webhook.replayWindow", "twice the replay window (600s)", id="replay-window"),
    pytest.param(NO_SECRET, "spec.secrets", "needs at least one secret", id="no-secret"),
]


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, nats_server: RunningServer, tmp_path: Path) -> None:
    """The CLI's settings: the test bus and the master key, nothing else."""
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_NATS_URL", nats_server.url)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)


async def hub_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "specs.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("verb", ["apply", "diff"])
@pytest.mark.parametrize(("text", "field", "message"), REFUSED)
async def test_apply_and_diff_refuse_what_no_instance_would_serve(
    control: ControlUnderTest,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    verb: str,
    text: str,
    field: str,
    message: str,
) -> None:
    path = spec_file(tmp_path, text)
    code, _, err = await hub_cli(capsys, verb, "-f", str(path))
    assert code == 1
    assert f"connector-hub: {path}: document 1: connector acme/gh: {field}: " in err
    assert message in err
    assert await control.plane.specs.connector("acme", "gh") is None


async def test_apply_refuses_store_secrets_without_a_master_key(
    control: ControlUnderTest, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await control.plane.set_secret("acme", "gh-signing", b"stored-by-a-keyed-cli", Actor("test"))
    path = spec_file(tmp_path, STORE_SECRET)
    monkeypatch.delenv("HUB_MASTER_KEY")
    code, _, err = await hub_cli(capsys, "apply", "-f", str(path))
    assert code == 1
    assert f"connector-hub: {path}: document 1: connector acme/gh: spec.secrets[0]: " in err
    assert "HUB_MASTER_KEY" in err
    assert await control.plane.specs.connector("acme", "gh") is None
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)
    code, out, err = await hub_cli(capsys, "apply", "-f", str(path))
    assert (code, out.strip()) == (0, "Connector acme/gh: created (revision 1)"), err


async def test_the_duplicate_window_is_the_clis_own(
    control: ControlUnderTest, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DUPLICATE_WINDOW", "1h")
    code, out, err = await hub_cli(capsys, "apply", "-f", str(spec_file(tmp_path, REPLAY_600S)))
    assert (code, out.strip()) == (0, "Connector acme/gh: created (revision 1)"), err


@pytest.mark.parametrize(("text", "field", "message"), REFUSED)
def test_validate_refuses_what_no_instance_would_serve(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, field: str, message: str
) -> None:
    path = spec_file(tmp_path, text)
    assert cli.main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert f"{path}: document 1: {field}: " in err
    assert message in err
    assert "0 connector(s) valid, 1 problem(s)" in out


def test_validate_checks_against_its_own_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["validate", "--duplicate-window", "1h", str(spec_file(tmp_path, REPLAY_600S))]) == 0
    assert "1 connector(s) valid, 0 problem(s)" in capsys.readouterr().out
