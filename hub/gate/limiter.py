"""Rate limits, concurrency caps and debounce for the gate, shared by every hub process via Valkey.

Every decision is one atomic script (one EVALSHA; concurrent admissions share round trips) that
reads the server's clock (`redis.call('TIME')`), so several processes with drifting clocks still
agree. Rates use GCRA per scope (a stored theoretical arrival time); when an invocation has to
wait, the script *reserves* its future slot: the TATs move past it and the slot's time is stored
under the invocation id. The caller NAKs with that delay; the redelivery finds its reservation and
goes through without consuming a second slot, while later arrivals are queued behind it rather
than racing it.

Concurrency caps are sorted sets of lease holders scored by expiry, so the slot of a holder that
crashed frees itself after `lease_ttl_s`. Debounce keeps one leader per key: followers fold into it
(count, latest payload) and wait, the leader fires once its window is over, and the followers are
released (acked) only after that; the fired result is kept so that a redelivered leader dispatches
the same thing again.

Valkey errors propagate unchanged: the consumer pauses while Valkey is away (there is no failing
open for limits).

Every key is `<prefix>:<kind>:<name>`, and the hub's prefix, `{hub:gate}`, is a hash tag: the keys a
script touches (an invocation's, its scopes', and the debounce done marks it derives from its last
key) share one hash slot, as a Valkey Cluster requires. On a Cluster the limiter's state therefore
lives on one primary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from hub.ingest.scriptbatch import ScriptBatcher

# Shared by both scripts: `now` in ms (fractional) from the server clock, and a fixed-point format
# (Lua's tostring keeps 14 digits, too few for epoch ms with a fraction).
_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local function fmt(x) return string.format('%.3f', x) end
"""

# KEYS: reservation, attempts, then ARGV[1] rate TAT keys, then lease sets.
# ARGV: n_rates, member, lease_ttl_ms, reservation_grace_ms, attempts_ttl_ms,
#       then T_ms and tau_ms per rate scope, then max_parallel per lease set.
# Returns {'rate', delay_ms} | {'parallel', delay_ms} | {'ok', attempt, first_attempt_ms}.
_ADMIT = (
    _CLOCK
    + """
local nr = tonumber(ARGV[1])
local member = ARGV[2]
local lease_ttl, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local reserved = redis.call('GET', KEYS[1])
local at = now
local tats = {}
if reserved then
  at = tonumber(reserved)
else
  for i = 1, nr do
    tats[i] = tonumber(redis.call('GET', KEYS[2 + i]) or now)
    at = math.max(at, tats[i] - tonumber(ARGV[5 + 2 * i]))
  end
end
local function take_rate_slots()
  for i = 1, nr do
    local tau = tonumber(ARGV[5 + 2 * i])
    local tat = math.max(tats[i], at) + tonumber(ARGV[4 + 2 * i])
    redis.call('SET', KEYS[2 + i], fmt(tat), 'PX', math.ceil(tat - now + tau + 1000))
  end
end
if at > now then
  if not reserved then
    take_rate_slots()
    redis.call('SET', KEYS[1], fmt(at), 'PX', math.ceil(at - now + grace))
  end
  return {'rate', fmt(at - now)}
end
local first = 2 + nr
for j = 1, #KEYS - first do
  local key = KEYS[first + j]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
  if not redis.call('ZSCORE', key, member) and redis.call('ZCARD', key) >= tonumber(ARGV[5 + 2 * nr + j]) then
    local earliest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    return {'parallel', fmt(math.min(earliest - now, 250))}
  end
end
for j = 1, #KEYS - first do
  local key = KEYS[first + j]
  redis.call('ZADD', key, fmt(now + lease_ttl), member)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, math.ceil(tonumber(last[2]) - now + 1000))
end
if not reserved then take_rate_slots() end
redis.call('DEL', KEYS[1])
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('HSETNX', KEYS[2], 'first', fmt(now))
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {'ok', tostring(n), redis.call('HGET', KEYS[2], 'first')}
"""
)

