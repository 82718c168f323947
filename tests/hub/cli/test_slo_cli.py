"""`connector-hub slo rules`: Prometheus rules from the spec files or the deployed specs, one alert per
objective per connector on metrics the hub exports; the rules compose ships are the verb's output
for examples/slo.yaml; `status` shows the SLOs and the certification; a bad objective is refused
naming its field."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from hub import cli
from hub.app.embedded import RunningServer
from hub.cli.slo import render, slo_rules
from schemas.loader import load_specs
from tests.hub.cluster.test_deploy_metrics import METRIC, exported
from tests.hub.control.fixtures import MASTER_KEY, ControlUnderTest, webhook_connector

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "slo.yaml"
SHIPPED = ROOT / "compose" / "prometheus" / "slo-rules.yml"

SPECS = """\
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: NOT_NEEDED}}]
  slo:
    freshness: 30m
    errorRate: {max: 0.02, window: 15m}
    availability: {min: 0.995}
---
apiVersion: hub/v1
kind: Connector
metadata: {name: feed, tenant: acme}
spec:
  type: poll
  provider: releases
  poll: {kind: rss, interval: 5m, request: {url: "https://example.com/feed.atom"}}
  slo: {freshness: 1h}
---
apiVersion: hub/v1
kind: Connector
metadata: {name: plain, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: NOT_NEEDED}}]
"""


def rules_of(text: str) -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(text)["groups"]
    assert group["name"] == "connector-hub-slo"
    return list(group["rules"])


def alerts(rules: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(connector, objective) -> its alert rule."""
    found = {}
    for rule in rules:
        if "alert" in rule:
            key = (f"{rule['labels']['tenant']}/{rule['labels']['connector']}", rule["labels"]["objective"])
            assert key not in found
            found[key] = rule
    return found


def test_rules_from_spec_files_have_one_alert_per_objective(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = tmp_path / "specs.yaml"
    specs.write_text(SPECS)
    output = tmp_path / "rules.yml"
    assert cli.main(["slo", "rules", "--connectors", str(specs), "--output", str(output)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {output}: the objectives of 2 connector(s)"

    rules = rules_of(output.read_text())
    found = alerts(rules)
    assert {key: rule["alert"] for key, rule in found.items()} == {
        ("acme/gh", "errorRate"): "ConnectorErrorRateHigh",
        ("acme/gh", "availability"): "ConnectorAvailabilityLow",
        ("acme/gh", "freshness"): "ConnectorSilentSource",
        ("acme/feed", "freshness"): "ConnectorPollStale",
    }  # acme/plain sets no objective: no rule
    assert found[("acme/gh", "errorRate")]["expr"] == (
        'hub_connector:slo_error_ratio{tenant="acme", connector="gh", window="15m"} > 0.02'
    )
    assert found[("acme/gh", "availability")]["expr"].endswith('window="1h"} < 0.995')
    silent = found[("acme/gh", "freshness")]
    assert silent["expr"] == 'hub_connector:slo_accepted{tenant="acme", connector="gh", window="30m"} == 0'
    assert "silent" in silent["annotations"]["summary"]

    records = {(rule["record"], rule["labels"]["window"]): rule["expr"] for rule in rules if "record" in rule}
    accepted = records[("hub_connector:slo_accepted", "30m")]
    assert 'outcome=~"accepted|duplicate"}[30m]' in accepted
    # a source that never sent anything (no series at all) records 0: the silent alert fires for it too
    assert 'or label_replace(label_replace(vector(0), "tenant", "acme", "", ""), "connector", "gh", "", "")' in accepted
    assert "hub_dead_letters_total" in records[("hub_connector:slo_error_ratio", "15m")]
    assert 'outcome="unavailable"' in records[("hub_connector:slo_availability", "1h")]
    assert (
        'hub_poll_runs_total{tenant="acme", connector="feed", outcome=~"ok|not_modified"}[1h]'
        in (records[("hub_connector:slo_poll_successes", "1h")])
    )


def test_rules_name_only_metrics_the_hub_exports() -> None:
    names = exported()
    text = render(slo_rules(spec.connector for spec in load_specs(EXAMPLE).connectors))
    used = set(METRIC.findall(re.sub(r"hub_connector:\w+", "", text)))  # the rules' own recorded series aside
    assert {"hub_ingest_requests_total", "hub_dead_letters_total", "hub_poll_runs_total"} <= used
    assert used <= names, used - names


def test_the_shipped_compose_rules_are_the_verbs_output_for_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["slo", "rules", "--connectors", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == SHIPPED.read_text()
    assert len(alerts(rules_of(SHIPPED.read_text()))) == 4
    prometheus = yaml.safe_load((ROOT / "compose" / "prometheus" / "prometheus.yml").read_text())
    assert "/etc/prometheus/slo-rules.yml" in prometheus["rule_files"]


def test_an_objective_out_of_range_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "bad.yaml"
    specs.write_text(SPECS.replace("max: 0.02", "max: 2"))
    assert cli.main(["validate", str(specs)]) != 0
    captured = capsys.readouterr()
    assert "spec.slo.errorRate.max" in captured.out + captured.err


def run_cli(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_NATS_URL": nats_server.url,
        "HUB_REDIS_URL": valkey_server.url,
        "HUB_DATA_DIR": str(tmp_path / "cli"),
        "HUB_MASTER_KEY": MASTER_KEY,
        "HUB_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args], env=env, cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def test_rules_and_status_read_the_deployed_specs(
    control: ControlUnderTest, nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path
) -> None:
    await control.plane.secrets.set("a", "gh-secret", b"signing secret")
    document = webhook_connector("a", "gh", [{"secretRef": {"source": "store", "name": "gh-secret"}}])
    document["spec"]["slo"] = {"freshness": "2h", "errorRate": {"max": 0.1, "window": "10m"}}
    reply = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], document)
    assert reply.status == 201, reply.body

    done = run_cli(nats_server, valkey_server, tmp_path, "slo", "rules")
    assert done.returncode == 0, done.stderr
    assert set(alerts(rules_of(done.stdout))) == {("a/gh", "freshness"), ("a/gh", "errorRate")}

    done = run_cli(nats_server, valkey_server, tmp_path, "status", "a/gh", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = orjson.loads(done.stdout)
    assert row["certification"].startswith("pending since ")
    assert row["certification"].endswith(f"(revision {reply.json()['revision']})")
    assert row["slo"] == "not evaluated yet"
    shown = run_cli(nats_server, valkey_server, tmp_path, "status", "a/gh")
    assert "  certification   pending since " in shown.stdout
