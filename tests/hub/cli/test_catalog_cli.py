"""`connector-hub catalog`, and what `validate` says of a spec whose type is deprecated, retired,
disabled on this hub or pinned to a version the hub does not serve."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from adapters.registry import POLLERS, WEBHOOK_PROVIDERS
from hub import cli
from tests.adapters.test_lifecycle import register_test_types


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what each test sets."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


def catalog_json(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    assert cli.main(["catalog", "--json"]) == 0
    return {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)["types"]}


def webhook_spec(path: Path, provider: str, pin: str | None = None) -> Path:
    pinned = f"\n  typeVersion: '{pin}'" if pin is not None else ""
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: hub/v1
            kind: Connector
            metadata: {{name: hooks, tenant: acme}}
            spec:
              type: webhook
              provider: {provider}
              secrets:
                - secretRef: {{source: env, name: NOT_NEEDED_TO_VALIDATE}}
            """
        ).rstrip("\n")
        + pinned
        + "\n"
    )
    return path


def poll_spec(path: Path, kind: str) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: hub/v1
            kind: Connector
            metadata: {{name: feed, tenant: acme}}
            spec:
              type: poll
              provider: feed
              poll: {{kind: {kind}, interval: 5m, request: {{url: "https://example.com/feed.xml"}}}}
            """
        )
    )
    return path


def validate(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    status = cli.main(["validate", str(path)])
    return status, capsys.readouterr().err


def test_the_catalog_lists_every_provider_and_poller(capsys: pytest.CaptureFixture[str]) -> None:
    entries = catalog_json(capsys)
    assert set(entries) == set(WEBHOOK_PROVIDERS) | set(POLLERS)
    assert {name for name, e in entries.items() if e["kind"] == "poller"} == set(POLLERS)
    assert entries["github"] == {
        "kind": "provider",
        "name": "github",
        "typeVersion": "1.0.0",
        "optionsVersion": 1,
        "lifecycle": "active",
        "since": None,
        "replacement": None,
        "enabled": True,
    }
    assert cli.main(["catalog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "VERSION", "OPTIONS", "LIFECYCLE", "ENABLED"]
    assert len(lines) == 1 + len(entries)
    assert "provider  github" in next(line for line in lines if " github " in line)


def test_the_catalog_shows_what_this_hub_disables_and_each_lifecycle(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register_test_types(monkeypatch)
    monkeypatch.setenv("HUB_DISABLED_PROVIDERS", "github,rss")
    entries = catalog_json(capsys)
    assert not entries["github"]["enabled"]
    assert not entries["rss"]["enabled"]
    assert entries["stripe"]["enabled"]
    assert entries["legacy-hooks"]["enabled"]
    assert not entries["ancient-hooks"]["enabled"]  # retired: served nowhere
    assert cli.main(["catalog"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["github"].endswith("no")
    assert "deprecated since 2026-01-31, use github" in rows["legacy-hooks"]
    assert "retired since 2025-06-30, use rss" in rows["old-feed"]


def test_an_unknown_disabled_provider_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DISABLED_PROVIDERS", "githb")
    assert cli.main(["catalog"]) != 0
    assert "'githb' is no registered provider or poller" in capsys.readouterr().err


def test_validate_warns_for_a_deprecated_type_naming_its_replacement(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register_test_types(monkeypatch)
    status, err = validate(capsys, webhook_spec(tmp_path / "c.yaml", "legacy-hooks"))
    assert status == 0, err
    assert (
        "warning: connector acme/hooks: provider legacy-hooks is deprecated since 2026-01-31 "
        "and will be retired: use github instead"
    ) in err.splitlines()


def test_validate_refuses_a_retired_provider_or_poller_naming_the_replacement(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register_test_types(monkeypatch)
    status, err = validate(capsys, webhook_spec(tmp_path / "c.yaml", "ancient-hooks"))
    assert status == 1
    assert "spec.provider: provider ancient-hooks was retired on 2025-06-30: use github instead" in err
    status, err = validate(capsys, poll_spec(tmp_path / "p.yaml", "old-feed"))
    assert status == 1
    assert "spec.poll.kind: poller old-feed was retired on 2025-06-30: use rss instead" in err


def test_validate_refuses_a_type_disabled_on_this_hub(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    webhook, poll = webhook_spec(tmp_path / "c.yaml", "github"), poll_spec(tmp_path / "p.yaml", "rss")
    assert validate(capsys, webhook)[0] == 0
    assert validate(capsys, poll)[0] == 0
    monkeypatch.setenv("HUB_DISABLED_PROVIDERS", "github,rss")
    status, err = validate(capsys, webhook)
    assert status == 1
    assert "spec.provider: provider github is disabled on this hub (HUB_DISABLED_PROVIDERS)" in err
    status, err = validate(capsys, poll)
    assert status == 1
    assert "spec.poll.kind: poller rss is disabled on this hub (HUB_DISABLED_PROVIDERS)" in err


def test_a_pin_to_a_major_the_hub_does_not_serve_is_refused_naming_the_served_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, err = validate(capsys, webhook_spec(tmp_path / "c.yaml", "github", "2"))
    assert status == 1
    assert "spec.typeVersion: typeVersion 2 asks for major version 2: this hub serves provider github 1.0.0" in err


def test_a_pin_within_the_served_major_is_accepted_and_a_newer_minor_is_not(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    register_test_types(monkeypatch)  # legacy-hooks serves 1.2.0
    for pin in ("1", "1.1", "1.2", "1.2.0"):
        status, err = validate(capsys, webhook_spec(tmp_path / "c.yaml", "legacy-hooks", pin))
        assert status == 0, (pin, err)
    status, err = validate(capsys, webhook_spec(tmp_path / "c.yaml", "legacy-hooks", "1.3"))
    assert status == 1
    assert "typeVersion 1.3 needs at least 1.3.0: this hub serves provider legacy-hooks 1.2.0" in err


def test_a_malformed_pin_is_refused_by_the_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, err = validate(capsys, webhook_spec(tmp_path / "c.yaml", "github", "v1"))
    assert status == 1
    assert "spec.typeVersion" in err
