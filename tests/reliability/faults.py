"""What the scenarios share: the senders against a hub, the burst running while a fault is injected,
and restarting a cluster node by hand (its PID replaced, stopped by the cluster fixture at teardown)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from hub.app.embedded import die_with_parent, find_binary
from tests.cluster import Cluster, Node
from tests.conftest import wait_for
from tests.reliability.hubs import Hubs
from tests.reliability.ledger import Ledger
from tests.reliability.senders import PROFILES, Sender, burst

BURST_TIMEOUT_S = 30.0


def senders_for(hubs: Hubs, ledger: Ledger, session: aiohttp.ClientSession) -> list[Sender]:
    """One sender per simulated provider, posting to `hubs`' port."""
    return [Sender(profile, hubs.url, hubs.secret(profile), ledger, session) for profile in PROFILES]


def attempts_made(ledger: Ledger, count: int) -> Callable[[], Awaitable[bool]]:
    """A condition: the senders have made at least `count` attempts (so the burst is under way)."""

    async def made() -> bool:
        return len(ledger.attempts) >= count

    return made


async def burst_with_fault(
    senders: list[Sender], ledger: Ledger, count: int, interval_s: float, fault: Callable[[], Awaitable[None]]
) -> list[bool]:
    """Start a burst of `count` deliveries, inject `fault` once a third of them were attempted, and wait
    for every delivery to be accepted or given up by its sender."""
    load = asyncio.create_task(burst(senders, count, interval_s))
    try:
        await wait_for(attempts_made(ledger, count // 3), BURST_TIMEOUT_S, "a third of the burst sent")
        await fault()
    except BaseException:
        load.cancel()
        raise
    return await load


def restart_node(node: Node, log_dir: Path) -> None:
    """Start a stopped node again with its own config and store (as after a crash or a reboot)."""
    assert node.process is None or node.process.poll() is not None, f"{node.name} is still running"
    with (log_dir / f"{node.name}.restart.log").open("ab") as log:
        node.process = subprocess.Popen(
            [str(find_binary("nats")), "-c", str(node.store / "nats.conf")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


async def wait_meta_leader(cluster: Cluster, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async def elected() -> bool:
        return cluster.meta_leader() is not None

    await wait_for(elected, timeout, "a JetStream meta leader")
