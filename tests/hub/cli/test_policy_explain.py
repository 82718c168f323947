"""`connector-hub policy explain`: per route, matched or not, allowed or denied, and the deciding rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub import cli

SPECS = """\
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: NOT_NEEDED_TO_EXPLAIN}}]
  routes:
    - name: deploys
      match: {types: ["github.push"], when: "data.ref == 'refs/heads/main'"}
      target: {subject: svc.acme.deploys}
    - name: prs
      match: {types: ["github.pull_request.*"]}
      target: {http: {url: "https://ci.elsewhere.example/hook"}}
    - name: audit-all
      match: {types: ["github.>"]}
      target: {subject: svc.acme.audit}
---
apiVersion: hub/v1
kind: Policy
metadata: {name: p, tenant: acme}
spec:
  allowedSubjects: [svc.acme]
  rules:
    - {name: no-audit, effect: deny, routes: [audit-all]}
    - {name: everything, effect: allow}
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    path = tmp_path / "specs.yaml"
    path.write_text(SPECS)
    return path


def explain(specs: Path, event: object, tmp_path: Path, *extra: str) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    argv = ["policy", "explain", "--connectors", str(specs), "--connector", "acme/gh", "--event", str(event_file)]
    assert cli.main([*argv, *extra]) == 0


def test_each_route_with_its_verdict_and_rule(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    explain(specs, {"type": "github.push", "data": {"ref": "refs/heads/main"}}, tmp_path)
    deploys, prs, audit = capsys.readouterr().out.splitlines()
    assert deploys.startswith("route deploys -> subject:svc.acme.deploys: matched")
    assert "ALLOWED by everything" in deploys
    assert prs.startswith("route prs -> http:ci.elsewhere.example: not matched")
    assert "DENIED by no-audit" in audit


def test_json_names_the_boundary_and_a_false_condition(
    specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    explain(specs, {"type": "github.pull_request.opened", "data": {}}, tmp_path, "--json")
    by_route = {r["route"]: r for r in json.loads(capsys.readouterr().out)}
    assert by_route["prs"] | {"why": None} == {
        "route": "prs",
        "target": "http:ci.elsewhere.example",
        "matched": True,
        "why": None,
        "allowed": False,
        "rule": "(boundary)",
        "reason": "host ci.elsewhere.example is outside the tenant's allowedHosts",
    }
    assert by_route["deploys"]["matched"] is False
    assert by_route["audit-all"]["rule"] == "no-audit"

    explain(specs, {"type": "github.push", "data": {"ref": "refs/heads/dev"}}, tmp_path, "--json")
    deploys = json.loads(capsys.readouterr().out)[0]
    assert deploys["matched"] is False
    assert "condition" in deploys["why"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "not JSON"), ('{"id": "x"}', "needs a string `type`"), ("[1]", "needs a string `type`")],
)
def test_a_bad_event_file_is_named(
    specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(content)
    argv = ["policy", "explain", "--connectors", str(specs), "--connector", "acme/gh", "--event", str(event_file)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert str(event_file) in err
    assert message in err


def test_an_unknown_connector_is_an_error(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text('{"type": "github.push"}')
    argv = ["policy", "explain", "--connectors", str(specs), "--connector", "acme/nope", "--event", str(event_file)]
    assert cli.main(argv) == 1
    assert "no enabled connector acme/nope" in capsys.readouterr().err
