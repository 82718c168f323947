"""`connector-hub replay`, `jobs` and `dlq` against a real nats-server, as the operator; and the
progress display of `follow`."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace
from pathlib import Path

import nats
import orjson
import pytest

from events.deadletter import DeadLetter, FailureClass
from events.envelope import rfc3339
from events.streams import AUDIT_STREAM, ensure_streams
from events.subjects import dlq_subject
from hub import cli
from hub.app.embedded import RunningServer
from hub.cli.jobs import follow, progress_text
from hub.jobs.store import Job, JobStore, Progress
from hub.settings import Settings
from tests.hub.gate.harness import envelope, publish_event, stream_messages

pytestmark = pytest.mark.integration


async def seed(url: str) -> list[int]:
    """Three push events and one issue event of acme/gh; two dead letters; their sequences."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, Settings().stream_settings())
        for event_type in ("github.push", "github.push", "github.push", "github.issues"):
            await publish_event(js, envelope("acme", "gh", event_type))
        seqs = []
        for n in range(2):
            event = envelope("acme", "gh", "github.push", data={"n": n})
            letter = DeadLetter(
                f"acme:gh:{event.id}:hook", "acme", "gh", "hook", "svc", FailureClass.PERMANENT, "400", 1, None,
                rfc3339(time.time()), event.to_json(),
            )  # fmt: skip
            seqs.append((await js.publish(dlq_subject("acme", "gh", "hook"), letter.to_json())).seq)
        return seqs
    finally:
        await nc.close()


async def audit_actions(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        return [orjson.loads(m.data or b"")["action"] for m in await stream_messages(nc.jetstream(), AUDIT_STREAM)]
    finally:
        await nc.close()


def run(nats_server: RunningServer, tmp_path: Path, *argv: str) -> int:
    return cli.main([*argv, "--nats-url", nats_server.url, "--data-dir", str(tmp_path)])


def test_replay_dry_run_then_a_job_canceled_while_pending(
    nats_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(seed(nats_server.url))
    assert (
        run(nats_server, tmp_path, "replay", "--tenant", "acme", "--type", "github.push", "--to-subject", "--dry-run")
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "3 event(s) match; they would be replayed to the shadow subject (hub.replay.>)"
    ]
    assert run(nats_server, tmp_path, "replay", "--tenant", "acme", "--to-subject", "--yes", "--no-follow") == 0
    job_id = capsys.readouterr().out.splitlines()[-1].removeprefix("job ")
    assert run(nats_server, tmp_path, "jobs", "list", "--state", "pending") == 0
    assert job_id in capsys.readouterr().out
    assert run(nats_server, tmp_path, "jobs", "cancel", job_id) == 0
    assert capsys.readouterr().out.strip() == f"job {job_id}: canceled"
    assert run(nats_server, tmp_path, "jobs", "show", job_id, "--follow") == 1  # it did not succeed
    assert run(nats_server, tmp_path, "jobs", "show", "f" * 32) == 1
    assert "no job" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--since"):
        run(nats_server, tmp_path, "replay", "--since", "yesterday", "--to-subject", "--dry-run")
    assert asyncio.run(audit_actions(nats_server.url)) == ["replay_start", "job_cancel"]


def test_dlq_list_show_discard_and_redrive(
    nats_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = asyncio.run(seed(nats_server.url))
    assert run(nats_server, tmp_path, "dlq", "list", "--tenant", "acme") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in lines] == [second, first]
    assert "acme/gh/hook  permanent  400" in lines[0]
    assert run(nats_server, tmp_path, "dlq", "show", str(first)) == 0
    assert orjson.loads(capsys.readouterr().out)["seq"] == first
    assert run(nats_server, tmp_path, "dlq", "discard", str(first)) == 0
    assert capsys.readouterr().out.strip() == "discarded 1"
    assert run(nats_server, tmp_path, "dlq", "redrive", str(second)) == 0
    assert capsys.readouterr().out.startswith(f"redriven {second} as acme:gh:")
    assert run(nats_server, tmp_path, "dlq", "show", str(second)) == 1
    with pytest.raises(SystemExit, match="not both"):
        run(nats_server, tmp_path, "dlq", "redrive", str(second), "--tenant", "acme")
    assert asyncio.run(audit_actions(nats_server.url)) == ["deadletter_discard", "deadletter_redrive"]


class Screen(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


async def test_follow_redraws_one_line_on_a_terminal_and_prints_lines_otherwise(nats_server: RunningServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        store = await JobStore.open(nc.jetstream())
        job = await store.create("replay", "acme", {})
        stored = await store.get(job.id)
        assert stored is not None
        done = replace(job, state="succeeded", progress=Progress(4, 0, 4), result={"events": 4})
        await store.try_write(done, stored.revision)
        for tty in (True, False):
            screen = Screen(tty)
            assert await follow(store, job.id, screen) == 0
            bar = "[" + "#" * 30 + "] 4/4, succeeded"
            expected = f"\r{bar}\x1b[K\n" if tty else f"{bar}\n"
            assert screen.getvalue() == expected + '{"events":4}\n'
    finally:
        await nc.close()
    assert progress_text(Job("x", "replay", None, {}, progress=Progress(1, 1, 4))).startswith("[#######-----")
