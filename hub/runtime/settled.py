"""Run awaitables together and collect each one's result or error, as `gather(return_exceptions=True)`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def all_settled(calls: list[Coroutine[Any, Any, T]]) -> list[T | BaseException]:
    """Each call's result or the exception it raised, in order. A single call (the common case: one
    event per request, one route per event) runs in the caller's task, without the cost of a new one."""
    if len(calls) == 1:
        try:
            return [await calls[0]]
        except Exception as exc:  # reported to the caller, as gather(return_exceptions=True) does
            return [exc]
    return list(await asyncio.gather(*calls, return_exceptions=True))
