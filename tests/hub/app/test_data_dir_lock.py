"""One hub per data directory: a second `connector-hub run` on a data dir in use refuses before it
starts anything; a SIGKILLed hub leaves nothing that blocks the next one.

The hubs start their own embedded nats-server and valkey-server, so the test also shows that the
refusal comes before those start. Every process is stopped by its PID, also when the test fails.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
START_TIMEOUT_S = 60.0
REFUSAL_TIMEOUT_S = 10.0


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll a condition with a deadline."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pid_gone(pid: int) -> bool:
    """The PID does not exist, or is a zombie."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def record(data_dir: Path) -> dict[str, Any] | None:
    """The endpoints record, or None while there is none."""
    try:
        found: dict[str, Any] = orjson.loads((data_dir / "endpoints.json").read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return found


def healthy(http_url: str) -> bool:
    """Whether the hub at this ingress URL answers /healthz with 200."""
    url = urllib.parse.urlsplit(http_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    finally:
        connection.close()


class Hubs:
    """`connector-hub run` processes with embedded servers on free ports, each logging to its own files."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []
        self.servers: set[int] = set()

    def spawn(self, data_dir: Path) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= {
            "HUB_DATA_DIR": str(data_dir),
            "HUB_HTTP_PORT": "0",
            "HUB_ADMIN_PORT": "0",
            "HUB_MASTER_KEY": MASTER_KEY,
            "HUB_LOG_FORMAT": "json",
        }
        index = len(self.started)
        with self.stdout(index).open("wb") as out, self.stderr(index).open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "hub", "run"], env=env, cwd=ROOT, stdout=out, stderr=err)
        self.started.append(proc)
        return proc

    def stdout(self, index: int) -> Path:
        return self.logs / f"hub-{index}.out"

    def stderr(self, index: int) -> Path:
        return self.logs / f"hub-{index}.err"

    def listening(self, data_dir: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        """The hub's endpoints record, once it has written it."""
        index = self.started.index(proc)

        def recorded() -> bool:
            assert proc.poll() is None, self.stderr(index).read_text()[-3000:]
            found = record(data_dir)
            return found is not None and found["pid"] == proc.pid

        wait_until(recorded, START_TIMEOUT_S, f"hub {proc.pid} to listen")
        found = record(data_dir)
        assert found is not None
        self.servers.update(found["embedded_pids"].values())
        return found

    def stop(self) -> None:
        """Each hub by its PID (SIGKILL if SIGTERM does not stop it), then any embedded server left."""
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for pid in self.servers:  # they die with their hub; any left is ours, stopped by its PID
            with contextlib.suppress(ProcessLookupError):
                if not pid_gone(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[Hubs]:
    started = Hubs(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def test_a_second_hub_on_a_data_dir_in_use_refuses_and_the_next_starts_after_a_crash(
    hubs: Hubs, tmp_path: Path
) -> None:
    data_dir = (tmp_path / "data").resolve()
    first = hubs.spawn(data_dir)
    first_record = hubs.listening(data_dir, first)
    endpoints, nats_conf = (data_dir / "endpoints.json").read_bytes(), (data_dir / "nats" / "nats.conf").read_bytes()
    valkey_log = (data_dir / "valkey" / "valkey.log").read_text()

    second = hubs.spawn(data_dir)
    assert second.wait(timeout=REFUSAL_TIMEOUT_S) == 2, hubs.stderr(1).read_text()
    lines = hubs.stderr(1).read_text().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"PID {first.pid}" in lines[0], lines[0]
    assert str(data_dir) in lines[0], lines[0]
    assert (data_dir / "nats" / "nats.conf").read_bytes() == nats_conf  # an embedded nats-server rewrites it
    ready = "Ready to accept connections"  # a valkey-server appends it to its log once it serves
    assert (data_dir / "valkey" / "valkey.log").read_text().count(ready) == valkey_log.count(ready) == 1
    assert (data_dir / "endpoints.json").read_bytes() == endpoints
    assert first.poll() is None
    assert healthy(first_record["http_url"])

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    embedded = list(first_record["embedded_pids"].values())
    wait_until(lambda: all(pid_gone(pid) for pid in embedded), 15, "the first hub's embedded servers to exit")
    third = hubs.spawn(data_dir)
    third_record = hubs.listening(data_dir, third)
    assert healthy(third_record["http_url"])
    assert (data_dir / "run.lock").read_text().strip() == str(third.pid)
