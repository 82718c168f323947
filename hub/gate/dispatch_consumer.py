"""The rate-limit consumer: invocations from `HUB_INVOCATIONS` are limited, dispatched, retried or dead-lettered.

Per invocation, in order: the route must still exist and the tenant's policy still allow it; a
debounced route folds the invocation into its key's window; the target's circuit breaker must be
closed (else a delay, no attempt used); the limiter admits it (nested rates and concurrency caps,
else a delay); then one dispatch attempt. Every delay is a NAK with that delay, and the consumer
has no MaxDeliver, so waiting never uses up attempts: attempts are counted in Valkey only when an
invocation is actually dispatched. Exhausted or permanent failures go to `HUB_DLQ`; the
invocation is acked only after its dead letter is acknowledged.

Valkey is required for every admission: while it is unreachable the handler waits for it (and
keeps its message from being redelivered), so consumption pauses instead of NAKing in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

import nats.errors
import orjson
from faststream.nats import NatsMessage
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as StoreTimeoutError

from events import journey
from events.deadletter import DeadLetter, FailureClass
from events.envelope import Envelope, headers_to_attributes, rfc3339
from events.subjects import INVOCATIONS_PREFIX, dlq_subject
from hub.gate.breaker import Breakers, BreakerState, CircuitBreaker, target_key
from hub.gate.catalog import CompiledRoute, GateCatalog
from hub.gate.limiter import (
    Coalesced,
    DebounceWait,
    Limiter,
    ParallelScope,
    RateScope,
    Throttled,
)
from hub.gate.metrics import GateMetrics
from hub.gate.policy import decide
from hub.gate.policy_consumer import (
    CONNECTOR_HEADER,
    ID_HEADER,
    MSG_ID,
    SEQUENCE_HEADER,
    TENANT_HEADER,
    TRACEPARENT_HEADER,
)
from hub.gate.targets import EGRESS_REFUSED, Delivered, Failed, HttpDispatcher, Outcome, SubjectDispatcher
from hub.ingest.activity import Activity
from hub.runtime import tracing
from hub.runtime.backoff import backoff_delay
from hub.runtime.live import Live
from schemas.policy import PolicyEgress

log = logging.getLogger(__name__)

T = TypeVar("T")

LEASE_MARGIN_S = 30.0
"""A concurrency lease outlives the dispatch deadline by this much, then frees itself."""
SUBJECT_TIMEOUT_S = 5.0
DLQ_RETRY_DELAY_S = 2.0
FAILURE_DELAY_S = 30.0
STORE_RETRY_MAX_S = 2.0
COALESCED_ATTRIBUTE = "hubcoalesced"
INVOCATION_ID_HEADER = "Hub-Invocation-Id"
"""The invocation id when it differs from `Nats-Msg-Id` (a redriven dead letter keeps its original id,
so the target's Idempotency-Key, under a fresh message id that JetStream does not drop)."""
NO_GRANTS = PolicyEgress()
"""The egress guard's default: public addresses only."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with the message: ack it, or NAK it with a delay."""

    ack: bool
    delay_s: float = 0.0


ACK = Verdict(ack=True)


def nak(delay_s: float) -> Verdict:
    """Redeliver after `delay_s`."""
    return Verdict(ack=False, delay_s=max(delay_s, 0.001))


class Dispatcher:
    """Limits and dispatches invocations; one per hub process, all sharing one durable consumer."""

    def __init__(
        self,
        catalog: Live[GateCatalog],
        limiter: Limiter,
        subjects: SubjectDispatcher,
        http: HttpDispatcher,
        js: JetStreamContext,
        metrics: GateMetrics,
        *,
        ack_wait_s: float,
        journeys: journey.JourneyWriter | None = None,
        activity: Activity | None = None,
    ) -> None:
        self._journeys = journeys
        self._catalog = catalog
        self._limiter = limiter
        self._subjects = subjects
        self._http = http
        self._js = js
        self._metrics = metrics
        self._activity = activity
        self._breakers = Breakers()
        self._heartbeat_s = ack_wait_s / 3
        self._store_down_since: float | None = None

    def breaker_states(self) -> dict[str, BreakerState]:
        """This process's circuit breakers, by target key (hub.gate.breaker.target_key)."""
        return self._breakers.states()

    async def handle(self, message: NatsMessage) -> None:
        """FastStream handler: process, then ack or NAK with the computed delay; the log lines of the
        handling name the invocation's event."""
        headers = message.raw_message.headers or {}
        with tracing.logged(
            headers.get(TRACEPARENT_HEADER),
            headers.get(TENANT_HEADER, ""),
            headers.get(CONNECTOR_HEADER, ""),
            unquote(headers.get(ID_HEADER, "")),
        ):
            await self._handle(message)

    async def _handle(self, message: NatsMessage) -> None:
        try:
            verdict = await self.process(message.raw_message, message.in_progress)
        except Exception:  # a bug must not stall the invocation silently: log it, keep it, retry later
            log.exception("invocation handling failed; redelivering", extra={"subject": message.raw_message.subject})
            verdict = nak(FAILURE_DELAY_S)
        if verdict.ack:
            await message.ack()
        else:
            await message.nack(delay=verdict.delay_s)

    async def process(self, raw: Msg, still_working: Callable[[], Awaitable[None]]) -> Verdict:
        """Decide what happens to one invocation message."""
        tokens = raw.subject.removeprefix(INVOCATIONS_PREFIX + ".").split(".")
        headers = raw.headers or {}
        if len(tokens) != 3:
            log.error("invocation on an unexpected subject; dropped", extra={"subject": raw.subject})
            return ACK
        tenant, connector, route_name = tokens
        invocation = Invocation(
            tenant,
            connector,
            route_name,
            headers.get(INVOCATION_ID_HEADER) or headers.get(MSG_ID) or raw.subject,
            raw.data,
            headers,
            still_working,
        )
        catalog = self._catalog.current  # one version for the whole invocation
        route = catalog.route(tenant, connector, route_name)
        if route is None:
            return await self._dead_letter(invocation, None, FailureClass.VALIDATION_ERROR, "route no longer exists", 0)
        attributes = headers_to_attributes(dict(headers))
        decision = decide(catalog.policy(tenant), route, attributes.get("type", ""))
        if not decision.allowed:
            return await self._dead_letter(invocation, route, FailureClass.POLICY_DENIED, decision.reason, 0)
        return await self._gate_and_dispatch(invocation, route)

    async def _gate_and_dispatch(self, invocation: Invocation, route: CompiledRoute) -> Verdict:
        if route.debounce_key is not None and route.spec.debounce is not None:
            key = route.debounce_value(_parsed(invocation.body))
            if key is not None:
                window_s = route.spec.debounce.window.total_seconds()
                order = _int(invocation.headers.get(SEQUENCE_HEADER))
                result = await self._store(
                    lambda: self._limiter.debounce(
                        f"{route.label}:{key}", invocation.id, invocation.body, window_s, order=order
                    ),
                    invocation.still_working,
                )
                if isinstance(result, Coalesced):
                    self._metrics.invocations.labels(*invocation.route_labels, "coalesced").inc()
                    return ACK
                if isinstance(result, DebounceWait):
                    self._metrics.throttle_delay.labels("debounce").observe(result.delay_s)
                    await self._throttled(invocation, "debounce", result.delay_s)
                    return nak(result.delay_s)
                invocation = invocation.coalesced(result.payload, result.count)
        target = target_key(route.spec.target)
        breaker = self._breakers.get(
            target, route.spec.circuit.failureThreshold, route.spec.circuit.cooldown.total_seconds()
        )
        wait_s = breaker.check()
        self._export_breaker(target, breaker)
        if wait_s > 0:
            self._metrics.throttle_delay.labels("breaker").observe(wait_s)
            await self._throttled(invocation, "breaker", wait_s)
            return nak(wait_s)
        rates, parallels = self._scopes(route)
        lease_ttl_s = _dispatch_timeout_s(route) + LEASE_MARGIN_S
        admission = await self._store(
            lambda: self._limiter.admit(invocation.id, rates, parallels, lease_ttl_s), invocation.still_working
        )
        if isinstance(admission, Throttled):
            self._metrics.throttle_delay.labels(admission.reason).observe(admission.delay_s)
            reason = "concurrency" if admission.reason == "parallel" else admission.reason
            await self._throttled(invocation, reason, admission.delay_s)
            return nak(admission.delay_s)
        started = time.monotonic()
        with tracing.span(
            "dispatch",
            invocation.headers.get(TRACEPARENT_HEADER),
            tenant=invocation.tenant,
            connector=invocation.connector,
            route=invocation.route,
            event_id=unquote(invocation.headers.get(ID_HEADER, "")),
            attempt=admission.attempt,
        ) as trace:
            outcome = await self._dispatch(route, invocation, trace.traceparent)
            if outcome.status is not None:
                trace.status(outcome.status)
            if isinstance(outcome, Failed):
                trace.error(outcome.error)
        self._metrics.dispatch_latency.labels(
            "subject" if route.spec.target.subject else "http", "ok" if isinstance(outcome, Delivered) else "failed"
        ).observe(time.monotonic() - started)
        with contextlib.suppress(RedisError):  # a lease left behind expires on its own
            await self._limiter.release(invocation.id, parallels)
        self._record_breaker(breaker, outcome, target)
        await self._attempted(invocation, admission.attempt, outcome, (time.monotonic() - started) * 1000)
        return await self._settle(invocation, route, outcome, admission.attempt, admission.first_attempt_at)

    async def _settle(
        self, invocation: Invocation, route: CompiledRoute, outcome: Outcome, attempt: int, first_at: float
    ) -> Verdict:
        if isinstance(outcome, Delivered):
            self._metrics.invocations.labels(*invocation.route_labels, "delivered").inc()
            if attempt > 1 or route.debounce_key is not None:  # else nothing outlives the lease
                await self._forget(invocation.id)
            return ACK
        if outcome.permanent:
            return await self._dead_letter(invocation, route, FailureClass.PERMANENT, outcome.error, attempt, first_at)
        if attempt >= route.spec.retry.maxAttempts:
            failure = FailureClass.QUOTA_EXCEEDED if outcome.throttled_by_target else FailureClass.TRANSIENT
            return await self._dead_letter(invocation, route, failure, outcome.error, attempt, first_at)
        retry = route.spec.retry
        delay_s = backoff_delay(attempt, retry.initial.total_seconds(), retry.max.total_seconds(), jitter=retry.jitter)
        if outcome.retry_after_s is not None:
            delay_s = max(delay_s, outcome.retry_after_s)
        await self._store(lambda: self._limiter.retain(invocation.id), invocation.still_working)
        self._metrics.retries.labels(*invocation.route_labels).inc()
        self._metrics.invocations.labels(*invocation.route_labels, "retried").inc()
        log.info(
            "dispatch failed; retrying",
            extra={"route": route.label, "attempt": attempt, "error": outcome.error, "delay_s": round(delay_s, 3)},
        )
        return nak(delay_s)

    async def _dispatch(self, route: CompiledRoute, invocation: Invocation, traceparent: str | None) -> Outcome:
        """One attempt; an HTTP request's `traceparent` header is the attempt's span (the event's trace)."""
        target = route.spec.target
        if target.subject is not None:
            return await self._subjects.send(
                target.subject, invocation.body, invocation.target_headers(), invocation.id, SUBJECT_TIMEOUT_S
            )
        assert target.http is not None
        policy = self._catalog.current.policy(route.tenant)
        egress = policy.egress if policy is not None else NO_GRANTS
        short = target.http.timeout.total_seconds() < self._heartbeat_s  # done before JetStream would wonder
        async with contextlib.nullcontext() if short else _heartbeat(invocation.still_working, self._heartbeat_s):
            return await self._http.send(
                target.http,
                invocation.body,
                invocation.id,
                egress=egress,
                extra_attributes=invocation.extra,
                traceparent=traceparent,
            )

    def _scopes(self, route: CompiledRoute) -> tuple[list[RateScope], list[ParallelScope]]:
        """The tenant-wide limits (from the Policy) and the route's own: all of them apply."""
        rates: list[RateScope] = []
        parallels: list[ParallelScope] = []
        policy = self._catalog.current.policy(route.tenant)
        for key, limits in ((route.tenant, policy.limits if policy else None), (route.label, route.spec.limits)):
            if limits is None:
                continue
            if limits.rate is not None:
                rates.append(RateScope(key, limits.rate.perSecond, limits.rate.burst))
            if limits.maxParallel is not None:
                parallels.append(ParallelScope(key, limits.maxParallel))
        return rates, parallels

    async def _dead_letter(
        self,
        invocation: Invocation,
        route: CompiledRoute | None,
        failure: FailureClass,
        error: str,
        attempts: int,
        first_at: float | None = None,
    ) -> Verdict:
        letter = DeadLetter(
            invocation_id=invocation.id,
            tenant=invocation.tenant,
            connector=invocation.connector,
            route=invocation.route,
            target=route.spec.target.label if route else "",
            failure_class=failure,
            error=error,
            attempts=attempts,
            first_attempt_at=rfc3339(first_at) if first_at else None,
            failed_at=rfc3339(time.time()),
            envelope=invocation.body,
        )
        subject = dlq_subject(invocation.tenant, invocation.connector, invocation.route)
        try:
            await self._js.publish(
                subject,
                letter.to_json(),
                timeout=SUBJECT_TIMEOUT_S,
                headers={MSG_ID: f"{invocation.headers.get(MSG_ID) or invocation.id}:dlq"},  # a redrive's own
            )
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("dead letter not acknowledged; retrying", extra={"subject": subject, "error": repr(exc)})
            return nak(DLQ_RETRY_DELAY_S)
        self._metrics.dead_letters.labels(*invocation.route_labels, failure.value).inc()
        if self._activity is not None:  # the connector's error rate SLO (hub/control/slo.py)
            self._activity.dispatch_failed(invocation.tenant, invocation.connector)
        await self._journey(
            invocation, lambda event: journey.dead_lettered(event, invocation.id, invocation.route, failure, error)
        )
        self._metrics.invocations.labels(*invocation.route_labels, "dead_lettered").inc()
        log.warning(
            "invocation dead-lettered",
            extra={"invocation": invocation.id, "class": failure.value, "error": error, "attempts": attempts},
        )
        await self._forget(invocation.id)
        return ACK

    async def _throttled(self, invocation: Invocation, reason: str, delay_s: float) -> None:
        await self._journey(
            invocation, lambda event_id: journey.throttled(event_id, invocation.id, invocation.route, reason, delay_s)
        )

    async def _attempted(self, invocation: Invocation, number: int, outcome: Outcome, latency_ms: float) -> None:
        failed = outcome if isinstance(outcome, Failed) else None
        await self._journey(
            invocation,
            lambda event_id: journey.attempt(
                event_id,
                invocation.id,
                invocation.route,
                number=number,
                status=outcome.status,
                latency_ms=latency_ms,
                delivered=failed is None,
                error_class=_error_class(failed) if failed else None,
                error=failed.error if failed else None,
            ),
        )

    async def _journey(self, invocation: Invocation, record: Callable[[str], journey.JourneyRecord]) -> None:
        """Write a step of the invocation's event journey (`record` is given the event id)."""
        if self._journeys is not None:
            event_id = headers_to_attributes({"ce-id": invocation.headers.get("ce-id", "")}).get("id", "")
            await self._journeys.write(invocation.tenant, invocation.connector, record(event_id))

    async def _forget(self, invocation_id: str) -> None:
        with contextlib.suppress(RedisError):  # what is left behind expires on its own
            await self._limiter.forget(invocation_id)

    async def _store(self, call: Callable[[], Awaitable[T]], still_working: Callable[[], Awaitable[None]]) -> T:
        """The call's result, waiting as long as Valkey is unreachable (fail closed, no NAK storm).

        While it waits, the message is kept in progress so that JetStream does not redeliver it.
        """
        try:
            result = await call()
        except (StoreConnectionError, StoreTimeoutError, OSError) as exc:
            if self._store_down_since is None:
                self._store_down_since = time.monotonic()
                self._metrics.limiter_available.set(0)
                log.error("limiter store unreachable: pausing dispatch", extra={"error": type(exc).__name__})
        else:
            self._store_is_back()
            return result
        async with _heartbeat(still_working, self._heartbeat_s):
            delay_s = 0.1
            while True:
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, STORE_RETRY_MAX_S)
                try:
                    result = await call()
                except (StoreConnectionError, StoreTimeoutError, OSError):
                    continue
                self._store_is_back()
                return result

    def _store_is_back(self) -> None:
        if self._store_down_since is not None:
            paused_s = round(time.monotonic() - self._store_down_since, 1)
            log.warning("limiter store reachable again: resuming dispatch", extra={"paused_s": paused_s})
            self._store_down_since = None
            self._metrics.limiter_available.set(1)

    def _record_breaker(self, breaker: CircuitBreaker, outcome: Outcome, target: str) -> None:
        trips = breaker.trips
        if isinstance(outcome, Failed) and outcome.trips_breaker:
            breaker.record_failure()
        else:
            breaker.record_success()  # the target answered (2xx, 4xx, 429): it is up
        if breaker.trips > trips:
            self._metrics.breaker_trips.labels(target).inc()
            log.warning("circuit breaker opened", extra={"target": target})
        self._export_breaker(target, breaker)

    def _export_breaker(self, target: str, breaker: CircuitBreaker) -> None:
        self._metrics.breaker_state.labels(target).set(0 if breaker.state is BreakerState.CLOSED else 1)


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation message: its route, id, envelope and headers."""

    tenant: str
    connector: str
    route: str
    id: str
    body: bytes
    headers: Mapping[str, str]
    still_working: Callable[[], Awaitable[None]]
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def route_labels(self) -> tuple[str, str, str]:
        """Metric labels: tenant, connector, route."""
        return self.tenant, self.connector, self.route

    def coalesced(self, payload: bytes, count: int) -> Invocation:
        """The invocation standing for `count` debounced events, carrying the latest one."""
        if count <= 1 and payload == self.body:
            return self
        envelope = _parsed(payload)
        envelope[COALESCED_ATTRIBUTE] = str(count)
        body = orjson.dumps(envelope)
        headers = Envelope.from_json(payload).to_headers() | {"ce-" + COALESCED_ATTRIBUTE: str(count)}
        extra = {COALESCED_ATTRIBUTE: str(count)}
        return Invocation(self.tenant, self.connector, self.route, self.id, body, headers, self.still_working, extra)

    def target_headers(self) -> dict[str, str]:
        """Headers for a subject target: the CloudEvents attributes and the content type."""
        return {k: v for k, v in self.headers.items() if k.lower().startswith("ce-") or k == "Content-Type"}


def _parsed(body: bytes) -> dict[str, Any]:
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return envelope if isinstance(envelope, dict) else {}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _error_class(failed: Failed) -> str:
    """What kind of failure, for a journey: `http_status`, `timeout`, `egress_refused`, `permanent`, `transport`."""
    if failed.status is not None:
        return "http_status"
    if failed.error.startswith("timeout"):
        return "timeout"
    if failed.error.startswith(EGRESS_REFUSED):
        return EGRESS_REFUSED
    return "permanent" if failed.permanent else "transport"


def _dispatch_timeout_s(route: CompiledRoute) -> float:
    http = route.spec.target.http
    return http.timeout.total_seconds() if http is not None else SUBJECT_TIMEOUT_S


@contextlib.asynccontextmanager
async def _heartbeat(still_working: Callable[[], Awaitable[None]], every_s: float) -> Any:
    """Tell JetStream the message is in progress every `every_s` while the block runs (long waits)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(nats.errors.Error):
                await still_working()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
