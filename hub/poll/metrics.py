"""Prometheus metrics of the poll scheduler, in the hub's registry; labels are connector names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SOURCE = ["tenant", "connector"]


class PollMetrics:
    """Runs, items, duplicates, durations, lag and backoff of poll sources."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "hub_poll_runs",
            "Poll runs by outcome (ok, not_modified, failed, interrupted, lease_lost)",
            [*_SOURCE, "outcome"],
            registry=registry,
        )
        self.items_published = Counter(
            "hub_poll_items_published", "Polled items published (acknowledged by JetStream)", _SOURCE, registry=registry
        )
        self.duplicates = Counter(
            "hub_poll_duplicates", "Polled items skipped as already published", _SOURCE, registry=registry
        )
        self.run_duration = Histogram(
            "hub_poll_run_duration_seconds",
            "Duration of poll runs",
            _SOURCE,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.lag = Gauge(
            "hub_poll_lag_seconds",
            "Now minus the newest item's time, at the last run with items",
            _SOURCE,
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "hub_poll_consecutive_failures", "Failed runs in a row (0 when healthy)", _SOURCE, registry=registry
        )
        self.backoff = Gauge(
            "hub_poll_backoff_seconds",
            "Delay before the next run after a failure (0 when healthy)",
            _SOURCE,
            registry=registry,
        )
