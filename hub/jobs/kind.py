"""What a kind of job is: one step at a time, each a bounded batch from the job's checkpoint.

The runner (hub/jobs/runner.py) calls `step` until it says the job is finished, and writes the
returned checkpoint and progress after each step, so a runner taking over after a crash resumes
after the last batch written. Whatever a step sends carries message ids derived from the job and
the item, so a batch sent again after a crash is dropped by JetStream's duplicate window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from hub.control.plane import ControlPlane
from hub.gate.catalog import GateCatalog
from hub.jobs.pacing import TokenBucket
from hub.jobs.store import Job
from hub.runtime.live import Live
from hub.settings import Settings

BATCH_SIZE = 1024
"""Items per step at most."""


@dataclass(frozen=True, slots=True)
class JobServices:
    """The hub's parts a kind that acts through the control plane and the ingest path needs (the retry
    of kept requests): None in a runner that has no master key or Valkey to offer."""

    plane: ControlPlane
    redis: Redis
    settings: Settings


@dataclass(frozen=True, slots=True)
class JobContext:
    """What steps share in one runner."""

    nc: NATS
    catalog: Live[GateCatalog]
    """The gate's catalog (the live one in a hub process, the deployed one in the CLI)."""
    pacer: TokenBucket
    batch_size: int = BATCH_SIZE
    publish_timeout_s: float = 5.0
    services: JobServices | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did: the checkpoint after it, items done and failed in it, the total once known."""

    checkpoint: dict[str, Any]
    done: int = 0
    failed: int = 0
    total: int | None = None
    finished: bool = False
    result: dict[str, Any] | None = None


class JobKind(Protocol):
    """One kind of job."""

    name: str

    async def step(self, job: Job, context: JobContext) -> Step:
        """Process the next bounded batch after `job.checkpoint`."""
        ...