# KEYS: debounce state, fired record of ARGV[1], joined marker of ARGV[1], done prefix (+ leader id).
# ARGV: invocation id, payload, window_ms, grace_ms, order, follower_margin_ms.
# Returns {'fire', payload, count} | {'wait', delay_ms} | {'coalesced'}.
# The payload kept is the one with the highest order (ties: the later arrival), so events that
# concurrent handlers see out of order still leave the latest one to be dispatched. A follower is
# acked ('coalesced') only once its window has fired: until then it waits, so if Valkey loses the
# window (a restart without persistence) the followers arrive again and form a new one.
_DEBOUNCE = (
    _CLOCK
    + """
local fired = redis.call('HMGET', KEYS[2], 'payload', 'count')
if fired[1] then return {'fire', fired[1], fired[2]} end
local window, grace, order = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local margin = tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'leader', 'deadline', 'order')
local joined = redis.call('GET', KEYS[3])
if joined then
  if state[1] == joined then return {'wait', fmt(math.max(tonumber(state[2]) - now, 0) + margin)} end
  if redis.call('EXISTS', KEYS[4] .. joined) == 1 then
    redis.call('DEL', KEYS[3])
    return {'coalesced'}
  end
  redis.call('DEL', KEYS[3])  -- the window it joined is gone without firing: arrive again
end
if not state[1] then
  redis.call('HSET', KEYS[1], 'leader', ARGV[1], 'deadline', fmt(now + window), 'count', 1,
             'payload', ARGV[2], 'order', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window + grace))
  return {'wait', fmt(window)}
end
if state[1] ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'count', 1)
  if order >= tonumber(state[3]) then redis.call('HSET', KEYS[1], 'payload', ARGV[2], 'order', ARGV[5]) end
  redis.call('SET', KEYS[3], state[1], 'PX', math.ceil(window + grace))
  return {'wait', fmt(math.max(tonumber(state[2]) - now, 0) + margin)}
end
local deadline = tonumber(state[2])
if now < deadline then return {'wait', fmt(deadline - now)} end
local out = redis.call('HMGET', KEYS[1], 'payload', 'count')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'payload', out[1], 'count', out[2])
redis.call('PEXPIRE', KEYS[2], math.ceil(grace))
redis.call('SET', KEYS[4] .. ARGV[1], '1', 'PX', math.ceil(grace))
return {'fire', out[1], out[2]}
"""
)

FOLLOWER_MARGIN_MS = 200
"""A follower checks back this long after its window's deadline, by when the leader has fired."""

_MIN_DELAY_MS = 1.0
"""A wait the scripts report is never shorter than this (their 3-decimal format can round to zero)."""


