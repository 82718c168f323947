"""Prometheus metrics of the gate consumers, in the hub's registry (one `/metrics` per process).

Labels are tenant, connector, route and target labels from configuration, never from event data.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ROUTE = ["tenant", "connector", "route"]


class GateMetrics:
    """Decisions, invocations, throttling, dispatch, breakers and dead letters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "hub_policy_decisions", "Policy decisions per route", [*_ROUTE, "effect", "rule"], registry=registry
        )
        self.events_routed = Counter(
            "hub_policy_events", "Events the policy consumer handled, by outcome", ["outcome"], registry=registry
        )
        self.invocations = Counter(
            "hub_invocations",
            "Invocation handling by outcome (delivered, retried, dead_lettered, coalesced)",
            [*_ROUTE, "outcome"],
            registry=registry,
        )
        self.throttle_delay = Histogram(
            "hub_throttle_delay_seconds",
            "Delays given to throttled invocations, by reason (rate, parallel, debounce, breaker)",
            ["reason"],
            buckets=_DELAY_BUCKETS,
            registry=registry,
        )
        self.dispatch_latency = Histogram(
            "hub_dispatch_latency_seconds",
            "Time of one dispatch attempt, by target kind and result",
            ["kind", "result"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "hub_dispatch_retries", "Dispatch attempts scheduled for retry", _ROUTE, registry=registry
        )
        self.breaker_state = Gauge(
            "hub_breaker_open", "1 while a target's circuit breaker is open or half-open", ["target"], registry=registry
        )
        self.breaker_trips = Counter(
            "hub_breaker_trips", "Times a target's circuit breaker opened", ["target"], registry=registry
        )
        self.dead_letters = Counter(
            "hub_dead_letters", "Invocations dead-lettered, by failure class", [*_ROUTE, "class"], registry=registry
        )
        self.limiter_available = Gauge(
            "hub_limiter_store_available",
            "1 while the limiter's Valkey answers, 0 while consumption is paused",
            registry=registry,
        )
        self.limiter_available.set(1)
