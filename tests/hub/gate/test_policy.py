"""Policy decisions (hub/gate/policy.py) and the gate catalog's route matching (hub/gate/catalog.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from hub.gate.catalog import CompiledRoute, build_catalog, compile_route
from hub.gate.policy import BOUNDARY, DEFAULT, NO_POLICY, decide, host_allowed
from schemas.connector import Route
from schemas.loader import read_specs
from schemas.policy import PolicySpec


def route(
    name: str = "deploys",
    *,
    subject: str | None = "svc.acme.deploys",
    url: str | None = None,
    types: tuple[str, ...] = ("github.>",),
    when: str | None = None,
    debounce: str | None = None,
    connector: str = "gh-acme",
    provider: str = "github",
) -> CompiledRoute:
    target: dict[str, Any] = {"http": {"url": url}} if url else {"subject": subject}
    spec: dict[str, Any] = {"name": name, "match": {"types": list(types), "when": when}, "target": target}
    if debounce:
        spec["debounce"] = {"key": debounce, "window": "1s"}
    return compile_route("acme", connector, provider, Route.model_validate(spec))


def policy(*rules: dict[str, Any], **spec: Any) -> PolicySpec:
    spec.setdefault("allowedSubjects", ["svc.acme"])
    spec.setdefault("allowedHosts", ["hooks.example.com", "*.acme.test"])
    return PolicySpec.model_validate({**spec, "rules": list(rules)})


def allow(name: str = "ok", **criteria: Any) -> dict[str, Any]:
    return {"name": name, "effect": "allow", **criteria}


def deny(name: str = "no", **criteria: Any) -> dict[str, Any]:
    return {"name": name, "effect": "deny", **criteria}


# --- decide ------------------------------------------------------------------------------------


def test_no_policy_denies_everything() -> None:
    decision = decide(None, route(), "github.push")
    assert (decision.allowed, decision.rule, decision.effect) == (False, NO_POLICY, "deny")
    assert "acme" in decision.reason


def test_matching_allow_rule_allows() -> None:
    decision = decide(policy(allow("all")), route(), "github.push")
    assert (decision.allowed, decision.rule, decision.effect) == (True, "all", "allow")


@pytest.mark.parametrize("order", ["allow-first", "deny-first"])
def test_deny_overrides_allow_whatever_the_order(order: str) -> None:
    rules = [allow("all"), deny("block")] if order == "allow-first" else [deny("block"), allow("all")]
    decision = decide(policy(*rules), route(), "github.push")
    assert (decision.allowed, decision.rule) == (False, "block")


def test_first_matching_rule_of_an_effect_names_the_decision() -> None:
    rules = [allow("a1", routes=["other"]), allow("a2"), allow("a3"), deny("d1", types=["x.*"]), deny("d2"), deny("d3")]
    assert decide(policy(*rules[:3]), route(), "github.push").rule == "a2"
    assert decide(policy(*rules), route(), "github.push").rule == "d2"


@pytest.mark.parametrize(("default", "allowed"), [(None, False), ("deny", False), ("allow", True)])
def test_default_when_no_rule_matches(default: str | None, allowed: bool) -> None:
    extra = {"default": default} if default else {}
    decision = decide(policy(allow("other", routes=["other"]), **extra), route(), "github.push")
    assert (decision.allowed, decision.rule) == (allowed, DEFAULT)


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [("svc.acme", True), ("svc.acme.deploys", True), ("svc.acme.a.b", True), ("svc.b.x", False), ("svc.acmex", False)],
)
def test_subject_boundary_beats_an_allow_all_rule(subject: str, allowed: bool) -> None:
    decision = decide(policy(allow("all")), route(subject=subject), "github.push")
    assert decision.allowed is allowed
    assert decision.rule == ("all" if allowed else BOUNDARY)


def test_boundary_is_judged_before_rules() -> None:
    decision = decide(policy(deny("block")), route(subject="svc.b.x"), "github.push")
    assert (decision.rule, decision.allowed) == (BOUNDARY, False)
    assert "svc.b.x" in decision.reason


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("https://HOOKS.Example.COM:8443/x", True),
        ("https://api.example.com/x", False),
        ("https://example.com/x", False),
        ("https://a.acme.test/x", True),
        ("https://a.b.acme.test/x", True),
        ("https://acme.test/x", False),
        ("https://evilacme.test/x", False),
        ("https://hooks.example.com@evil.test/x", False),
        ("https://evil.test/?u=hooks.example.com", False),
        ("http://127.0.0.1:9/x", False),
    ],
)
def test_host_boundary(url: str, allowed: bool) -> None:
    decision = decide(policy(allow("all")), route(url=url), "github.push")
    assert (decision.allowed, decision.rule) == ((True, "all") if allowed else (False, BOUNDARY))


def test_empty_boundary_denies_every_target() -> None:
    spec = policy(allow("all"), allowedSubjects=[], allowedHosts=[])
    assert decide(spec, route(), "github.push").rule == BOUNDARY
    assert decide(spec, route(url="https://hooks.example.com/"), "github.push").rule == BOUNDARY


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.com", "example.com", True),
        ("Example.COM", "example.com", True),
        ("example.com", "api.example.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "evilexample.com", False),
        ("*.example.com", "example.com.evil.test", False),
        ("example.com", "example.com.evil.test", False),
        ("127.0.0.1", "127.0.0.1", True),
    ],
)
def test_host_allowed(pattern: str, host: str, expected: bool) -> None:
    assert host_allowed(pattern, host) is expected


@pytest.mark.parametrize(
    ("criteria", "matched"),
    [
        ({"connectors": ["gh-*"]}, True),
        ({"connectors": ["gl-*"]}, False),
        ({"connectors": ["gh-acm?"]}, True),
        ({"providers": ["github"]}, True),
        ({"providers": ["stripe"]}, False),
        ({"routes": ["dep*"]}, True),
        ({"routes": ["deploy"]}, False),
        ({"types": ["github.push"]}, True),
        ({"types": ["github.*"]}, True),
        ({"types": ["github.pull_request.*"]}, False),
        ({"types": ["stripe.>", "github.>"]}, True),
        ({"subjects": ["svc.acme.*"]}, True),
        ({"subjects": ["svc.acme"]}, False),
        ({"subjects": ["svc.>"]}, True),
        ({"hosts": ["hooks.example.com"]}, False),
        ({"subjects": ["svc.x"], "hosts": ["*.acme.test"]}, False),
        ({"connectors": ["gh-*"], "providers": ["github"], "routes": ["deploys"], "types": ["github.>"]}, True),
        ({"connectors": ["gh-*"], "providers": ["stripe"]}, False),
    ],
)
def test_rule_criteria_on_a_subject_target(criteria: dict[str, Any], matched: bool) -> None:
    decision = decide(policy(allow("r", **criteria)), route(), "github.push")
    assert decision.rule == ("r" if matched else DEFAULT)


@pytest.mark.parametrize(
    ("criteria", "matched"),
    [
        ({"hosts": ["hooks.example.com"]}, True),
        ({"hosts": ["*.example.com"]}, True),
        ({"hosts": ["other.example.com"]}, False),
        ({"subjects": [">"]}, False),
        ({"subjects": [">"], "hosts": ["HOOKS.example.com"]}, True),
    ],
)
def test_rule_criteria_on_an_http_target(criteria: dict[str, Any], matched: bool) -> None:
    decision = decide(policy(allow("r", **criteria)), route(url="https://hooks.example.com/h"), "github.push")
    assert decision.rule == ("r" if matched else DEFAULT)


# --- catalog: types, `when` truthiness, debounce keys --------------------------------------------


def test_fits_type() -> None:
    compiled = route(types=("github.pull_request.*", "github.push"))
    assert compiled.fits_type("github.pull_request.opened")
    assert compiled.fits_type("github.push")
    assert not compiled.fits_type("github.pull_request")
    assert not compiled.fits_type("github.pull_request.a.b")
    assert not compiled.fits_type("github.issues")


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        ("0", True),
        ("false", True),
        ([0], True),
        ([None], True),
        ({"a": None}, True),
    ],
)
def test_when_uses_jmespath_truthiness(value: Any, truthy: bool) -> None:
    assert route(when="data.v").fits_condition({"data": {"v": value}}) is truthy


def test_when_over_the_envelope() -> None:
    compiled = route(when="data.ref == 'refs/heads/main' && hubtenant == 'acme'")
    assert compiled.fits_condition({"hubtenant": "acme", "data": {"ref": "refs/heads/main"}})
    assert not compiled.fits_condition({"hubtenant": "acme", "data": {"ref": "refs/heads/dev"}})
    assert not compiled.fits_condition({"hubtenant": "acme"})
    assert not compiled.fits_condition({})
    assert route().fits_condition({})  # no condition: every event


@pytest.mark.parametrize(
    ("when", "data"),
    [
        ("contains(data.labels, 'deploy')", {}),
        ("length(data.items) > `0`", {"items": 5}),
        ("data.size > `100`", {"size": "big"}),
    ],
)
def test_a_condition_that_cannot_be_evaluated_does_not_match(when: str, data: dict[str, Any]) -> None:
    """A condition the event's shape makes fail (a type error inside JMESPath) means "no match", not a crash:
    the policy consumer would otherwise never ack the event (see tests/hub/gate/test_policy_consumer.py)."""
    assert route(when=when).fits_condition({"data": data}) is False


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"repo": "a/b"}, '"a/b"'),
        ({"repo": ""}, '""'),
        ({"repo": "7"}, '"7"'),
        ({"repo": 7}, "7"),
        ({"repo": True}, "true"),
        ({"repo": {"b": 2, "a": 1}}, '{"a":1,"b":2}'),
        ({"repo": ["x", 1]}, '["x",1]'),
        ({"repo": None}, None),
        ({}, None),
    ],
)
def test_debounce_value(data: dict[str, Any], key: str | None) -> None:
    assert route(debounce="data.repo").debounce_value({"data": data}) == key
    assert route().debounce_value({"data": data}) is None


@pytest.mark.parametrize("key", ["length(data.repo)", "data.repo > `1`"])
def test_a_debounce_key_that_cannot_be_evaluated_is_no_key(key: str) -> None:
    """Like a null key: the event is not debounced rather than the dispatcher failing on it."""
    assert route(debounce=key).debounce_value({"data": {"repo": 5 if "length" in key else "x"}}) is None


def test_build_catalog(tmp_path: Path) -> None:
    def connector(name: str, tenant: str, enabled: bool, routes: str) -> str:
        return textwrap.dedent(f"""\
            apiVersion: hub/v1
            kind: Connector
            metadata: {{name: {name}, tenant: {tenant}}}
            spec:
              type: webhook
              provider: github
              enabled: {str(enabled).lower()}
              routes: {routes}
            """)

    one = "[{name: r1, match: {types: [github.push], when: 'data.ok'}, target: {subject: svc.a.x}}]"
    file = tmp_path / "specs.yaml"
    file.write_text(
        "---\n".join(
            [
                connector("gh", "acme", True, one),
                connector("disabled", "acme", False, one),
                connector("bare", "acme", True, "[]"),
                connector("gh", "beta", True, one),
                "apiVersion: hub/v1\nkind: Policy\nmetadata: {name: p, tenant: acme}\nspec: {default: allow}\n",
            ]
        )
    )
    loaded, errors = read_specs(file)
    assert errors == []
    catalog = build_catalog(loaded)
    assert catalog.connector("acme", "disabled") is None
    assert catalog.connector("acme", "nope") is None
    assert catalog.connector("acme", "bare") is not None
    found = catalog.route("acme", "gh", "r1")
    assert found is not None
    assert (found.tenant, found.connector, found.provider, found.label) == ("acme", "gh", "github", "acme/gh/r1")
    assert found.condition is not None
    assert found.debounce_key is None
    assert catalog.route("acme", "gh", "r2") is None
    assert catalog.route("acme", "disabled", "r1") is None
    policy_spec = catalog.policy("acme")
    assert policy_spec is not None
    assert policy_spec.default == "allow"
    assert catalog.policy("beta") is None
    assert catalog.has_routes
    assert catalog.tenants_without_policy() == ["beta"]
