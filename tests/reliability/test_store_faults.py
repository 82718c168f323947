"""Valkey restarted empty mid-burst: the dedupe claims and done marks are gone, JetStream's duplicate
window (keyed by the same `Nats-Msg-Id`) still drops every redelivery."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp
import nats
import pytest

from hub.app.embedded import RunningServer, start_valkey
from tests.reliability.checker import assert_sound, classify, stored_msg_ids
from tests.reliability.faults import burst_with_fault, senders_for
from tests.reliability.hubs import hubs
from tests.reliability.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DELIVERIES = 240
INTERVAL_S = 0.01


async def test_valkey_restarted_empty_mid_burst(
    own_servers: list[RunningServer],
    nats_server: RunningServer,
    valkey_server: RunningServer,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    with hubs(tmp_path / "hubs", nats_server.url, valkey_server.url) as hub_set:
        await hub_set.start()
        senders = senders_for(hub_set, ledger, session)

        async def restart_valkey_empty() -> None:
            os.kill(valkey_server.pid, signal.SIGKILL)
            valkey_server.stop()  # reaps it
            own_servers.append(start_valkey(tmp_path / "valkey-empty", port=valkey_server.port))

        await burst_with_fault(senders, ledger, DELIVERIES, INTERVAL_S, restart_valkey_empty)
        # Every provider here may deliver an accepted event again (Stripe does, GitHub and Slack on a
        # lost answer); with the claims and done marks gone, only the stream can recognize them.
        sender_of = {sender.profile.name: sender for sender in senders}
        for delivery in list(ledger.deliveries.values()):
            if ledger.accepted(delivery.delivery_id):
                again = await sender_of[delivery.sender].redeliver(delivery)
                assert again.status == 200, (delivery, again)

    nc = await nats.connect(nats_server.url)
    try:
        stored = await stored_msg_ids(nc.jetstream())
    finally:
        await nc.close()
    verdict = classify("valkey restarted empty", ledger, stored)
    assert_sound(verdict, ledger, least_ok=DELIVERIES * 9 // 10)
