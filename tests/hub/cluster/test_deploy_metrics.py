"""The deployment's alert rules and Grafana dashboard name only metrics the hub exports, and every
panel and rule has an expression: a renamed metric fails here, not silently on a dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from hub.app.metrics import HubMetrics

COMPOSE = Path(__file__).resolve().parents[3] / "compose"
METRIC = re.compile(r"\b(hub_[a-z_]+)\b")
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def exported() -> set[str]:
    """Every sample name one hub process's registry can export (labelled metrics included)."""
    names = set()
    for family in HubMetrics().registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and every dashboard panel target."""
    found = []
    rules = yaml.safe_load((COMPOSE / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        found += [(f"alert {rule['alert']}", str(rule["expr"])) for rule in group["rules"]]
    dashboard = json.loads((COMPOSE / "grafana" / "dashboards" / "connector-hub.json").read_text())
    for panel in dashboard["panels"]:
        found += [(f"panel {panel['title']}", target["expr"]) for target in panel["targets"]]
    return found


def test_rules_and_panels_use_exported_metrics() -> None:
    names = exported()
    used = expressions()
    assert len(used) >= 15
    unknown = [(where, name) for where, expr in used for name in METRIC.findall(expr) if name not in names]
    assert unknown == []


def test_every_alert_the_deployment_promises_is_there() -> None:
    alerts = {where.removeprefix("alert ") for where, _ in expressions() if where.startswith("alert ")}
    promised = {"HubInstanceDown", "HubPublishErrors", "HubSignatureFailures", "HubDeadLetters", "HubPollFailures"}
    assert promised <= alerts
