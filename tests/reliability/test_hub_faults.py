"""Hub processes dying mid-burst: a worker of `run --workers 2` (the supervisor starts another; the other
worker serves meanwhile), and a whole `run` process (started again on the same port). A request cut by
the kill is an error to its sender, which retries (or gives up, as GitHub does); an event whose PubAck
came before the kill is found by the retry (its claim expires after HUB_CLAIM_TTL; JetStream's duplicate
window drops the publish)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp
import nats
import pytest

from hub.app.embedded import RunningServer
from tests.conftest import wait_for
from tests.hub.app.test_workers import pid_gone
from tests.reliability.checker import UNKNOWN, Verdict, assert_sound, classify, stored_msg_ids
from tests.reliability.faults import burst_with_fault, senders_for
from tests.reliability.hubs import START_TIMEOUT_S, hubs, kill
from tests.reliability.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DELIVERIES = 240
INTERVAL_S = 0.01
SETTINGS = {"HUB_CLAIM_TTL": "3s"}
"""A claim left by a killed process expires sooner than the default 30 s: the scenario stays short."""


async def check(name: str, nats_url: str, ledger: Ledger) -> Verdict:
    nc = await nats.connect(nats_url)
    try:
        verdict = classify(name, ledger, await stored_msg_ids(nc.jetstream()))
    finally:
        await nc.close()
    assert_sound(verdict, ledger, least_ok=DELIVERIES // 2)
    stripe_unknown = [d for d in verdict.of(UNKNOWN) if ledger.deliveries[d].sender == "stripe-like"]
    assert stripe_unknown == []  # the sender that retries for long got every delivery in
    return verdict


@pytest.mark.reliability
async def test_a_worker_killed_mid_burst(
    nats_server: RunningServer,
    valkey_server: RunningServer,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    with hubs(tmp_path / "hubs", nats_server.url, valkey_server.url, settings=SETTINGS) as hub_set:
        supervisor = await hub_set.start(workers=2)
        killed, survivor = supervisor.worker_pids()

        async def kill_a_worker() -> None:
            os.kill(killed, signal.SIGKILL)

        await burst_with_fault(senders_for(hub_set, ledger, session), ledger, DELIVERIES, INTERVAL_S, kill_a_worker)

        async def replaced() -> bool:
            supervisor.alive()
            pids = supervisor.worker_pids()
            return pid_gone(killed) and len(pids) == 2 and killed not in pids

        await wait_for(replaced, START_TIMEOUT_S, "the killed worker replaced")
        assert survivor in supervisor.worker_pids()
    await check("worker killed (run --workers 2)", nats_server.url, ledger)


async def test_a_hub_process_killed_mid_burst_and_started_again(
    nats_server: RunningServer,
    valkey_server: RunningServer,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    with hubs(tmp_path / "hubs", nats_server.url, valkey_server.url, settings=SETTINGS) as hub_set:
        first = await hub_set.start()

        async def kill_and_restart() -> None:
            kill(first)
            await hub_set.start()  # same port: the senders' retries reach the new process

        await burst_with_fault(senders_for(hub_set, ledger, session), ledger, DELIVERIES, INTERVAL_S, kill_and_restart)
    verdict = await check("hub process killed and restarted", nats_server.url, ledger)
    assert any(a.error == "connection" for a in ledger.attempts), verdict.line()  # the kill cut requests
