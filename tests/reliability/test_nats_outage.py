"""A NATS outage mid-burst, the senders' retries landing after JetStream's duplicate window: a publish
the server stored without its PubAck reaching the hub must be found, not stored again."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import nats
import pytest

from hub.app.embedded import RunningServer, start_nats
from tests.reliability.checker import UNKNOWN, assert_sound, classify, stored_msg_ids
from tests.reliability.faults import burst_with_fault, senders_for
from tests.reliability.hubs import hubs
from tests.reliability.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.timeout(240)]

DELIVERIES = 240
INTERVAL_S = 0.01
WINDOW_S = 6
SETTINGS = {"HUB_PUBLISH_TIMEOUT": "1s", "HUB_CLAIM_TTL": "2s", "HUB_DUPLICATE_WINDOW": f"{WINDOW_S}s"}
WEBHOOK = {"gh": {"replayWindow": "2s"}}
"""GitHub signs neither a timestamp nor its delivery id: the hub wants the window over twice its replay window."""


async def test_nats_outage_then_redelivery_after_the_duplicate_window(
    own_servers: list[RunningServer],
    nats_server: RunningServer,
    valkey_server: RunningServer,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    with hubs(tmp_path / "hubs", nats_server.url, valkey_server.url, settings=SETTINGS, webhook=WEBHOOK) as hub_set:
        await hub_set.start()
        senders = senders_for(hub_set, ledger, session)

        async def outage() -> None:
            os.kill(nats_server.pid, signal.SIGKILL)
            nats_server.stop()  # reaps it
            # The outage lasts past the duplicate window, so that every retry comes after it: the
            # length of the fault is the scenario, not a wait for the hub.
            await asyncio.sleep(WINDOW_S + 1)
            own_servers.append(start_nats(nats_server.data_dir, port=nats_server.port))

        await burst_with_fault(senders, ledger, DELIVERIES, INTERVAL_S, outage)

    nc = await nats.connect(nats_server.url)
    try:
        stored = await stored_msg_ids(nc.jetstream())
    finally:
        await nc.close()
    verdict = classify("nats outage, redelivery after the duplicate window", ledger, stored)
    assert "503" in ledger.statuses(), ledger.statuses()  # the outage cut the burst
    assert_sound(verdict, ledger, least_ok=DELIVERIES // 3)
    stripe_unknown = [d for d in verdict.of(UNKNOWN) if ledger.deliveries[d].sender == "stripe-like"]
    assert stripe_unknown == []  # the sender that retries for long got every delivery in
