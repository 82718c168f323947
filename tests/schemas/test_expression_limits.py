"""Expressions over the shape limits are refused when the spec is loaded, naming the field and the limit:
route conditions, debounce keys and poll selectors alike (`connector-hub validate` prints the same)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import cli
from schemas.loader import read_specs

HOSTILE = "length(to_string(" + "|".join(["[@,@,@,@,@,@,@,@]"] * 8) + "))"
"""The finding's expression: 162 characters, 8 multi-selects piped into one another."""
MULTI_SELECTS = "has at most 4 multi-selects ([a, b] or {k: a}); this one has 8"
DEEP = "length(" * 70 + "@" + ")" * 70


def route(**overrides: Any) -> dict[str, Any]:
    return {"name": "r", "match": {"types": ["github.push"]}, "target": {"subject": "svc.acme.r"}} | overrides


def webhook(*routes: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "type": "webhook",
        "provider": "github",
        "secrets": [{"secretRef": {"source": "env", "name": "NOT_NEEDED_TO_VALIDATE"}}],
        "routes": list(routes),
    }
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": "gh", "tenant": "acme"}, "spec": spec}


def poller(items: dict[str, Any], pagination: dict[str, Any] | None = None) -> dict[str, Any]:
    poll = {"kind": "http_json", "interval": "5m", "request": {"url": "https://api.example.com/v1/items"}}
    poll |= {"items": {"path": "items", "id": "id"} | items} | ({"pagination": pagination} if pagination else {})
    spec = {"type": "poll", "provider": "acme-api", "poll": poll}
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": "api", "tenant": "acme"}, "spec": spec}


CASES = [
    (webhook(route(match={"types": ["github.push"], "when": HOSTILE})), "spec.routes[0].match.when", MULTI_SELECTS),
    (
        webhook(route(match={"types": ["github.push"], "when": DEEP})),
        "spec.routes[0].match.when",
        "is nested at most 64 levels deep; this one is 71",
    ),
    (webhook(route(debounce={"key": HOSTILE, "window": "1s"})), "spec.routes[0].debounce.key", MULTI_SELECTS),
    (poller({"path": HOSTILE}), "spec.poll.items.path", MULTI_SELECTS),
    (
        poller({"id": "a[*].b[*].c[*].d[*].e[*].f[*].g[*].h[*].i[*]"}),
        "spec.poll.items.id",
        "has at most 8 projections ([*], *, [] or [?...]); this one has 9",
    ),
    (poller({"cursor": DEEP}), "spec.poll.items.cursor", "is nested at most 64 levels deep; this one is 71"),
    (poller({}, {"nextLink": HOSTILE}), "spec.poll.pagination.nextLink", MULTI_SELECTS),
]


@pytest.mark.parametrize(("document", "field", "message"), CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_an_over_limit_expression_is_refused_naming_the_field(
    tmp_path: Path, document: dict[str, Any], field: str, message: str
) -> None:
    file = tmp_path / "specs.yaml"
    file.write_text(yaml.safe_dump(document))
    loaded, errors = read_specs(file)
    assert loaded.connectors == []
    (error,) = errors
    assert error.field == field
    assert f"Value error, a JMESPath expression {message}" in error.message


def test_validate_prints_the_field_and_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "specs.yaml"
    file.write_text(yaml.safe_dump(webhook(route(match={"types": ["github.push"], "when": HOSTILE}))))
    assert cli.main(["validate", str(file)]) == 1
    captured = capsys.readouterr()
    expected = f"{file}: document 1: spec.routes[0].match.when: Value error, a JMESPath expression {MULTI_SELECTS}"
    assert expected in captured.out + captured.err
