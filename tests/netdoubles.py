"""Stand-ins for the network a tenant controls, on loopback: a name lookup answering from a table,
and a port that counts the connections made to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager


class Answers:
    """A name lookup (hub.runtime.egress.Lookup) answering from a table, recording what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int, family: int) -> Sequence[str]:
        self.asked.append(host)
        return self.table.get(host, [])


class Listener:
    """A loopback TCP port that counts the connections made to it and drops each at once."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@asynccontextmanager
async def counting_listener() -> AsyncIterator[Listener]:
    """A Listener on a free loopback port, closed on exit."""
    counting = Listener()
    server = await asyncio.start_server(counting.accept, "127.0.0.1", 0)
    counting.port = server.sockets[0].getsockname()[1]
    try:
        yield counting
    finally:
        server.close()
        await server.wait_closed()
