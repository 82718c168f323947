"""Job records in the `hub-jobs` KV bucket, and the compare-and-set writes that make one runner own one.

A record holds what to do (kind, tenant, parameters), where it is (state, progress, checkpoint) and
who runs it (owner, lease). Every write of a claimed job is conditional on the revision its owner
last wrote or read (`update(key, value, last=revision)`): a runner whose lease expired and whose job
another runner took over learns it at its next write (`LostJob`) and stops, so two runners never
both advance one job. A cancel request is written the same way, and the owner's next write keeps it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from events.envelope import rfc3339
from hub.control.buckets import JOBS_BUCKET, current_entries, kv_bucket

State = Literal["pending", "running", "succeeded", "failed", "canceled"]
STATES: tuple[State, ...] = ("pending", "running", "succeeded", "failed", "canceled")
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
_JOB_ID = re.compile(r"[0-9a-f]{32}")


def is_job_id(text: str) -> bool:
    """Whether a path segment can be a job id (else it is answered as an unknown job)."""
    return _JOB_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Progress:
    """Items done and failed so far, of `total` (None until the job has counted them)."""

    done: int = 0
    failed: int = 0
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One job record."""

    id: str
    kind: str
    tenant: str | None
    params: dict[str, Any]
    state: State = "pending"
    progress: Progress = field(default_factory=Progress)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    owner: str | None = None
    lease_until: float = 0.0
    cancel_requested: bool = False
    created_by: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def claimable(self, now: float) -> bool:
        """Pending, or running with a lease that expired (its runner died)."""
        return self.state == "pending" or (self.state == "running" and self.lease_until < now)

    def _record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "tenant": self.tenant,
            "params": self.params,
            "state": self.state,
            "progress": {"done": self.progress.done, "failed": self.progress.failed, "total": self.progress.total},
            "checkpoint": self.checkpoint,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "owner": self.owner,
            "leaseUntil": self.lease_until,
            "cancelRequested": self.cancel_requested,
            "createdBy": self.created_by,
            "result": self.result,
            "error": self.error,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self._record())

    @classmethod
    def from_json(cls, data: bytes) -> Job:
        r = orjson.loads(data)
        p = r.get("progress") or {}
        return cls(
            id=r["id"],
            kind=r["kind"],
            tenant=r.get("tenant"),
            params=r.get("params") or {},
            state=r["state"],
            progress=Progress(p.get("done", 0), p.get("failed", 0), p.get("total")),
            checkpoint=r.get("checkpoint") or {},
            created_at=r.get("createdAt") or 0.0,
            started_at=r.get("startedAt"),
            finished_at=r.get("finishedAt"),
            owner=r.get("owner"),
            lease_until=r.get("leaseUntil") or 0.0,
            cancel_requested=bool(r.get("cancelRequested")),
            created_by=r.get("createdBy"),
            result=r.get("result"),
            error=r.get("error"),
        )

    def public(self) -> dict[str, Any]:
        """The record as the API and the CLI show it (times in RFC 3339, no lease internals)."""
        record = self._record()
        del record["leaseUntil"]
        started, finished = self.started_at, self.finished_at
        return record | {
            "createdAt": rfc3339(self.created_at),
            "startedAt": rfc3339(started) if started else None,
            "finishedAt": rfc3339(finished) if finished else None,
        }


class LostJob(Exception):
    """Another runner owns the job now (this one's lease expired), or it ended meanwhile."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A job with the KV revision it was read at."""

    job: Job
    revision: int


