"""The gate limiter against a real valkey-server: GCRA burst and spacing with reserved slots, nested
scopes, redelivery without a second slot, concurrency caps across processes, lease expiry, attempt
numbering, debounce (leader, followers, fire, refire after a crash) and errors that propagate."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.app.embedded import RunningServer
from hub.gate.limiter import (
    FOLLOWER_MARGIN_MS,
    Admitted,
    Coalesced,
    DebounceFire,
    DebounceWait,
    Limiter,
    ParallelScope,
    RateScope,
    Throttled,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
SLACK_S = 0.005
"""How far a computed slot time may sit outside the client-side bounds of the server's clock."""


@pytest.fixture
async def redis(valkey_server_session: RunningServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(valkey_server_session.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test-limiter:{uuid.uuid4().hex}"


@pytest.fixture
def limiter(redis: Redis, prefix: str) -> Limiter:
    return Limiter(redis, prefix=prefix)


async def timed(call: Awaitable[T]) -> tuple[T, float, float]:
    """The result with the client's monotonic clock before and after: the server ran it in between."""
    start = time.monotonic()
    result = await call
    return result, start, time.monotonic()


def admitted(result: Admitted | Throttled, attempt: int = 1) -> Admitted:
    assert isinstance(result, Admitted), result
    assert result.attempt == attempt
    assert result.first_attempt_at == pytest.approx(time.time(), abs=5)  # the server's epoch clock
    return result


def waits(result: Coalesced | DebounceWait | DebounceFire) -> float:
    assert isinstance(result, DebounceWait), result
    assert result.delay_s > 0
    return result.delay_s


def throttled(result: Admitted | Throttled, reason: str) -> float:
    assert isinstance(result, Throttled), result
    assert result.reason == reason
    assert result.delay_s > 0
    return result.delay_s


async def test_burst_then_reserved_slots_spaced_by_the_rate(limiter: Limiter, redis: Redis, prefix: str) -> None:
    scope = RateScope("acme/gh:deploys", per_second=5, burst=10)
    calls = [await timed(limiter.admit(f"inv-{n}", [scope], [], lease_ttl_s=30)) for n in range(60)]
    first_end = calls[0][2]
    first_start = calls[0][1]
    assert calls[-1][2] - first_start < 0.2  # all 60 arrive well inside one emission interval

    slots: list[float] = []
    for n, (result, start, end) in enumerate(calls):
        if n < 10:
            admitted(result)
            slots.append(0.0)
            continue
        delay = throttled(result, "rate")
        # The slot, on the server clock relative to the first admission, lies within these bounds.
        low, high = delay + start - first_end, delay + end - first_start
        expected = 0.2 * (n - 9)
        assert low - SLACK_S <= expected <= high + SLACK_S, (n, delay, low, high)
        slots.append(expected)
    for t in slots:  # never more than burst + rate * t allowed by time t
        assert sum(1 for s in slots if s <= t + 1e-9) <= 10 + 5 * t + 1e-9

    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    assert keys  # TATs and 50 reservations, none of them immortal
    for key in keys:
        assert await redis.pttl(key) > 0, key


async def test_nested_scopes_the_tightest_governs(limiter: Limiter) -> None:
    tenant = RateScope("acme", per_second=2, burst=1)
    route_a = RateScope("acme/gh/deploys", per_second=100, burst=100)
    route_b = RateScope("acme/gh/issues", per_second=100, burst=100)

    assert isinstance(await limiter.admit("a1", [tenant, route_a], [], 30), Admitted)
    assert throttled(await limiter.admit("a2", [tenant, route_a], [], 30), "rate") == pytest.approx(0.5, abs=0.05)
    # The tenant bucket is shared by its routes: the other route queues behind the same tenant.
    assert throttled(await limiter.admit("b1", [tenant, route_b], [], 30), "rate") == pytest.approx(1.0, abs=0.05)

    # The other way round: a tight route under a loose tenant limits only that route.
    loose_tenant = RateScope("zeta", per_second=100, burst=100)
    tight_route = RateScope("zeta/gh/deploys", per_second=2, burst=1)
    other_route = RateScope("zeta/gh/issues", per_second=100, burst=100)
    assert isinstance(await limiter.admit("z1", [loose_tenant, tight_route], [], 30), Admitted)
    throttled(await limiter.admit("z2", [loose_tenant, tight_route], [], 30), "rate")
    assert isinstance(await limiter.admit("z3", [loose_tenant, other_route], [], 30), Admitted)

    # A slot reserved by the tighter scope is a slot of every scope: the route's next one follows it.
    kappa, kappa_route = RateScope("kappa", per_second=2, burst=1), RateScope("kappa/r", per_second=10, burst=1)
    assert isinstance(await limiter.admit("k1", [kappa, kappa_route], [], 30), Admitted)
    assert throttled(await limiter.admit("k2", [kappa, kappa_route], [], 30), "rate") == pytest.approx(0.5, abs=0.05)
    assert throttled(await limiter.admit("k3", [kappa_route], [], 30), "rate") == pytest.approx(0.6, abs=0.05)


async def test_redelivery_uses_its_reserved_slot_once(limiter: Limiter) -> None:
    scope = RateScope("fast", per_second=20, burst=1)  # T = 50 ms
    first, f_start, f_end = await timed(limiter.admit("a", [scope], [], 30))
    assert isinstance(first, Admitted)
    delay_b = throttled(await limiter.admit("b", [scope], [], 30), "rate")  # slot 1 (50 ms)
    assert delay_b == pytest.approx(0.05, abs=0.01)

    # Redelivered too early: still the same slot, and the queue behind it does not move.
    early, start, end = await timed(limiter.admit("b", [scope], [], 30))
    delay_early = throttled(early, "rate")
    assert delay_early + start - f_end - SLACK_S <= 0.05 <= delay_early + end - f_start + SLACK_S

    await asyncio.sleep(delay_b)
    admitted(await limiter.admit("b", [scope], [], 30))

    # A newcomer gets slot 2 (100 ms): b took one slot in all, not one per delivery.
    late, start, end = await timed(limiter.admit("c", [scope], [], 30))
    delay_c = throttled(late, "rate")
    assert delay_c + start - f_end - SLACK_S <= 0.1 <= delay_c + end - f_start + SLACK_S
    # Once admitted, the reservation is gone: a retry of b after a failed dispatch queues anew.
    throttled(await limiter.admit("b", [scope], [], 30), "rate")


async def test_forget_drops_a_reservation_so_a_replay_queues_anew(limiter: Limiter) -> None:
    """Throttled, then finalised (e.g. dead-lettered) before its slot came: a replay under the same
    id must queue behind what arrived since, not come back to the slot it reserved first."""
    scope = RateScope("acme", per_second=1, burst=1)  # T = 1 s: wide margins against a loaded machine
    first, f_start, f_end = await timed(limiter.admit("a", [scope], [], 30))
    assert isinstance(first, Admitted)
    throttled(await limiter.admit("b", [scope], [], 30), "rate")  # reserves slot 1 (1 s)
    await limiter.forget("b")

    # The replay takes a new slot, slot 2 (2 s); with its old reservation left it would wait for slot 1.
    replay, start, end = await timed(limiter.admit("b", [scope], [], 30))
    delay = throttled(replay, "rate")
    assert delay + start - f_end - SLACK_S <= 2.0 <= delay + end - f_start + SLACK_S, delay
    # ... and it took that slot: a newcomer comes after it, at slot 3 (3 s).
    late, start, end = await timed(limiter.admit("c", [scope], [], 30))
    delay_c = throttled(late, "rate")
    assert delay_c + start - f_end - SLACK_S <= 3.0 <= delay_c + end - f_start + SLACK_S, delay_c


async def test_max_parallel_across_processes(redis: Redis, prefix: str, valkey_server_session: RunningServer) -> None:
    other_client = Redis.from_url(valkey_server_session.url)
    try:
        one, two = Limiter(redis, prefix=prefix), Limiter(other_client, prefix=prefix)
        cap = [ParallelScope("acme/gh/deploys", max_parallel=2)]
        assert isinstance(await one.admit("a", [], cap, 30), Admitted)
        assert isinstance(await two.admit("b", [], cap, 30), Admitted)
        assert throttled(await one.admit("c", [], cap, 30), "parallel") == pytest.approx(0.25)
        assert throttled(await two.admit("d", [], cap, 30), "parallel") == pytest.approx(0.25)

        # The holder itself, redelivered after a crash, still holds its lease.
        admitted(await two.admit("b", [], cap, 30), attempt=2)

        await two.release("b", cap)
        assert isinstance(await one.admit("c", [], cap, 30), Admitted)
        throttled(await two.admit("d", [], cap, 30), "parallel")
        await one.release("a", cap)
        await one.release("a", cap)  # releasing twice is harmless
        assert isinstance(await two.admit("d", [], cap, 30), Admitted)
    finally:
        await other_client.aclose()


async def test_a_crashed_holders_lease_expires(limiter: Limiter) -> None:
    cap = [ParallelScope("slow-target", max_parallel=1)]
    held, h_start, h_end = await timed(limiter.admit("crashed", [], cap, lease_ttl_s=0.2))
    assert isinstance(held, Admitted)
    waited, start, end = await timed(limiter.admit("next", [], cap, lease_ttl_s=0.2))
    delay = throttled(waited, "parallel")
    # The wait is until the holder's lease expires, 200 ms after it was taken (on the server clock),
    # however long this machine took between the two calls.
    assert delay + start - h_end - SLACK_S <= 0.2 <= delay + end - h_start + SLACK_S, delay
    await asyncio.sleep(delay + 0.01)
    assert isinstance(await limiter.admit("next", [], cap, lease_ttl_s=0.2), Admitted)


async def test_leases_are_all_or_nothing(limiter: Limiter) -> None:
    tenant, route = ParallelScope("acme", 1), ParallelScope("acme/gh/deploys", 1)
    assert isinstance(await limiter.admit("holder", [], [tenant], 30), Admitted)
    throttled(await limiter.admit("blocked", [], [route, tenant], 30), "parallel")
    # `blocked` took no lease in the route cap while the tenant cap refused it.
    assert isinstance(await limiter.admit("other", [], [route], 30), Admitted)


async def test_a_parallel_wait_does_not_spend_a_rate_slot(limiter: Limiter) -> None:
    rate = [RateScope("acme", per_second=1, burst=2)]
    cap = [ParallelScope("acme", 1)]
    assert isinstance(await limiter.admit("a", rate, cap, 30), Admitted)  # rate slot 1 of 2
    throttled(await limiter.admit("b", rate, cap, 30), "parallel")
    throttled(await limiter.admit("b", rate, cap, 30), "parallel")
    await limiter.release("a", cap)
    assert isinstance(await limiter.admit("b", rate, cap, 30), Admitted)  # slot 2: the waits took none
    throttled(await limiter.admit("c", rate, [], 30), "rate")


async def test_a_reserved_slot_survives_a_parallel_wait(limiter: Limiter) -> None:
    rate = [RateScope("acme", per_second=10, burst=1)]  # T = 100 ms
    cap = [ParallelScope("acme", 1)]
    first, f_start, f_end = await timed(limiter.admit("a", rate, cap, 30))
    assert isinstance(first, Admitted)
    delay_b = throttled(await limiter.admit("b", rate, cap, 30), "rate")  # reserves slot 1 (100 ms)
    await asyncio.sleep(delay_b)
    throttled(await limiter.admit("b", rate, cap, 30), "parallel")  # its slot came, the cap is full
    await limiter.release("a", cap)
    assert isinstance(await limiter.admit("b", rate, cap, 30), Admitted)
    await limiter.release("b", cap)
    # A newcomer gets slot 2 (200 ms): b spent its reserved slot and nothing more.
    late, start, end = await timed(limiter.admit("c", rate, cap, 30))
    delay_c = throttled(late, "rate")
    assert delay_c + start - f_end - SLACK_S <= 0.2 <= delay_c + end - f_start + SLACK_S


async def test_attempts_count_and_forget_resets(limiter: Limiter) -> None:
    first = admitted(await limiter.admit("inv", [], [], 30))
    await asyncio.sleep(0.01)
    for attempt in (2, 3):
        assert await limiter.admit("inv", [], [], 30) == Admitted(attempt, first.first_attempt_at)
    admitted(await limiter.admit("other", [], [], 30))

    await limiter.forget("inv")
    again = await limiter.admit("inv", [], [], 30)
    assert isinstance(again, Admitted)
    assert again.attempt == 1
    assert again.first_attempt_at > first.first_attempt_at


async def test_debounce_leader_followers_fire_and_refire(limiter: Limiter) -> None:
    payloads = [os.urandom(1 << 20) + b"\x00\xff" + bytes([n]) for n in range(3)]
    window = 0.1
    lead = await limiter.debounce("acme/gh:push:main", "a", payloads[0], window, order=1)
    assert waits(lead) == pytest.approx(window)
    # Followers fold in and wait until just after the window (they are acked once it fired).
    follower_wait = waits(await limiter.debounce("acme/gh:push:main", "c", payloads[2], window, order=3))
    assert window < follower_wait <= window + FOLLOWER_MARGIN_MS / 1000
    # An older event handled later does not replace the latest one.
    assert waits(await limiter.debounce("acme/gh:push:main", "b", payloads[1], window, order=2)) > 0
    other = await limiter.debounce("acme/gh:push:dev", "d", b"dev", window)
    assert waits(other) == pytest.approx(window)  # another key is not merged

    early = await limiter.debounce("acme/gh:push:main", "a", payloads[0], window, order=1)
    assert isinstance(early, DebounceWait)
    assert 0 < early.delay_s < window
    # A follower redelivered before the leader fired waits again; it is not counted twice.
    assert waits(await limiter.debounce("acme/gh:push:main", "b", payloads[1], window, order=2)) > 0
    await asyncio.sleep(early.delay_s)

    fired = await limiter.debounce("acme/gh:push:main", "a", payloads[0], window, order=1)
    assert fired == DebounceFire(payloads[2], 3)  # the latest payload, byte for byte
    # Redelivered after a crash between firing and the ack: the same dispatch again.
    assert await limiter.debounce("acme/gh:push:main", "a", b"ignored", window) == fired
    # The followers' window has fired: they are released.
    assert await limiter.debounce("acme/gh:push:main", "b", payloads[1], window, order=2) == Coalesced()
    assert await limiter.debounce("acme/gh:push:main", "c", payloads[2], window, order=3) == Coalesced()
    # The window is closed: the next event leads a new one.
    assert waits(await limiter.debounce("acme/gh:push:main", "e", b"next", window)) == pytest.approx(window)

    await asyncio.sleep(window)
    assert await limiter.debounce("acme/gh:push:dev", "d", b"dev", window) == DebounceFire(b"dev", 1)

    await limiter.forget("a")  # the fired record goes with the final outcome
    assert isinstance(await limiter.debounce("acme/gh:push:main", "a", payloads[0], window), DebounceWait)


async def test_a_lost_window_lets_its_followers_arrive_again(limiter: Limiter, redis: Redis, prefix: str) -> None:
    """Valkey restarted without persistence: the window is gone, its waiting followers form a new one."""
    window = 0.1
    assert waits(await limiter.debounce("k", "lead", b"0", window, order=0)) > 0
    assert waits(await limiter.debounce("k", "f1", b"1", window, order=1)) > 0
    assert waits(await limiter.debounce("k", "f2", b"2", window, order=2)) > 0
    await redis.delete(*[key async for key in redis.scan_iter(f"{prefix}:deb:*")])  # the window, lost

    assert waits(await limiter.debounce("k", "f1", b"1", window, order=1)) == pytest.approx(window)  # leads anew
    assert waits(await limiter.debounce("k", "f2", b"2", window, order=2)) > 0
    assert waits(await limiter.debounce("k", "lead", b"0", window, order=0)) > 0
    await asyncio.sleep(window)
    assert await limiter.debounce("k", "f1", b"1", window, order=1) == DebounceFire(b"2", 3)
    assert await limiter.debounce("k", "f2", b"2", window, order=2) == Coalesced()
    assert await limiter.debounce("k", "lead", b"0", window, order=0) == Coalesced()


async def test_redis_errors_propagate() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}")
    try:
        limiter = Limiter(client)
        scope, cap = RateScope("acme", 1, 1), ParallelScope("acme", 1)
        with pytest.raises(RedisConnectionError):
            await limiter.admit("x", [scope], [cap], 30)
        with pytest.raises(RedisConnectionError):
            await limiter.release("x", [cap])
        with pytest.raises(RedisConnectionError):
            await limiter.forget("x")
        with pytest.raises(RedisConnectionError):
            await limiter.debounce("k", "x", b"p", 1)
    finally:
        await client.aclose()


def test_scopes_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="per_second"):
        RateScope("acme", 0, 1)
    with pytest.raises(ValueError, match="burst"):
        RateScope("acme", 1, 0)
    with pytest.raises(ValueError, match="max_parallel"):
        ParallelScope("acme", 0)


async def test_the_attempt_record_lives_as_long_as_the_lease_unless_retained(
    limiter: Limiter, redis: Redis, prefix: str
) -> None:
    """A first-attempt delivery leaves nothing behind; a coming retry keeps the count for days."""
    assert isinstance(await limiter.admit("once", [], [], 0.5), Admitted)
    assert 0 < await redis.pttl(f"{prefix}:att:once") <= 500

    assert isinstance(await limiter.admit("retried", [], [], 0.5), Admitted)
    await limiter.retain("retried")
    assert await redis.pttl(f"{prefix}:att:retried") > 6 * 86_400_000
    again = await limiter.admit("retried", [], [], 0.5)
    assert isinstance(again, Admitted)
    assert again.attempt == 2
