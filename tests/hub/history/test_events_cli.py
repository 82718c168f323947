"""`connector-hub events list` and `events show` against real servers with the in-process gate."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from hub import cli
from hub.history.events import show_event
from tests.hub.gate.fixtures import GateFactory
from tests.hub.gate.harness import acme_specs, envelope, publish_event, subscribe_target, until

pytestmark = pytest.mark.integration

ROUTE = "    - {name: out, match: {types: [github.push]}, target: {subject: svc.acme.out}}"


async def hub_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_list_and_show(
    make_gate: GateFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = await make_gate(acme_specs(ROUTE))
    target = await subscribe_target(gate.nc, "svc.acme.out")
    events = [envelope("acme", "gh", "github.push", event_id=f"cli-{n}") for n in range(3)]
    for event in events:
        await publish_event(gate.js, event)
    await until(lambda: len(target.messages) == 3, 15, "three deliveries")

    async def journeyed() -> bool:
        detail = await show_event(gate.nc, None, "acme", "gh", "cli-2")
        return [r.kind for r in detail.journey] == ["routed", "attempt"]

    await until(journeyed, 10, "the journey of cli-2 stored")
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_NATS_URL", gate.nats_url)

    code, out, err = await hub_cli(capsys, "events", "list", "acme/gh", "--limit", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "RECEIVED", "TENANT/CONNECTOR", "TYPE", "ID", "BYTES"]
    assert [line.split()[4] for line in lines[1:3]] == ["cli-2", "cli-1"]
    cursor = lines[3].removeprefix("next cursor: ")
    code, out, err = await hub_cli(capsys, "events", "list", "acme/gh", "--json", "--cursor", cursor)
    assert code == 0, err
    assert [e["id"] for e in json.loads(out)["events"]] == ["cli-0"]

    code, out, err = await hub_cli(capsys, "events", "show", "acme/gh", "cli-2")
    assert code == 0, err
    assert "event cli-2" in out
    assert "hubverified" in out
    assert "routed        type github.push; out: allow (all)" in out
    assert "attempt       out: attempt 1" in out
    assert "delivered" in out
    code, out, err = await hub_cli(capsys, "events", "show", "acme/gh", "cli-2", "--json")
    assert [r["kind"] for r in json.loads(out)["journey"]] == ["routed", "attempt"]

    code, out, err = await hub_cli(capsys, "events", "show", "acme/gh", "missing")
    assert code == 1
    assert "no event 'missing' of acme/gh" in err
    code, out, err = await hub_cli(capsys, "events", "list", "--limit", "9999")
    assert code == 2
    assert "limit" in err