class JobStore:
    """The jobs bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, *, replicas: int = 1) -> JobStore:
        """The store, its bucket created when missing."""
        return cls(await kv_bucket(js, JOBS_BUCKET, replicas=replicas))

    async def create(
        self, kind: str, tenant: str | None, params: dict[str, Any], *, created_by: str | None = None
    ) -> Job:
        """A new pending job."""
        job = Job(id=uuid.uuid4().hex, kind=kind, tenant=tenant, params=params, created_by=created_by)
        await self._kv.create(job.id, job.to_json())
        return job

    async def get(self, job_id: str) -> Stored | None:
        """The job, or None."""
        if not is_job_id(job_id):
            return None
        try:
            entry = await self._kv.get(job_id)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return Stored(Job.from_json(entry.value), entry.revision)

    async def all(self) -> list[Stored]:
        """Every job, newest first."""
        stored = [
            Stored(Job.from_json(e.value), e.revision)
            for e in await current_entries(self._kv)
            if e.value is not None and e.revision is not None
        ]
        return sorted(stored, key=lambda s: s.job.created_at, reverse=True)

    async def try_write(self, job: Job, revision: int) -> int | None:
        """Write if the record is still at `revision`: the new revision, or None when it changed."""
        try:
            return await self._kv.update(job.id, job.to_json(), last=revision)
        except KeyWrongLastSequenceError:
            return None

    async def request_cancel(self, job_id: str) -> Job | None:
        """Ask the job to stop: a pending one is canceled at once, a running one by its runner between
        batches; a finished one is left as it is. None when there is no such job."""
        while True:
            stored = await self.get(job_id)
            if stored is None:
                return None
            job = stored.job
            if job.finished:
                return job
            if job.state == "pending":
                changed = replace(job, state="canceled", cancel_requested=True, finished_at=time.time())
            else:
                changed = replace(job, cancel_requested=True)
            if await self.try_write(changed, stored.revision) is not None:
                return changed


class OpenedJobStore:
    """The jobs store of a long-lived server context, opened at its first use and kept: opening asks
    nats-server for the bucket's info, a round trip every request would otherwise pay."""

    def __init__(self) -> None:
        self._store: JobStore | None = None
        self._lock = asyncio.Lock()

    async def get(self, js: JetStreamContext, *, replicas: int = 1) -> JobStore:
        """The store (the bucket created when missing, at the first call only)."""
        if self._store is None:
            async with self._lock:
                if self._store is None:
                    self._store = await JobStore.open(js, replicas=replicas)
        return self._store


class Claim:
    """A job this runner claimed: its writes keep the lease and fail with LostJob once it is lost."""

    def __init__(self, store: JobStore, stored: Stored, owner: str, lease_s: float) -> None:
        self._store = store
        self.job = stored.job
        self._revision = stored.revision
        self._owner = owner
        self._lease_s = lease_s
        self._lock = asyncio.Lock()

    async def write(self, change: Callable[[Job], Job], *, lease_s: float | None = None) -> Job:
        """Apply `change` to the record and renew the lease (for `lease_s`, default the runner's; 0 lets
        another runner take the job at once); on a conflict, re-read and apply it again unless another
        runner took the job over or it ended."""
        lease_s = self._lease_s if lease_s is None else lease_s
        async with self._lock:
            job, revision = self.job, self._revision
            while True:
                changed = replace(change(job), lease_until=time.time() + lease_s if lease_s else 0.0)
                written = await self._store.try_write(changed, revision)
                if written is not None:
                    self.job, self._revision = changed, written
                    return changed
                current = await self._store.get(job.id)
                if current is None or current.job.owner != self._owner or current.job.finished:
                    raise LostJob(job.id)
                job, revision = current.job, current.revision

    async def renew(self) -> Job:
        """Only the lease; the record comes back as stored (with a cancel request written meanwhile)."""
        return await self.write(lambda job: job)


async def claim(store: JobStore, stored: Stored, owner: str, lease_s: float) -> Claim | None:
    """Take a claimable job (compare-and-set on its revision); None when another runner was faster."""
    now = time.time()
    if not stored.job.claimable(now):
        return None
    job = replace(
        stored.job,
        state="running",
        owner=owner,
        lease_until=now + lease_s,
        started_at=stored.job.started_at or now,
    )
    revision = await store.try_write(job, stored.revision)
    if revision is None:
        return None
    return Claim(store, Stored(job, revision), owner, lease_s)
