"""When each connector last did its job in this process, for the status reporter to publish.

Recording is a dict store on the request path (no I/O); the reporter takes what accumulated and
writes it to the shared status every few seconds.
"""

from __future__ import annotations

import time


class Activity:
    """The last success per (tenant, connector) since the reporter last looked."""

    def __init__(self) -> None:
        self._succeeded: dict[tuple[str, str], float] = {}

    def succeeded(self, tenant: str, name: str) -> None:
        """A webhook was accepted (or a poll run succeeded) just now."""
        self._succeeded[(tenant, name)] = time.time()

    def take(self) -> dict[tuple[str, str], float]:
        """What was recorded since the last call."""
        taken, self._succeeded = self._succeeded, {}
        return taken
