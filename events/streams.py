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

from events.subjects import AUDIT_PREFIX, DLQ_PREFIX, EVENTS_PREFIX, INVOCATIONS_PREFIX

EVENTS_STREAM = "HUB_EVENTS"
INVOCATIONS_STREAM = "HUB_INVOCATIONS"
DLQ_STREAM = "HUB_DLQ"
AUDIT_STREAM = "HUB_AUDIT"

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The knobs an operator sets for all streams."""

    replicas: int = 1
    duplicate_window_s: float = 900.0
    events_max_age_s: float = 7 * DAY_S
    dlq_max_age_s: float = 30 * DAY_S
    audit_max_age_s: float = 90 * DAY_S
    memory_storage: bool = False


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
    """The four streams of docs/design.md §5."""

    def stream(name: str, prefix: str, max_age_s: float) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=[f"{prefix}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.MEMORY if settings.memory_storage else StorageType.FILE,
            discard=DiscardPolicy.OLD,
            num_replicas=settings.replicas,
            max_age=max_age_s,
            duplicate_window=settings.duplicate_window_s,
            allow_direct=True,
        )

    return [
        stream(EVENTS_STREAM, EVENTS_PREFIX, settings.events_max_age_s),
        stream(INVOCATIONS_STREAM, INVOCATIONS_PREFIX, settings.events_max_age_s),
        stream(DLQ_STREAM, DLQ_PREFIX, settings.dlq_max_age_s),
        stream(AUDIT_STREAM, AUDIT_PREFIX, settings.audit_max_age_s),
    ]


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
    for name in (EVENTS_STREAM, INVOCATIONS_STREAM, DLQ_STREAM, AUDIT_STREAM):
        try:
            await js.stream_info(name)
        except NotFoundError:
            missing.append(name)
    return missing


def _differs(current: StreamConfig, wanted: StreamConfig) -> bool:
    keys = ("subjects", "storage", "num_replicas", "max_age", "duplicate_window", "discard", "allow_direct")
    return any(getattr(current, key) != getattr(wanted, key) for key in keys)
