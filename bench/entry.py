"""What every benchmark that starts servers does around its measurement.

- SIGTERM cleans up like Ctrl-C: it raises KeyboardInterrupt, so the `with` blocks that stop the
  servers by PID run. Closing an event loop resets the handler, so `run_loop` sets it again.
- The servers live in a temp dir, removed at the end unless --keep.
- An interrupt exits 130 and a failure 1, each with one line; a result is reported, then written as
  JSON when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from hub.app.embedded import RunningServer, start_nats, start_valkey

R = TypeVar("R")


def interrupt(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler: raise as Ctrl-C does."""
    raise KeyboardInterrupt


def run_loop(run: Callable[[Coroutine[Any, Any, R]], R], coro: Coroutine[Any, Any, R]) -> R:
    """`run(coro)` (asyncio.run or uvloop.run), then SIGTERM interrupts again."""
    try:
        return run(coro)
    finally:
        signal.signal(signal.SIGTERM, interrupt)


def bench_workdir(cleanup: contextlib.ExitStack, prefix: str, keep: bool) -> Path:
    """A new temp dir, removed when `cleanup` closes unless `keep` (then its path is printed)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    if keep:
        print(f"# data and logs in {workdir}")
    else:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
    return workdir


@dataclass(frozen=True)
class Servers:
    """A benchmark's temp dir and the nats-server and valkey-server started in it."""

    workdir: Path
    nats: RunningServer
    valkey: RunningServer


def start_servers(cleanup: contextlib.ExitStack, prefix: str, keep: bool) -> Servers:
    """nats-server (JetStream, fsync on every write, as the hub's embedded default) and valkey-server
    in a new temp dir, each stopped by its PID when `cleanup` closes."""
    workdir = bench_workdir(cleanup, prefix, keep)
    nats_server = start_nats(workdir / "servers", sync_interval="always")
    cleanup.callback(nats_server.stop)
    valkey_server = start_valkey(workdir / "servers")
    cleanup.callback(valkey_server.stop)
    return Servers(workdir, nats_server, valkey_server)


def run_bench(
    measure: Callable[[], R],
    report: Callable[[R], dict[str, Any]],
    json_path: Path | None,
    *,
    errors: tuple[type[Exception], ...] = (RuntimeError,),
    to_json: Callable[[dict[str, Any]], str] = lambda figures: json.dumps(figures, indent=2),
) -> int:
    """Measure with SIGTERM as Ctrl-C, report, write the JSON; the process's exit code."""
    signal.signal(signal.SIGTERM, interrupt)
    try:
        results = measure()
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    except errors as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    figures = report(results)
    if json_path:
        json_path.write_text(to_json(figures) + "\n")
    return 0
