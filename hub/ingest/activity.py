"""When each connector last did its job in this process, for the status reporter to publish.

Recording is a dict store on the request path (no I/O); the reporter takes what accumulated and
writes it to the shared status every few seconds.
"""

from __future__ import annotations

import time


class Activity:
    """The last success, the events accepted and the requests refused per (tenant, connector) since
    the reporter last looked."""

    def __init__(self) -> None:
        self._succeeded: dict[tuple[str, str], float] = {}
        self._counts: dict[tuple[str, str], list[int]] = {}
        """[accepted, refused, unavailable, failed] per connector."""

    def succeeded(self, tenant: str, name: str) -> None:
        """A webhook was accepted (or a poll run succeeded) just now."""
        self._succeeded[(tenant, name)] = time.time()

    def take(self) -> dict[tuple[str, str], float]:
        """What was recorded since the last call."""
        taken, self._succeeded = self._succeeded, {}
        return taken

    def accepted(self, tenant: str, name: str, events: int) -> None:
        """A request's `events` were published (the connectors page's events per minute)."""
        self._counts.setdefault((tenant, name), [0, 0, 0, 0])[0] += events

    def refused(self, tenant: str, name: str, *, unavailable: bool = False) -> None:
        """A request for this served connector was refused (its rejection rate); `unavailable` when
        the answer was a 5xx (its availability SLO)."""
        counts = self._counts.setdefault((tenant, name), [0, 0, 0, 0])
        counts[1] += 1
        counts[2] += unavailable

    def dispatch_failed(self, tenant: str, name: str) -> None:
        """An invocation of this connector's events was dead-lettered (its error rate SLO)."""
        self._counts.setdefault((tenant, name), [0, 0, 0, 0])[3] += 1

    def take_counts(self) -> dict[tuple[str, str], tuple[int, int, int, int]]:
        """(accepted, refused, unavailable, failed) per connector since the last call."""
        taken, self._counts = self._counts, {}
        return {key: (counts[0], counts[1], counts[2], counts[3]) for key, counts in taken.items()}
