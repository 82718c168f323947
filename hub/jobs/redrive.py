"""Redrive: dead letters sent again to their routes as configured now, by sequence or by filter.

One dead letter is redriven at once (hub/history/deadletters.py `redrive`); more go through this
job, which walks HUB_DLQ forward with the filter's subject, up to the stream's last sequence when
the job started (a dead letter the redrive itself produces is not taken again). Each redrive's
message id is fixed by the dead letter's sequence, so a batch sent again after a crash is dropped
by JetStream, and a dead letter already redriven (deleted) is not found again.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NATS

from events.directget import direct_get
from events.streams import DLQ_STREAM
from hub.history.deadletters import (
    DeadLetterFilter,
    DeadLetterRecord,
    get_dead_letter,
    redrive,
)
from hub.jobs.kind import JobContext, Step
from hub.jobs.store import Job, JobStore

KIND = "redrive"
MAX_SEQS = 10_000


async def start_by_filter(store: JobStore, where: DeadLetterFilter, *, created_by: str | None) -> Job:
    """A redrive job for every dead letter matching `where`."""
    return await store.create(KIND, where.tenant, {"filter": where.to_dict()}, created_by=created_by)


async def start_by_seqs(store: JobStore, tenant: str | None, seqs: list[int], *, created_by: str | None) -> Job:
    """A redrive job for these sequences (already checked to be dead letters the caller may redrive)."""
    return await store.create(KIND, tenant, {"seqs": seqs}, created_by=created_by)


class Redrive:
    """The `redrive` job kind."""

    name = KIND

    async def step(self, job: Job, context: JobContext) -> Step:
        if "seqs" in job.params:
            return await self._by_seqs(job, context)
        return await self._by_filter(job, context)

    async def _by_seqs(self, job: Job, context: JobContext) -> Step:
        seqs: list[int] = job.params["seqs"]
        index = int(job.checkpoint.get("index", 0))
        chunk = seqs[index : index + context.batch_size]
        letters = [await get_dead_letter(context.nc, seq) for seq in chunk]
        found = [letter for letter in letters if letter is not None and _owned(job, letter)]
        await _redrive_all(context, found)
        index += len(chunk)
        finished = index >= len(seqs)
        done = job.progress.done + len(found)
        failed = job.progress.failed + len(chunk) - len(found)
        return Step(
            {"index": index},
            done=len(found),
            failed=len(chunk) - len(found),
            total=len(seqs),
            finished=finished,
            result={"redriven": done, "missing": failed} if finished else None,
        )

    async def _by_filter(self, job: Job, context: JobContext) -> Step:
        where = DeadLetterFilter.parse(job.params.get("filter", {}))
        if "end" not in job.checkpoint:
            end = await _last_seq(context.nc)
            return Step({"next": 1, "end": end}, finished=end == 0)
        end, start = int(job.checkpoint["end"]), int(job.checkpoint["next"])
        messages = await direct_get(
            context.nc, DLQ_STREAM, seq=start, subject=where.subject(), batch=context.batch_size
        )
        within = [m for m in messages if m.sequence <= end]
        letters = [
            letter
            for m in within
            if (letter := DeadLetterRecord.of(m)) is not None and where.matches(letter) and _owned(job, letter)
        ]
        await _redrive_all(context, letters)
        finished = len(messages) < context.batch_size or len(within) < len(messages)
        checkpoint = {"next": within[-1].sequence + 1 if within else start, "end": end}
        result = {"redriven": job.progress.done + len(letters)} if finished else None
        return Step(checkpoint, done=len(letters), finished=finished, result=result)


def _owned(job: Job, letter: DeadLetterRecord) -> bool:
    """A tenant's job touches only that tenant's dead letters."""
    return job.tenant is None or letter.tenant == job.tenant


async def _redrive_all(context: JobContext, letters: list[DeadLetterRecord]) -> None:
    for letter in letters:
        await context.pacer.take()
        await redrive(context.nc, letter)


async def _last_seq(nc: NATS) -> int:
    state: Any = (await nc.jetstream().stream_info(DLQ_STREAM)).state
    return int(state.last_seq) if state.messages else 0
