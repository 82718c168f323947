"""Replay: stored events sent again, through the gate or to the shadow subject.

- `gate`: each event is decided with the CURRENT catalog and policy by the policy consumer's own code
  (`PolicyConsumer.route_event`), and its invocations are published with ids that mark the replay,
  `<event msg id>:<route>:replay-<job id>`: neither JetStream nor a target deduping on
  `Idempotency-Key` takes them for the originals, and a batch sent again after a crash is dropped.
- `subject`: the envelope as stored goes to `hub.replay.<tenant>.<connector>.<type>` (HUB_REPLAY)
  with `Nats-Msg-Id` `<event msg id>:replay-<job id>`.

A dry run sends nothing: how many events match and, for `gate`, what the policy would decide per
route (counts by route, effect and rule).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry

from events import journey
from events.directget import Stored
from events.journey import JourneyWriter
from events.streams import EVENTS_STREAM
from events.subjects import replay_subject
from hub.gate.catalog import GateCatalog
from hub.gate.metrics import GateMetrics
from hub.gate.policy_consumer import MSG_ID, EventRef, PolicyConsumer, event_decisions
from hub.jobs.kind import JobContext, Step
from hub.jobs.selection import Selection, SelectionError, count, matching, read_batch
from hub.jobs.store import Job, JobStore

KIND = "replay"
Mode = Literal["gate", "subject"]
MODES: tuple[Mode, ...] = ("gate", "subject")


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What to replay and how."""

    selection: Selection
    mode: Mode

    @classmethod
    def parse(cls, body: Any) -> ReplayRequest:
        """From `{"selection": {...}, "mode": "gate"|"subject"}`; SelectionError naming the field."""
        if not isinstance(body, dict):
            raise SelectionError("(body)", "the body is a JSON object")
        selection = body.get("selection", {})
        if not isinstance(selection, dict):
            raise SelectionError("selection", "selection is a JSON object")
        mode = body.get("mode", "gate")
        if mode not in MODES:
            raise SelectionError("mode", "mode is gate or subject")
        return cls(Selection.parse(selection), mode)

    def params(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "mode": self.mode}


async def last_seq(nc: NATS) -> int:
    """HUB_EVENTS' last sequence: a replay takes nothing stored after it started."""
    return int((await nc.jetstream().stream_info(EVENTS_STREAM)).state.last_seq)


async def dry_run(nc: NATS, catalog: GateCatalog, request: ReplayRequest) -> dict[str, Any]:
    """The matching events and, for `gate`, the policy's decisions per route, effect and rule."""
    events = 0
    decisions: Counter[tuple[str, str, str]] = Counter()
    unrouted = 0
    async for event in matching(nc, request.selection, await last_seq(nc)):
        events += 1
        if request.mode != "gate":
            continue
        ref = EventRef.from_message(event.headers)
        routed = event_decisions(catalog, ref, event.data) if ref is not None else None
        if not routed:
            unrouted += 1
            continue
        for route, decision in routed:
            decisions[(route.name, decision.effect, decision.rule)] += 1
    summary: dict[str, Any] = {"events": events, "mode": request.mode}
    if request.mode == "gate":
        summary["decisions"] = [
            {"route": route, "effect": effect, "rule": rule, "count": count}
            for (route, effect, rule), count in sorted(decisions.items())
        ]
        summary["unrouted"] = unrouted
    return summary


async def start(store: JobStore, request: ReplayRequest, *, created_by: str | None) -> Job:
    """The replay as a pending job (a runner of the hub picks it up)."""
    return await store.create(KIND, request.selection.tenant, request.params(), created_by=created_by)


def replay_suffix(job_id: str) -> str:
    """What marks a replay's message ids."""
    return f":replay-{job_id}"


class Replay:
    """The `replay` job kind."""

    name = KIND

    async def step(self, job: Job, context: JobContext) -> Step:
        request = ReplayRequest.parse(job.params)
        if "end" not in job.checkpoint:  # the first step: fix the end and count
            end = await last_seq(context.nc)
            total = await count(context.nc, request.selection, end)
            empty = {"mode": request.mode, "events": 0} if total == 0 else None
            return Step({"next": None, "end": end, "invocations": 0}, total=total, finished=total == 0, result=empty)
        checkpoint = dict(job.checkpoint)
        batch = await read_batch(
            context.nc, request.selection, checkpoint["next"], checkpoint["end"], context.batch_size
        )
        consumer = PolicyConsumer(
            context.catalog, context.nc.jetstream(), _REPLAY_METRICS, publish_timeout_s=context.publish_timeout_s
        )
        sends = []
        for event in batch.events:
            await context.pacer.take()
            sends.append(asyncio.ensure_future(self._send(job.id, request.mode, event, context, consumer)))
        invocations = sum(await asyncio.gather(*sends))
        checkpoint["next"] = batch.next_seq
        checkpoint["invocations"] = int(checkpoint.get("invocations", 0)) + invocations
        finished = batch.next_seq is None
        result: dict[str, Any] | None = None
        replayed: int | None = None
        if finished:
            replayed = job.progress.done + len(batch.events)  # the exact total, whatever was stored since the count
            result = {"mode": request.mode, "events": replayed}
            if request.mode == "gate":
                result["invocations"] = checkpoint["invocations"]
        return Step(checkpoint, done=len(batch.events), total=replayed, finished=finished, result=result)

    async def _send(self, job_id: str, mode: Mode, event: Stored, context: JobContext, consumer: PolicyConsumer) -> int:
        """Send one event, noting it in the event's journey; how many invocations it made."""
        ref = EventRef.from_message(event.headers)
        if ref is None:
            return 0
        invocations = 0
        if mode == "gate":
            routed = await consumer.route_event(
                event.headers, event.data, sequence=event.sequence, id_suffix=replay_suffix(job_id)
            )
            invocations = sum(1 for _, decision in routed.decisions if decision.allowed) if routed else 0
        else:
            headers = {k: v for k, v in event.headers.items() if k != MSG_ID}
            headers[MSG_ID] = ref.msg_id + replay_suffix(job_id)
            subject = replay_subject(ref.tenant, ref.connector, ref.event_type)
            await context.nc.jetstream().publish(
                subject, event.data, timeout=context.publish_timeout_s, headers=headers
            )
        record = journey.replayed(ref.event_id, job_id, mode, invocations)
        await JourneyWriter(context.nc).write(ref.tenant, ref.connector, record, ref.msg_id + replay_suffix(job_id))
        return invocations


_REPLAY_METRICS = GateMetrics(CollectorRegistry())
"""Replays decide as the gate does, but are not counted as its live traffic."""
