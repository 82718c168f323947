"""A NATS flush that covers everything the connection was asked to send before it.

A flush is a PING answered by a PONG, and the server answers in the order it reads. nats-py's
`flush()` writes its PING straight to the socket, while publishes and subscriptions wait in its
pending buffer until its flusher task writes them (`Client._send_ping`, nats-py 2.9 to 2.16). The
PING can then overtake them: the PONG comes back, and `flush()` returns, before the server has read
a publish or a subscription made before the call. Tests saw it as a listener that missed messages
published after its "flushed" subscription, about once in forty bursts. Writing the pending buffer
first (nats-py's own force-flush) puts the PING behind them.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS


async def flush(nc: NATS, timeout_s: float) -> None:
    """Return once the server has read every publish and subscription made on `nc` before the call.

    Raises what nats-py's flush raises (FlushTimeoutError, ConnectionClosedError), or TimeoutError
    when writing the buffer took the whole `timeout_s`.
    """
    async with asyncio.timeout(timeout_s):
        await nc._flush_pending(force_flush=True)  # private: no public call writes the buffer alone
    await nc.flush(timeout_s)  # type: ignore[arg-type]  # annotated int; any float works
