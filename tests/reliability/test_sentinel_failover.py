"""The Valkey primary SIGKILLed mid-burst under Sentinel, the replica promoted: the hub
(HUB_REDIS_SENTINELS, no HUB_REDIS_URL) fails open during the failover; every delivery is stored once,
and each accepted delivery sent again afterwards is answered as a duplicate (the promoted replica's
done mark, or JetStream's duplicate window for a mark lost with the primary)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import nats
import pytest

from hub.app.embedded import RunningServer
from hub.app.valkey import SENTINEL_SCHEME
from tests.conftest import wait_for
from tests.reliability.checker import assert_sound, classify, stored_msg_ids
from tests.reliability.faults import burst_with_fault, senders_for
from tests.reliability.hubs import hubs
from tests.reliability.ledger import Ledger
from tests.valkey_topologies import SentinelSet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DELIVERIES = 240
INTERVAL_S = 0.01
FAILOVER_TIMEOUT_S = 30.0


async def test_valkey_primary_killed_and_the_replica_promoted_mid_burst(
    nats_server: RunningServer,
    valkey_sentinel_set: SentinelSet,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    topology = valkey_sentinel_set
    sentinel_settings = {
        "HUB_REDIS_SENTINELS": topology.sentinels_setting,
        "HUB_REDIS_SENTINEL_MASTER": topology.master,
    }
    with hubs(tmp_path / "hubs", nats_server.url, None, settings=sentinel_settings) as hub_set:
        hub = await hub_set.start()
        record = hub.record()
        assert record is not None
        assert record["redis_url"].startswith(f"{SENTINEL_SCHEME}://"), record
        assert "valkey" not in record["embedded_pids"], record  # no Valkey of its own: the Sentinels' one
        senders = senders_for(hub_set, ledger, session)

        async def kill_the_primary() -> None:
            os.kill(topology.primary.pid, signal.SIGKILL)
            topology.primary.process.wait(10)  # reaps it; the fixture's stop finds it gone

            async def promoted() -> bool:
                return await asyncio.to_thread(topology.primary_port) == topology.replica.port

            await wait_for(promoted, FAILOVER_TIMEOUT_S, "the Sentinel to promote the replica")

        await burst_with_fault(senders, ledger, DELIVERIES, INTERVAL_S, kill_the_primary)

        # A done mark written to the old primary and not yet replicated is gone with it; the resend
        # must still be answered as a duplicate (the promoted replica's mark, or JetStream's window).
        sender_of = {sender.profile.name: sender for sender in senders}
        accepted = [d for d in ledger.deliveries.values() if ledger.accepted(d.delivery_id)]
        for delivery in accepted:
            again = await sender_of[delivery.sender].redeliver(delivery)
            assert again.status == 200, (delivery, again)

    nc = await nats.connect(nats_server.url)
    try:
        stored = await stored_msg_ids(nc.jetstream())
    finally:
        await nc.close()
    verdict = classify("valkey primary killed, sentinel failover", ledger, stored)
    assert_sound(verdict, ledger, least_ok=DELIVERIES * 9 // 10)
