"""Prometheus metrics of the ingest path (webhooks and polls alike). Labels come from configuration
(tenant, connector), never from request input, so their cardinality is bounded by the number of
connectors. The process's registry also holds the gate's and the poller's (hub.app.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNKNOWN = "_unknown"
"""The tenant/connector label of requests for connectors that do not exist."""


class IngestMetrics:
    """The ingest path's metrics, in their own registry (one per hub process, so tests can build several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hub_ingest_requests",
            "Webhook requests by connector and outcome",
            ["tenant", "connector", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hub_ingest_latency_seconds",
            "Time from request start to response, by outcome",
            ["outcome"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.published = Counter(
            "hub_events_published", "Events acknowledged by JetStream", ["tenant", "connector"], registry=self.registry
        )
        self.jetstream_duplicates = Counter(
            "hub_jetstream_duplicates",
            "Publishes JetStream recognized as duplicates by Nats-Msg-Id",
            ["tenant", "connector"],
            registry=self.registry,
        )
        self.replays = Counter(
            "hub_replays_refused",
            "Requests whose signature was already delivered under another id (no signed timestamp)",
            ["tenant", "connector"],
            registry=self.registry,
        )
        self.publish_retries = Counter(
            "hub_publish_retries", "Publishes retried under the same Nats-Msg-Id", registry=self.registry
        )
        self.dedupe_store_errors = Counter(
            "hub_dedupe_store_errors",
            "Dedupe store calls that failed (dedupe fell back to JetStream)",
            ["operation"],
            registry=self.registry,
        )
        self.dedupe_store_available = Gauge(
            "hub_dedupe_store_available",
            "1 while the dedupe store answers, 0 while failing open",
            registry=self.registry,
        )
        self.dedupe_store_available.set(1)
        self.shadow_failures = Counter(
            "hub_shadow_verification_failures",
            "Requests a shadow-mode connector accepted although verification failed, by reason",
            ["tenant", "connector", "reason"],
            registry=self.registry,
        )
        self.connectors = Gauge("hub_connectors", "Webhook connectors loaded and enabled", registry=self.registry)
