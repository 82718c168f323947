"""Deadlines on a client's connection: how long it may stay idle, or take to send its headers or body.

Without them a client that sends a byte a second, or opens connections and never uses them again,
holds a socket and its buffers until it gives up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from adapters.errors import PayloadError

if TYPE_CHECKING:
    from hub.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds; see `HUB_KEEPALIVE_TIMEOUT` and `HUB_BODY_TIMEOUT` in docs/operations.md."""

    keepalive_s: float = 15.0
    """A connection is closed once this long has passed, since it opened or since its last response,
    without a complete request head (request line and headers): an idle keep-alive connection and a
    client trickling its headers are both cut here (aiohttp's own keep-alive timer, which runs while
    the server waits for a request's head)."""
    body_s: float = 30.0
    """A request's body must have been read within this long of its handler starting to read it."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        """The deadlines these settings ask for."""
        return cls(settings.keepalive_timeout.total_seconds(), settings.body_timeout.total_seconds())


DEADLINES = web.AppKey("deadlines", Deadlines)


class BodyTimeout(PayloadError):
    """The body did not arrive within the body deadline (400)."""

    def __init__(self, seconds: float) -> None:
        super().__init__("body_timeout", f"the body was not received within {seconds:g}s")


async def within_body_deadline(request: web.Request, read: Awaitable[T]) -> T:
    """`read`, or BodyTimeout once the app's body deadline has passed."""
    seconds = request.app.get(DEADLINES, Deadlines()).body_s
    try:
        async with asyncio.timeout(seconds):
            return await read
    except TimeoutError:
        raise BodyTimeout(seconds) from None
