"""Routes and Policy documents as loaded from files: every error names file, document and field;
`connector-hub validate` on files that hold both kinds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import cli
from schemas.loader import SpecError, read_specs


def connector(*routes: dict[str, Any], name: str = "gh", tenant: str = "acme") -> dict[str, Any]:
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": name, "tenant": tenant},
        "spec": {
            "type": "webhook",
            "provider": "github",
            "secrets": [{"secretRef": {"source": "env", "name": "NOT_NEEDED_TO_VALIDATE"}}],
            "routes": list(routes),
        },
    }


def route(name: str = "deploys", **overrides: Any) -> dict[str, Any]:
    return {"name": name, "match": {"types": ["github.push"]}, "target": {"subject": "svc.acme.deploys"}} | overrides


def http(**options: Any) -> dict[str, Any]:
    return {"http": {"url": "https://hooks.example.com/in"} | options}


def policy(tenant: str = "acme", **spec: Any) -> dict[str, Any]:
    body = {"allowedSubjects": ["svc.acme"], "rules": [{"name": "all", "effect": "allow"}]} | spec
    return {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "default", "tenant": tenant}, "spec": body}


def write(path: Path, *documents: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def errors_of(path: Path) -> list[SpecError]:
    return read_specs(path)[1]


def only_error(path: Path) -> SpecError:
    (error,) = errors_of(path)
    return error


# --- routes -------------------------------------------------------------------------------------

ROUTE_ERRORS = [
    (route(name="Deploys"), "spec.routes[0].name", "should match pattern"),
    (route(match={"types": []}), "spec.routes[0].match.types", "at least 1 item"),
    (route(match={"types": ["github.push", "github.pull_*"]}), "spec.routes[0].match.types[1]", "'pull_*'"),
    (route(match={"types": ["github.>.x"]}), "spec.routes[0].match.types[0]", "`>` may only be the last"),
    (route(match={"types": ["github..push"]}), "spec.routes[0].match.types[0]", "token ''"),
    (route(match={"types": ["*"], "when": "data.["}), "spec.routes[0].match.when", "invalid JMESPath"),
    (route(match={"types": ["*"], "when": "a" * 1025}), "spec.routes[0].match.when", "at most 1024"),
    (route(match={"types": ["*"], "if": "x"}), "spec.routes[0].match.if", "Extra inputs"),
    (route(debounce={"key": "data.(", "window": "1s"}), "spec.routes[0].debounce.key", "invalid JMESPath"),
    (route(debounce={"key": "data.repo", "window": "50ms"}), "spec.routes[0].debounce", "between 100ms and 1h"),
    (route(debounce={"key": "data.repo", "window": "2h"}), "spec.routes[0].debounce", "between 100ms and 1h"),
    (route(target={"subject": "hub.events.acme"}), "spec.routes[0].target", "cannot be under `hub.`"),
    (route(target={"subject": "hub"}), "spec.routes[0].target", "cannot be under `hub.`"),
    (route(target={"subject": "svc.*"}), "spec.routes[0].target.subject", "should match pattern"),
    (route(target={"subject": "svc.>"}), "spec.routes[0].target.subject", "should match pattern"),
    (route(target={}), "spec.routes[0].target", "exactly one of subject or http"),
    (route(target={"subject": "svc.a"} | http()), "spec.routes[0].target", "exactly one of subject or http"),
    (route(target=http(url="ftp://x.example.com/")), "spec.routes[0].target.http.url", "URL scheme"),
    (route(target=http(timeout="50ms")), "spec.routes[0].target.http", "between 100ms and 60s"),
    (route(target=http(method="GET")), "spec.routes[0].target.http.method", "'POST'"),
    (route(retry={"initial": "10s", "max": "1s"}), "spec.routes[0].retry", "initial <= max"),
    (route(retry={"maxAttempts": 0}), "spec.routes[0].retry.maxAttempts", "greater than or equal to 1"),
    (route(circuit={"cooldown": "10ms"}), "spec.routes[0].circuit", "between 100ms and 1h"),
    (route(limits={"rate": {"perSecond": 0}}), "spec.routes[0].limits.rate.perSecond", "greater than 0"),
    (route(limits={"maxParallel": 0}), "spec.routes[0].limits.maxParallel", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("bad_route", "field", "message"), ROUTE_ERRORS, ids=[e[1] + ":" + e[2] for e in ROUTE_ERRORS])
def test_route_errors_name_file_document_and_field(
    tmp_path: Path, bad_route: dict[str, Any], field: str, message: str
) -> None:
    file = write(tmp_path / "specs.yaml", connector(route()), policy(), connector(route("ok"), bad_route, name="x"))
    field = field.replace("routes[0]", "routes[1]")
    error = only_error(file)
    assert (error.file, error.document, error.field) == (file, 3, field)
    assert message in error.message
    assert str(error).startswith(f"{file}: document 3: {field}: ")


@pytest.mark.parametrize(
    "header", ["Content-Type", "idempotency-key", "Content-Length", "HOST", "ce-id", "CE-Type", "ce-hubtenant"]
)
def test_reserved_http_target_headers_are_refused(tmp_path: Path, header: str) -> None:
    file = write(tmp_path / "c.yaml", connector(route(target=http(headers={"X-Api-Key": "k", header: "v"}))))
    error = only_error(file)
    assert (error.document, error.field) == (1, "spec.routes[0].target.http")
    assert f"cannot be overridden: {header}" in error.message
    assert "X-Api-Key" not in error.message


@pytest.mark.parametrize(
    "target",
    [
        {"subject": "hubx.events"},
        {"subject": "svc.hub.x"},
        {"subject": "HUB.x"},
        http(headers={"X-Api-Key": "k", "Authorization": "Bearer t", "ce": "x"}),
    ],
)
def test_valid_targets(tmp_path: Path, target: dict[str, Any]) -> None:
    assert errors_of(write(tmp_path / "c.yaml", connector(route(target=target)))) == []


def test_duplicate_route_names(tmp_path: Path) -> None:
    error = only_error(write(tmp_path / "c.yaml", connector(route("a"), route("b"), route("a"))))
    assert (error.field, error.message) == ("spec", "Value error, route names must be unique: a")


# --- policies ------------------------------------------------------------------------------------

POLICY_ERRORS = [
    ({"rules": [{"name": "a", "effect": "allow"}, {"name": "a", "effect": "deny"}]}, "spec", "unique: a"),
    ({"allowedSubjects": ["svc.acme", "hub.events"]}, "spec", "`hub.`"),
    ({"allowedSubjects": ["hub"]}, "spec", "`hub.`"),
    ({"allowedSubjects": ["svc.*"]}, "spec.allowedSubjects[0]", "should match pattern"),
    ({"allowedHosts": ["https://x.example.com"]}, "spec.allowedHosts[0]", "should match pattern"),
    ({"allowedHosts": ["*example.com"]}, "spec.allowedHosts[0]", "should match pattern"),
    ({"allowedHosts": ["x.example.com:443"]}, "spec.allowedHosts[0]", "should match pattern"),
    ({"default": "maybe"}, "spec.default", "'allow' or 'deny'"),
    ({"rules": [{"name": "a", "effect": "permit"}]}, "spec.rules[0].effect", "'allow' or 'deny'"),
    ({"rules": [{"name": "a b", "effect": "allow"}]}, "spec.rules[0].name", "should match pattern"),
    ({"rules": [{"name": "a", "effect": "allow", "types": ["github.pull_*"]}]}, "spec.rules[0].types[0]", "pull_*"),
    ({"rules": [{"name": "a", "effect": "allow", "subjects": ["svc.>.x"]}]}, "spec.rules[0].subjects[0]", "`>`"),
    ({"rules": [{"name": "a", "effect": "allow", "connectors": ["GH"]}]}, "spec.rules[0].connectors[0]", "pattern"),
    ({"rules": [{"name": "a", "effect": "allow", "hosts": ["a/b"]}]}, "spec.rules[0].hosts[0]", "pattern"),
    ({"rules": [{"name": "a", "effect": "allow", "tenant": "x"}]}, "spec.rules[0].tenant", "Extra inputs"),
    ({"limits": {"maxParallel": 0}}, "spec.limits.maxParallel", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("spec", "field", "message"), POLICY_ERRORS, ids=[f"{e[1]}:{e[2]}" for e in POLICY_ERRORS])
def test_policy_errors_name_file_document_and_field(
    tmp_path: Path, spec: dict[str, Any], field: str, message: str
) -> None:
    file = write(tmp_path / "specs.yaml", connector(route()), policy(**spec))
    error = only_error(file)
    assert (error.file, error.document, error.field) == (file, 2, field)
    assert message in error.message


def test_a_valid_policy_is_loaded(tmp_path: Path) -> None:
    spec: dict[str, Any] = {
        "allowedSubjects": ["svc.acme", "hubx"],
        "allowedHosts": ["hooks.example.com", "*.acme.test", "127.0.0.1"],
        "limits": {"rate": {"perSecond": 10, "burst": 5}},
        "default": "allow",
        "rules": [{"name": "no-prs", "effect": "deny", "types": ["github.pull_request.*"], "connectors": ["gh-?"]}],
    }
    loaded, errors = read_specs(write(tmp_path / "p.yaml", policy(**spec)))
    assert errors == []
    (only,) = loaded.policies
    assert (only.document, only.policy.tenant, only.policy.spec.default) == (1, "acme", "allow")
    assert only.policy.spec.rules[0].types == ["github.pull_request.*"]


def test_a_second_policy_for_a_tenant_is_an_error(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", connector(route()), policy(), policy("beta"))
    second = write(tmp_path / "b.yaml", policy("acme", default="allow"), policy("beta"))
    loaded, errors = read_specs([first, second])
    assert sorted(str(e) for e in errors) == [
        f"{second}: document 1: metadata.tenant: policy for tenant acme is already defined in {first} document 2",
        f"{second}: document 2: metadata.tenant: policy for tenant beta is already defined in {first} document 3",
    ]
    assert len(loaded.policies) == 4  # the loader reports; callers refuse to start on any error


# --- connector-hub validate ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


def validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, list[str], list[str]]:
    """(status, stdout, problem lines, warning lines)."""
    status = cli.main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    warnings = [line.removeprefix("warning: ") for line in lines if line.startswith("warning: ")]
    return status, out, [line for line in lines if not line.startswith("warning: ")], warnings


def test_validate_a_file_with_connectors_and_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes = [route(), route("prs", match={"types": ["github.pull_request.*"], "when": "data.action == 'opened'"})]
    file = write(tmp_path / "s.yaml", connector(*routes), policy(), connector(route(), name="gl"), policy("beta"))
    status, out, problems, warnings = validate(capsys, file)
    assert (status, problems, warnings) == (0, [], [])
    assert "2 connector(s) valid, 0 problem(s); 2 policy document(s)" in out


def test_validate_warns_of_a_tenant_without_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "s.yaml", connector(route()), connector(route(), tenant="beta"), policy("beta"))
    status, out, problems, warnings = validate(capsys, file)
    assert (status, problems) == (0, [])
    assert warnings == ["tenant acme has routes but no Policy document: every one of its routes is denied"]
    assert "2 connector(s) valid, 0 problem(s); 1 policy document(s)" in out


@pytest.mark.parametrize(
    ("documents", "line", "summary"),
    [
        (
            [connector(route()), policy(), policy(default="allow")],
            "document 3: metadata.tenant: policy for tenant acme is already defined in {file} document 2",
            "1 connector(s) valid, 1 problem(s); 2 policy document(s)",
        ),
        (
            [policy(), connector(route(match={"types": ["github.push"], "when": "data.ref =="}))],
            "document 2: spec.routes[0].match.when: Value error, invalid JMESPath",
            "0 connector(s) valid, 1 problem(s); 1 policy document(s)",
        ),
        (
            [connector(route(match={"types": ["github.pull_*"]})), policy()],
            "document 1: spec.routes[0].match.types[0]: Value error, 'github.pull_*': token 'pull_*'",
            "0 connector(s) valid, 1 problem(s); 1 policy document(s)",
        ),
        (
            [connector(route(target={"subject": "hub.invocations.acme.gh.x"})), policy()],
            "document 1: spec.routes[0].target: Value error, a target subject cannot be under `hub.`",
            "0 connector(s) valid, 1 problem(s); 1 policy document(s)",
        ),
        (
            [connector(route(target=http(headers={"Idempotency-Key": "x", "ce-source": "y"}))), policy()],
            "document 1: spec.routes[0].target.http: Value error, headers set by the hub cannot be overridden: "
            "Idempotency-Key, ce-source",
            "0 connector(s) valid, 1 problem(s); 1 policy document(s)",
        ),
        (
            [connector(route()), policy(rules=[{"name": "x", "effect": "deny", "types": ["a*"]}])],
            "document 2: spec.rules[0].types[0]: Value error, 'a*': token 'a*'",
            "1 connector(s) valid, 1 problem(s); 0 policy document(s)",
        ),
    ],
)
def test_validate_reports_gate_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], documents: list[dict[str, Any]], line: str, summary: str
) -> None:
    file = write(tmp_path / "s.yaml", *documents)
    status, out, problems, _ = validate(capsys, file)
    assert status == 1
    assert problems[0].startswith(f"{file}: " + line.format(file=file))
    assert summary in out


def test_validate_prints_each_problem_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One line per problem, each naming its file, as for every other kind of error; a JMESPath parse error
    must not spill the expression and a caret onto lines of their own."""
    bad = route(match={"types": ["github.push"], "when": "data.ref =="})
    file = write(tmp_path / "s.yaml", policy(), connector(bad), connector(route(target={"subject": "hub.x"}), name="b"))
    status, out, problems, _ = validate(capsys, file)
    assert status == 1
    assert "2 problem(s)" in out
    assert len(problems) == 2, problems
    assert all(line.startswith(f"{file}: document ") for line in problems)
