"""The hub's JetStream streams, created or updated idempotently at start-up.

The duplicate window of HUB_EVENTS is the last line of exactly-once: a crash between PubAck and
the dedupe store's `done` mark, or a Valkey outage, is absorbed by JetStream's `Nats-Msg-Id`
de-duplication. It must therefore outlast the dedupe claim TTL and twice the replay window
(`check_duplicate_window`).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from events.subjects import (
    AUDIT_PREFIX,
    DLQ_PREFIX,
    EVENTS_PREFIX,
    INVOCATIONS_PREFIX,
    JOURNEY_PREFIX,
    REJECTED_PREFIX,
    REPLAY_PREFIX,
)

EVENTS_STREAM = "HUB_EVENTS"
INVOCATIONS_STREAM = "HUB_INVOCATIONS"
DLQ_STREAM = "HUB_DLQ"
AUDIT_STREAM = "HUB_AUDIT"
JOURNEYS_STREAM = "HUB_JOURNEYS"
REJECTED_STREAM = "HUB_REJECTED"
REPLAY_STREAM = "HUB_REPLAY"
STREAMS = (
    EVENTS_STREAM,
    INVOCATIONS_STREAM,
    DLQ_STREAM,
    AUDIT_STREAM,
    JOURNEYS_STREAM,
    REJECTED_STREAM,
    REPLAY_STREAM,
)
PREFIXES = {
    EVENTS_STREAM: EVENTS_PREFIX,
    INVOCATIONS_STREAM: INVOCATIONS_PREFIX,
    DLQ_STREAM: DLQ_PREFIX,
    AUDIT_STREAM: AUDIT_PREFIX,
    JOURNEYS_STREAM: JOURNEY_PREFIX,
    REJECTED_STREAM: REJECTED_PREFIX,
    REPLAY_STREAM: REPLAY_PREFIX,
}

DAY_S = 86_400.0
REJECTED_RECORD_MAX_BYTES = 96 * 1024
"""The largest rejected-request record (headers and the body preview, capped before it is published)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a stream keeps messages and how many bytes at most (0: no byte cap, age only)."""

    max_age_s: float
    max_bytes: int = 0


DEFAULT_RETENTION = {
    EVENTS_STREAM: Retention(7 * DAY_S),
    INVOCATIONS_STREAM: Retention(7 * DAY_S),
    DLQ_STREAM: Retention(30 * DAY_S),
    AUDIT_STREAM: Retention(90 * DAY_S),
    JOURNEYS_STREAM: Retention(7 * DAY_S),
    REJECTED_STREAM: Retention(3 * DAY_S),
    REPLAY_STREAM: Retention(1 * DAY_S),
}


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The knobs an operator sets for the streams."""

    replicas: int = 1
    duplicate_window_s: float = 900.0
    retention: tuple[tuple[str, Retention], ...] = tuple(DEFAULT_RETENTION.items())
    """Per stream name; a stream not named keeps its default."""
    rejected_per_connector: int = 100
    """How many rejected requests HUB_REJECTED keeps per connector (the oldest go first)."""
    memory_storage: bool = False

    def retention_of(self, stream: str) -> Retention:
        """The retention of one stream."""
        return dict(self.retention).get(stream, DEFAULT_RETENTION[stream])


class DuplicateWindowError(ValueError):
    """The JetStream duplicate window is too short for the guarantees that rest on it."""


def check_duplicate_window(duplicate_window_s: float, claim_ttl_s: float, replay_window_s: float) -> None:
    """Refuse a configuration where a retried delivery could outlive JetStream's dedupe memory."""
    needed = max(claim_ttl_s, 2 * replay_window_s)
    if duplicate_window_s <= needed:
        raise DuplicateWindowError(
            f"the JetStream duplicate window ({duplicate_window_s:.0f}s) must exceed the dedupe "
            f"claim TTL ({claim_ttl_s:.0f}s) and twice the replay window ({replay_window_s:.0f}s)"
        )


def stream_configs(settings: StreamSettings) -> list[StreamConfig]:
    """The streams of docs/design.md §5, each with its retention (age and bytes)."""

    def stream(name: str) -> StreamConfig:
        retention = settings.retention_of(name)
        duplicate_window_s = settings.duplicate_window_s
        if retention.max_age_s and duplicate_window_s > retention.max_age_s:
            duplicate_window_s = retention.max_age_s  # JetStream refuses a window longer than the age
        config = StreamConfig(
            name=name,
            subjects=[f"{PREFIXES[name]}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.MEMORY if settings.memory_storage else StorageType.FILE,
            discard=DiscardPolicy.OLD,
            num_replicas=settings.replicas,
            max_age=retention.max_age_s,
            max_bytes=retention.max_bytes or -1,
            duplicate_window=duplicate_window_s,
            allow_direct=True,
        )
        if name == REJECTED_STREAM:
            config.max_msgs_per_subject = settings.rejected_per_connector
            config.max_msg_size = REJECTED_RECORD_MAX_BYTES
        return config

    return [stream(name) for name in STREAMS]


async def ensure_streams(js: JetStreamContext, settings: StreamSettings) -> list[str]:
    """Create missing streams and update changed ones; returns what changed (`created X`, `updated X`)."""
    changes: list[str] = []
    for config in stream_configs(settings):
        assert config.name is not None
        try:
            current = (await js.stream_info(config.name)).config
        except NotFoundError:
            await js.add_stream(config)
            changes.append(f"created {config.name}")
            continue
        if _differs(current, config):
            await js.update_stream(config)
            changes.append(f"updated {config.name}")
    return changes


async def missing_streams(js: JetStreamContext) -> list[str]:
    """The names of the hub's streams that do not exist (for /readyz)."""
    missing = []
    for name in STREAMS:
        try:
            await js.stream_info(name)
        except NotFoundError:
            missing.append(name)
    return missing


def _differs(current: StreamConfig, wanted: StreamConfig) -> bool:
    keys = (
        "subjects",
        "storage",
        "num_replicas",
        "max_age",
        "max_bytes",
        "max_msgs_per_subject",
        "max_msg_size",
        "duplicate_window",
        "discard",
        "allow_direct",
    )
    return any(getattr(current, key) != getattr(wanted, key) for key in keys)
