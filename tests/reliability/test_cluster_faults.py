"""A three-node JetStream cluster (tests/cluster.py, the hub's streams R3) losing a node mid-burst: the
stream leader killed, a follower killed, the leader paused past the publish deadline, and the whole
cluster restarted. The senders retry what was answered 503; nothing accepted is lost or stored twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import nats
import pytest

from events.streams import EVENTS_STREAM
from hub.app.embedded import RunningServer
from tests.cluster import Cluster, Node
from tests.reliability.checker import Verdict, assert_sound, classify, stored_msg_ids
from tests.reliability.faults import burst_with_fault, restart_node, senders_for, wait_meta_leader
from tests.reliability.hubs import hubs
from tests.reliability.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DELIVERIES = 240
INTERVAL_S = 0.01
SETTINGS = {"HUB_STREAM_REPLICAS": "3", "HUB_PUBLISH_TIMEOUT": "1s"}
PAUSE_S = 3.0
"""How long a paused node stays stopped: past the publish deadline (HUB_PUBLISH_TIMEOUT 1 s)."""


async def stream_leader(cluster: Cluster) -> Node:
    nc = await nats.connect(servers=cluster.urls.split(","))
    try:
        info = await nc.jetstream().stream_info(EVENTS_STREAM)
    finally:
        await nc.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return cluster.node(info.cluster.leader)


async def stored_in(cluster: Cluster) -> Counter[str]:
    """HUB_EVENTS' `Nats-Msg-Id`s as the cluster (any live node) serves them."""
    live = [node.url for node in cluster.nodes if node.process is not None and node.process.poll() is None]
    nc = await nats.connect(servers=live)
    try:
        return await stored_msg_ids(nc.jetstream())
    finally:
        await nc.close()


async def run_scenario(
    name: str,
    cluster: Cluster,
    redis_url: str,
    root: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
    fault: Callable[[], Awaitable[None]],
    settings: dict[str, str] = SETTINGS,
) -> Verdict:
    """A hub on the cluster, the burst with `fault` in its middle, then the check."""
    with hubs(root / "hubs", cluster.urls, redis_url, settings=settings) as hub_set:
        await hub_set.start()
        senders = senders_for(hub_set, ledger, session)
        await burst_with_fault(senders, ledger, DELIVERIES, INTERVAL_S, fault)
    verdict = classify(name, ledger, await stored_in(cluster))
    assert_sound(verdict, ledger, least_ok=DELIVERIES // 3)
    return verdict


async def test_stream_leader_killed_mid_burst(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path, ledger: Ledger, session: aiohttp.ClientSession
) -> None:
    killed: list[str] = []

    async def kill_leader() -> None:
        leader = await stream_leader(nats_cluster)
        killed.append(leader.name)
        leader.kill()

    await run_scenario("stream leader killed", nats_cluster, valkey_server.url, tmp_path, ledger, session, kill_leader)
    assert (await stream_leader(nats_cluster)).name not in killed


async def test_a_leader_election_within_the_answer_budget_costs_no_delivery(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path, ledger: Ledger, session: aiohttp.ClientSession
) -> None:
    """With the default answer budgets (GitHub 8 s, Slack 2 s, Stripe 16 s: the provider's timeout less
    a margin), the publish is retried under its message id through the election, so even the senders
    that never retry (GitHub-like) or give up after 3 s (Slack-like) get their 2xx: nothing is unknown."""

    async def kill_leader() -> None:
        (await stream_leader(nats_cluster)).kill()

    verdict = await run_scenario(
        "stream leader killed, default answer budget",
        nats_cluster,
        valkey_server.url,
        tmp_path,
        ledger,
        session,
        kill_leader,
        settings={"HUB_STREAM_REPLICAS": "3"},
    )
    assert verdict.count("unknown") == 0, verdict.of("unknown")


@pytest.mark.reliability
async def test_stream_follower_killed_mid_burst(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path, ledger: Ledger, session: aiohttp.ClientSession
) -> None:
    async def kill_follower() -> None:
        leader = await stream_leader(nats_cluster)
        next(node for node in nats_cluster.nodes if node is not leader).kill()

    await run_scenario(
        "stream follower killed", nats_cluster, valkey_server.url, tmp_path, ledger, session, kill_follower
    )


@pytest.mark.reliability
async def test_stream_leader_paused_past_the_publish_deadline(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path, ledger: Ledger, session: aiohttp.ClientSession
) -> None:
    async def pause_leader() -> None:
        leader = await stream_leader(nats_cluster)
        os.kill(leader.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(PAUSE_S)  # the length of the pause is the fault
        finally:
            os.kill(leader.pid, signal.SIGCONT)

    await run_scenario(
        "stream leader paused (SIGSTOP)", nats_cluster, valkey_server.url, tmp_path, ledger, session, pause_leader
    )


@pytest.mark.reliability
async def test_whole_cluster_restarted_mid_burst(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path, ledger: Ledger, session: aiohttp.ClientSession
) -> None:
    async def restart_cluster() -> None:
        for node in nats_cluster.nodes:
            node.kill()
        for node in nats_cluster.nodes:
            restart_node(node, tmp_path)
        await wait_meta_leader(nats_cluster)

    verdict = await run_scenario(
        "whole cluster restarted", nats_cluster, valkey_server.url, tmp_path, ledger, session, restart_cluster
    )
    assert "503" in ledger.statuses(), verdict.line()  # the restart cut the burst
