"""`all_settled`: results and errors in order, one call or many."""

from __future__ import annotations

import asyncio

from hub.runtime.settled import all_settled


async def value(n: int) -> int:
    await asyncio.sleep(0)
    return n


async def failing(message: str) -> int:
    await asyncio.sleep(0)
    raise ValueError(message)


async def test_one_call_gives_its_result_or_its_error() -> None:
    assert await all_settled([value(1)]) == [1]
    (error,) = await all_settled([failing("no")])
    assert isinstance(error, ValueError)
    assert str(error) == "no"


async def test_many_calls_give_every_result_and_error_in_order() -> None:
    results = await all_settled([value(1), failing("second"), value(3)])
    assert results[0] == 1
    assert results[2] == 3
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "second"


async def test_no_calls_give_nothing() -> None:
    assert await all_settled([]) == []
