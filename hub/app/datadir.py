"""One hub per data directory: `HUB_DATA_DIR/run.lock`, held by `run` (or the `--workers` supervisor)
for the life of its process.

Two hubs on one data directory would run two nats-servers on one JetStream store (which corrupts
its stream state) and delete each other's endpoints record. The lock is an `flock`, which the kernel
drops when the process exits however it exits: a crashed hub never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class DataDirInUse(Exception):
    """Another process holds the data directory."""

    def __init__(self, data_dir: Path, holder: int | None) -> None:
        self.data_dir = data_dir
        self.holder = holder
        who = f"PID {holder}" if holder is not None else "another process"
        super().__init__(f"the data directory {data_dir} is in use by {who} (another `connector-hub run`)")


def lock_file(data_dir: Path) -> Path:
    """The lock of a data directory; it holds its holder's PID."""
    return data_dir / "run.lock"


@contextlib.contextmanager
def held(data_dir: Path) -> Iterator[None]:
    """Hold the data directory until the block ends (or the process dies), or DataDirInUse at once."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file(data_dir), os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by servers or workers
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(data_dir, _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, an unlocked one is free


def _holder(fd: int) -> int | None:
    """The PID the holder wrote (None if it has not written it yet)."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except ValueError:
        return None
