"""One NATS flush for every core publish made before it.

A core publish is only known to have reached the server after a flush (a PING answered by a
PONG). When many invocations are dispatched at once, each waiting for its own PING costs a round
trip and a future apiece; a flush started after a publish covers it as well as any other flush,
so the callers that queue up while one flush is under way share the next one.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS

from hub.runtime import natsflush
from hub.runtime.groupcommit import GroupCommit


class SharedFlush:
    """Coalesces the flushes of concurrent callers, one round trip at a time."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._rounds: GroupCommit[float, None] = GroupCommit(
            self._flush, name="shared nats flush", cancelled=TimeoutError
        )

    async def flush(self, timeout_s: float) -> None:
        """Return once the server has everything this connection sent before the call.

        Raises what nats-py's flush raises (a timeout, a closed connection). The round that a call
        joins uses the timeout of the call that started it.
        """
        await self._rounds.submit(timeout_s)

    async def _flush(self, timeouts: list[float]) -> list[BaseException | None]:
        await natsflush.flush(self._nc, timeouts[0])
        return [None] * len(timeouts)
