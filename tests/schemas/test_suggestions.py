""" "Did you mean": an unknown field or provider is answered with the closest known name."""

from __future__ import annotations

from pathlib import Path

from hub.cli.validate import validate_paths
from schemas.suggest import did_you_mean


def test_the_closest_name_is_suggested_whatever_the_case() -> None:
    assert did_you_mean("GitHub", ["github", "gitlab"]) == " (did you mean github?)"
    assert did_you_mean("secret", ["secrets", "routes"]) == " (did you mean secrets?)"
    assert did_you_mean("zzzz", ["secrets", "routes"]) == ""


def test_validate_names_the_field_and_the_provider_it_probably_meant(tmp_path: Path) -> None:
    spec = tmp_path / "c.yaml"
    spec.write_text(
        "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: gh, tenant: acme}\n"
        "spec: {type: webhook, provider: github, secret: [{secretRef: {source: env, name: GH}}]}\n"
        "---\n"
        "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: gh2, tenant: acme}\n"
        "spec: {type: webhook, provider: github, secrets: [{secretRef: {source: env, name: GH}}],"
        " webhook: {replayWindw: 60s}}\n"
        "---\n"
        "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: gh3, tenant: acme}\n"
        "spec: {type: webhook, provider: GitHub, secrets: [{secretRef: {source: env, name: GH}}]}\n"
    )
    problems = [str(p) for p in validate_paths([spec]).problems]
    assert any("spec.secret:" in p and "did you mean secrets?" in p for p in problems), problems
    assert any("spec.webhook.replayWindw" in p and "did you mean replayWindow?" in p for p in problems), problems
    assert any("unknown provider 'GitHub' (did you mean github?)" in p for p in problems), problems
