"""`connector-hub jobs list|show|cancel`: replay and redrive jobs, acted on directly on the bus as the
operator; `follow` shows a job's progress until it ends (also used by `replay` and `dlq redrive`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from nats.aio.client import Client as NATS

from hub.app.config import master_key
from hub.cli.client import connect
from hub.cli.command import Command, Invocation
from hub.control.plane import Actor, ControlPlane
from hub.jobs.store import STATES, Job, JobStore
from hub.settings import Settings

FOLLOW_POLL_S = 0.5
LINE_EVERY_S = 5.0
"""Without a terminal, a progress line at most this often (and at every change of state)."""
BAR_WIDTH = 30


@dataclass(frozen=True, slots=True)
class Bus:
    """A CLI verb's view of the running hub: its NATS, its control plane (for audit) and its jobs."""

    nc: NATS
    plane: ControlPlane
    jobs: JobStore
    actor: Actor

    async def audit(self, tenant: str | None, action: str, target: str, outcome: str, **detail: Any) -> None:
        """Record one operator action."""
        await self.plane.audit.record_by(self.actor, tenant, action, target, outcome, detail)


@asynccontextmanager
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    """The running hub's bus, as the operator."""
    nc = await connect(settings, "connector-hub-cli")
    try:
        js = nc.jetstream()
        plane = await ControlPlane.open(js, master_key(settings), replicas=settings.stream_replicas)
        yield Bus(nc, plane, await JobStore.open(js, replicas=settings.stream_replicas), Actor.cli())
    finally:
        await nc.close()


def on_bus(settings: Settings, command: Callable[[Bus], Awaitable[int]]) -> int:
    """Run one command against the bus; its exit status."""

    async def main() -> int:
        async with bus(settings) as connected:
            return await command(connected)

    return asyncio.run(main())


def progress_text(job: Job) -> str:
    """`[#####-----] 50/100, 1 failed, running`."""
    done, total = job.progress.done, job.progress.total
    failed = f", {job.progress.failed} failed" if job.progress.failed else ""
    if total:
        filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
        return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {done}/{total}{failed}, {job.state}"
    return f"{done} done{failed}, {job.state}"


async def follow(jobs: JobStore, job_id: str, out: TextIO = sys.stdout) -> int:
    """Show the job's progress until it ends (`\\r`-updated on a terminal, periodic lines otherwise);
    0 when it succeeded, 1 otherwise."""
    tty = out.isatty()
    last_line, last_state, printed_at = "", "", 0.0
    while True:
        stored = await jobs.get(job_id)
        if stored is None:
            print(f"\nconnector-hub: job {job_id} is gone", file=sys.stderr)
            return 1
        job = stored.job
        line = progress_text(job)
        if job.state == "pending":
            line += " (waiting for a hub with the admin role)"
        now = time.monotonic()
        if tty and line != last_line:
            out.write(f"\r{line}\x1b[K")
            out.flush()
        elif not tty and line != last_line and (job.state != last_state or now - printed_at >= LINE_EVERY_S):
            out.write(line + "\n")
            out.flush()
            printed_at = now
        last_line, last_state = line, job.state
        if job.finished:
            if tty:
                out.write("\n")
            if job.error:
                print(f"connector-hub: job {job.id} failed: {job.error}", file=sys.stderr)
            if job.result:
                out.write(orjson.dumps(job.result).decode() + "\n")
            out.flush()
            return 0 if job.state == "succeeded" else 1
        await asyncio.sleep(FOLLOW_POLL_S)


async def list_jobs(connected: Bus, args: argparse.Namespace) -> int:
    jobs = [
        s.job
        for s in await connected.jobs.all()
        if (args.state is None or s.job.state == args.state)
        and (args.kind is None or s.job.kind == args.kind)
        and (args.tenant is None or s.job.tenant == args.tenant)
    ]
    if args.json:
        print(orjson.dumps([job.public() for job in jobs], option=orjson.OPT_INDENT_2).decode())
        return 0
    for job in jobs:
        print(f"{job.id}  {job.kind:<8} {job.tenant or '(all)':<16} {progress_text(job)}")
    if not jobs:
        print("no jobs", file=sys.stderr)
    return 0


async def show_job(connected: Bus, args: argparse.Namespace) -> int:
    stored = await connected.jobs.get(args.job)
    if stored is None:
        print(f"connector-hub: no job {args.job}", file=sys.stderr)
        return 1
    if args.follow:
        return await follow(connected.jobs, args.job)
    print(orjson.dumps(stored.job.public(), option=orjson.OPT_INDENT_2).decode())
    return 0


async def cancel_job(connected: Bus, args: argparse.Namespace) -> int:
    job = await connected.jobs.request_cancel(args.job)
    if job is None:
        print(f"connector-hub: no job {args.job}", file=sys.stderr)
        return 1
    await connected.audit(job.tenant, "job_cancel", f"job/{job.id}", "requested", kind=job.kind)
    print(f"job {job.id}: {job.state}{' (cancel requested)' if not job.finished else ''}")
    return 0


def bus_command(command: Callable[[Bus, argparse.Namespace], Awaitable[int]]) -> Callable[[Invocation], int]:
    """A verb's handler that runs `command` on the bus with the verb's arguments."""
    return lambda run: on_bus(run.settings, lambda connected: command(connected, run.args))


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=STATES, help="only jobs in this state")
    parser.add_argument("--kind", help="only jobs of this kind (replay, redrive)")
    parser.add_argument("--tenant", help="only this tenant's jobs")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB", help="the id `jobs list` shows")
    parser.add_argument("--follow", action="store_true", help="show its progress until it ends")


COMMANDS = (
    Command(("jobs", "list"), "replay and redrive jobs, newest first", bus_command(list_jobs), _list_arguments),
    Command(
        ("jobs", "show"), "one job (with --follow: its progress until it ends)", bus_command(show_job), _show_arguments
    ),
    Command(
        ("jobs", "cancel"),
        "stop a job between batches",
        bus_command(cancel_job),
        lambda parser: parser.add_argument("job", metavar="JOB", help="the id `jobs list` shows"),
    ),
)