@dataclass(frozen=True, slots=True)
class RateScope:
    """One GCRA bucket: `per_second` sustained, `burst` at once."""

    key: str
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second > 0 and self.burst >= 1):
            raise ValueError(f"rate scope {self.key!r} needs per_second > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class ParallelScope:
    """A concurrency cap shared by all hub processes."""

    key: str
    max_parallel: int

    def __post_init__(self) -> None:
        if self.max_parallel < 1:
            raise ValueError(f"parallel scope {self.key!r} needs max_parallel >= 1")


@dataclass(frozen=True, slots=True)
class Admitted:
    """Run it now: the `attempt`-th admission of this invocation id, the first at `first_attempt_at`."""

    attempt: int
    first_attempt_at: float


@dataclass(frozen=True, slots=True)
class Throttled:
    """Not now: NAK with `delay_s` (> 0). A reserved rate slot stays reserved for this invocation id."""

    delay_s: float
    reason: Literal["rate", "parallel"]


@dataclass(frozen=True, slots=True)
class Coalesced:
    """Debounce: folded into an invocation of its key that has fired; the caller acks it."""


@dataclass(frozen=True, slots=True)
class DebounceWait:
    """Debounce: this invocation leads or has joined its key's window; try again after `delay_s`."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class DebounceFire:
    """Debounce: the window is over; dispatch `payload` (the latest event) standing for `count` events."""

    payload: bytes
    count: int


class Limiter:
    """Atomic admission decisions in one Valkey shared by every hub process.

    The client must not decode responses (debounce payloads are arbitrary bytes). On a Valkey Cluster
    the prefix must be a hash tag (`{...}`, as the default is): every script's keys share its slot.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "{hub:gate}",
        reservation_grace_s: float = 60.0,
        attempts_ttl_s: float = 7 * 86400,
        debounce_grace_s: float = 86400,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reservation_grace_ms = _ms(reservation_grace_s)
        self._attempts_ttl_ms = _ms(attempts_ttl_s)
        self._debounce_grace_ms = _ms(debounce_grace_s)
        self._admit = redis.register_script(_ADMIT)
        self._admissions = ScriptBatcher(redis)  # concurrent admissions share round trips
        self._debounce = redis.register_script(_DEBOUNCE)

    async def admit(
        self, invocation_id: str, rates: Sequence[RateScope], parallels: Sequence[ParallelScope], lease_ttl_s: float
    ) -> Admitted | Throttled:
        """Admit now (taking a rate slot in every scope and a lease in every cap) or say how long to wait."""
        if lease_ttl_s <= 0:
            raise ValueError("lease_ttl_s must be > 0")
        keys = [self._key("resv", invocation_id), self._key("att", invocation_id)]
        keys += [self._key("tat", scope.key) for scope in rates]
        keys += [self._key("lease", scope.key) for scope in parallels]
        args: list[str | int] = [len(rates), invocation_id, _ms(lease_ttl_s)]
        args += [self._reservation_grace_ms, _ms(lease_ttl_s)]  # the attempt record: see `retain`
        for rate in rates:
            interval = 1000.0 / rate.per_second
            args += [repr(interval), repr((rate.burst - 1) * interval)]
        args += [scope.max_parallel for scope in parallels]
        result: list[Any] = await self._admissions.call(self._admit, keys, args)
        kind = _text(result[0])
        if kind == "ok":
            return Admitted(attempt=int(result[1]), first_attempt_at=float(result[2]) / 1000)
        reason: Literal["rate", "parallel"] = "rate" if kind == "rate" else "parallel"
        return Throttled(delay_s=max(float(result[1]), _MIN_DELAY_MS) / 1000, reason=reason)

    async def retain(self, invocation_id: str) -> None:
        """Keep the attempt record for `attempts_ttl_s`: a retry is coming.

        `admit` gives the record only the lease's lifetime, so an invocation delivered at its first
        attempt (the common case) leaves nothing behind and needs no clean-up call.
        """
        await self._redis.pexpire(self._key("att", invocation_id), self._attempts_ttl_ms)

    async def release(self, invocation_id: str, parallels: Sequence[ParallelScope]) -> None:
        """Give back this invocation's lease in every cap (one round trip; a missing lease is fine)."""
        if not parallels:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in parallels:
                pipe.zrem(self._key("lease", scope.key), invocation_id)
            await pipe.execute()

    async def forget(self, invocation_id: str) -> None:
        """Drop the attempt record, any reservation and any debounce record (after a final outcome)."""
        await self._redis.delete(
            self._key("att", invocation_id),
            self._key("resv", invocation_id),
            self._key("fired", invocation_id),
            self._key("joined", invocation_id),
        )

    async def debounce(
        self, key: str, invocation_id: str, payload: bytes, window_s: float, *, order: int = 0
    ) -> Coalesced | DebounceWait | DebounceFire:
        """Lead `key`'s window, fold into its pending leader, or (as the leader, once due) fire.

        `order` ranks the events (the hub passes the event's sequence in `HUB_EVENTS`): the window
        dispatches the payload of the highest, whatever order the invocations are handled in.
        """
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        keys = [
            self._key("deb", key),
            self._key("fired", invocation_id),
            self._key("joined", invocation_id),
            self._key("windone", ""),
        ]
        args: list[str | int | bytes] = [invocation_id, payload, repr(window_s * 1000), self._debounce_grace_ms]
        args += [order, FOLLOWER_MARGIN_MS]
        result: list[Any] = await self._debounce(keys=keys, args=args)
        kind = _text(result[0])
        if kind == "coalesced":
            return Coalesced()
        if kind == "wait":
            return DebounceWait(delay_s=max(float(result[1]), _MIN_DELAY_MS) / 1000)
        if not isinstance(result[1], bytes):
            raise TypeError("the Limiter needs a Redis client with decode_responses=False")
        return DebounceFire(payload=result[1], count=int(result[2]))

    def _key(self, kind: str, name: str) -> str:
        """`{prefix}:{kind}:{name}`: the fixed kind keeps caller strings (with `:` or `/`) apart."""
        return f"{self._prefix}:{kind}:{name}"


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
