"""The reliability fault suite: real hub processes, real nats-server (one, or a three-node cluster) and
valkey-server, simulated providers, and a fault injected mid-burst; each scenario asserts that no
delivery was lost and none landed twice (tests/reliability/checker.py).

The long scenarios carry the `reliability` marker and are left out of the normal test run
(`scripts/test` runs pytest with `-m "not reliability"`); the bounded selection without it (the
stream leader killed, Valkey restarted empty, the Valkey primary failed over by Sentinel, a hub
process killed, a poison invocation) runs in CI
with every other test. `scripts/reliability` runs all of them and prints each scenario's counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.reliability.checker import RESULTS
from tests.reliability.ledger import Ledger


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The senders' HTTP client: fresh connections allowed up to a provider-like concurrency."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as client:
        yield client


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each scenario's counts (ok, lost, duplicate, unknown), after the run."""
    if not RESULTS:
        return
    terminalreporter.section("reliability counts")
    for verdict in RESULTS:
        terminalreporter.write_line(verdict.line())
