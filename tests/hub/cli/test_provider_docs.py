"""`docs/providers.md` and `connector-hub providers` come from the registry and cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.registry import WEBHOOK_PROVIDERS
from hub import cli
from hub.cli import providerdocs


def test_the_checked_in_page_matches_the_registry() -> None:
    """If this fails, run `connector-hub providers --write` and commit the result."""
    assert not providerdocs.drifted()


def test_every_registered_provider_is_listed_with_its_facts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["providers", "--json"]) == 0
    facts = {f["provider"]: f for f in json.loads(capsys.readouterr().out)}
    assert set(facts) == set(WEBHOOK_PROVIDERS)
    github = facts["github"]
    assert github["signatureHeader"] == "X-Hub-Signature-256"
    assert github["timestamp"] is None
    assert "signature bytes" in github["replayProtection"]  # GitHub signs no timestamp, nor its delivery id
    assert "signed timestamp" in facts["stripe"]["replayProtection"]


def test_the_drift_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "providers.md"
    assert providerdocs.drifted(page)  # missing
    page.write_text(providerdocs.render_markdown())
    assert not providerdocs.drifted(page)
    page.write_text(providerdocs.render_markdown().replace("`github`", "`gitbub`"))
    assert providerdocs.drifted(page)
