"""`connector-hub run --workers N`: a supervisor and N worker processes sharing the ingress port.

Each test starts a real supervisor (`python -m hub run --workers 2`) against the real nats-server
and valkey-server of the fixtures (one test lets it start its own embedded servers), on free
loopback ports. Which worker served a request is read from the kernel: the worker whose open file
descriptors hold the server side of that TCP connection (/proc/net/tcp and /proc/<pid>/fd).
Every process is stopped by its PID at teardown, also when the test failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson
import pytest
from nats.js.api import RawStreamMsg
from redis.asyncio import Redis

from events.streams import EVENTS_STREAM
from hub.app.embedded import RunningServer
from hub.app.workers import RESTART_DELAY_MAX_S, RESTART_DELAY_S, restart_delay, worker_argv
from hub.ingest.dedupe import DONE, dedupe_key
from tests.conftest import wait_for
from tests.hub.ingress.signing import GITHUB, TENANT, Delivery, SecretSpec, new_secret, specs_yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
WORKERS = 2
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 100
"""Fresh connections a test opens at most to reach every worker (the kernel picks one per connection)."""
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
SECRET = SecretSpec("k1", "WORKERS_GH_SECRET", new_secret("github"))
HOOK = f"/hooks/{TENANT}/{GITHUB.connector}"


# --- processes -----------------------------------------------------------------------------------


def pid_gone(pid: int) -> bool:
    """The PID does not exist, or is a zombie (dead, waiting for its reaper)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


def parent_of(pid: int) -> int:
    """The parent PID, from /proc/<pid>/stat (the fields after the parenthesised command)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def cmdline_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


def processes_using(data_dir: Path) -> set[int]:
    """Live PIDs that name `data_dir` in their command line (nats-server) or work in it (valkey-server)."""
    root = str(data_dir.resolve())
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            uses = root.encode() in (entry / "cmdline").read_bytes() or os.readlink(entry / "cwd").startswith(root)
            if uses and not pid_gone(int(entry.name)):
                found.add(int(entry.name))
    return found


@dataclass
class Supervised:
    """A `connector-hub run --workers N` subprocess, its data dir and its log."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    seen: set[int] = field(default_factory=set)
    """Every worker and embedded server PID it reported: teardown stops those still running."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def record(self) -> dict[str, Any] | None:
        """The endpoints record, or None while there is none."""
        try:
            record: dict[str, Any] = orjson.loads((self.data_dir / "endpoints.json").read_bytes())
        except FileNotFoundError:
            return None
        self.seen.update(record["worker_pids"], record["embedded_pids"].values())
        return record

    def worker_pids(self) -> list[int]:
        record = self.record()
        return list(record["worker_pids"]) if record else []

    def http_url(self) -> str:
        record = self.record()
        assert record is not None
        return str(record["http_url"])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(orjson.loads(line))
        return [r for r in records if isinstance(r, dict)]

    def alive(self) -> None:
        """Fail with the log if the supervisor has exited."""
        if self.proc.poll() is not None:
            pytest.fail(f"the supervisor exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM the supervisor by its PID (SIGKILL after STOP_TIMEOUT_S), then any PID it left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(not pid_gone(pid) for pid in self.seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.seen:
            if not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


def hub_env(data_dir: Path, specs: Path, urls: tuple[str, str] | None) -> dict[str, str]:
    """The supervisor's environment: no HUB_* leaks in, free ports, JSON logs, the connector's secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_DATA_DIR": str(data_dir),
        "HUB_CONNECTORS": str(specs),
        "HUB_HTTP_PORT": "0",
        "HUB_ADMIN_PORT": "0",
        "HUB_LOG_FORMAT": "json",
        "HUB_MASTER_KEY": MASTER_KEY,
        SECRET.env: SECRET.value,
    }
    if urls is not None:
        env |= {"HUB_NATS_URL": urls[0], "HUB_REDIS_URL": urls[1]}
    return env


def write_specs(tmp_path: Path, secret_ref: dict[str, str] | None = None) -> Path:
    """The GitHub connector acme/gh, its secret from SECRET's env variable unless `secret_ref` says otherwise."""
    document = GITHUB.doc([SECRET])
    if secret_ref is not None:
        document["spec"]["secrets"] = [{"name": SECRET.key_id, "secretRef": secret_ref}]
    path = tmp_path / "connectors.yaml"
    path.write_text(specs_yaml(document))
    return path


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def hub_run(*flags: str) -> list[str]:
    return [sys.executable, "-m", "hub", "run", *flags]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `connector-hub <args>` to its end."""
    argv = [sys.executable, "-m", "hub", *args]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def launch(env: dict[str, str], log_path: Path, *flags: str) -> Supervised:
    """Start `connector-hub run <flags>` with its log in `log_path`."""
    data_dir = Path(env["HUB_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    return Supervised(spawn(hub_run(*flags), env, log_path), data_dir, log_path)


Starter = Callable[..., Awaitable[Supervised]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Starter]:
    """Start a supervisor and wait until every worker is in its endpoints record."""
    started: list[Supervised] = []

    async def starter(env: dict[str, str], *flags: str, workers: int = WORKERS) -> Supervised:
        supervised = launch(env, tmp_path / f"supervisor-{len(started)}.log", "--workers", str(workers), *flags)
        started.append(supervised)

        async def listening() -> bool:
            supervised.alive()
            return len(supervised.worker_pids()) == workers

        await wait_for(listening, START_TIMEOUT_S, f"{workers} workers in the endpoints record")
        return supervised

    try:
        yield starter
    finally:
        for supervised in reversed(started):
            supervised.stop()


@pytest.fixture
async def ingress(
    start: Starter, nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path
) -> Supervised:
    """Two workers with the ingress role, on the fixtures' servers."""
    env = hub_env(tmp_path / "data", write_specs(tmp_path), (nats_server.url, valkey_server.url))
    return await start(env, "--role", "ingress")


# --- which worker serves a connection ------------------------------------------------------------


TCP_LISTEN = "0A"
"""The state column of a listening socket in /proc/net/tcp."""


def tcp_sockets() -> Iterator[tuple[int, int, str, str]]:
    """(local port, remote port, state, inode) of every TCP socket, from /proc/net/tcp and tcp6."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            yield local, remote, fields[3], fields[9]


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets among the PID's open files (none once it has exited)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if (target := os.readlink(fd)).startswith("socket:["):
                    inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


def listeners(port: int) -> set[str]:
    """The inodes of the sockets listening on `port`: with SO_REUSEPORT, one per process that listens."""
    return {inode for local, _, state, inode in tcp_sockets() if local == port and state == TCP_LISTEN}


def accepted_by(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """The PID among `pids` that holds the server side of the connection client_port -> server_port."""
    sockets = {inode for local, remote, _, inode in tcp_sockets() if (local, remote) == (server_port, client_port)}
    return next((pid for pid in pids if sockets & socket_inodes(pid)), None)


@dataclass
class Connection:
    """One kept-alive HTTP/1.1 connection to the shared port, and the worker that accepted it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    worker: int

    async def post(self, delivery: Delivery) -> tuple[int, Any]:
        """POST a delivery on this very connection; its status and JSON body."""
        headers = {**delivery.headers, "Host": "hub.test", "Content-Length": str(len(delivery.body))}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(f"POST {HOOK} HTTP/1.1\r\n{head}\r\n".encode() + delivery.body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, orjson.loads(await self.reader.readexactly(length))


@contextlib.asynccontextmanager
async def connection(base_url: str, pids: list[int]) -> AsyncIterator[Connection]:
    """A fresh connection (the kernel picks the worker), once a worker among `pids` holds it."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        local_port = int(writer.get_extra_info("sockname")[1])
        owner: list[int] = []

        async def accepted() -> bool:
            if reader.exception() is not None or reader.at_eof():  # a listener closed with it in its queue
                pytest.fail(f"connection from port {local_port} closed unaccepted: {reader.exception()!r}")
            owner[:] = [pid for pid in [accepted_by(int(port), local_port, pids)] if pid is not None]
            return bool(owner)

        await wait_for(accepted, 5, "a worker holding the connection")
        yield Connection(reader, writer, owner[0])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def post_until_served_by(supervised: Supervised, wanted: set[int]) -> dict[str, int]:
    """Post new deliveries on fresh connections until every worker in `wanted` has accepted one;
    every answer must be 202. The event ids accepted, with the worker that accepted each."""
    accepted: dict[str, int] = {}
    pids = supervised.worker_pids()
    for _ in range(MAX_CONNECTIONS):
        async with connection(supervised.http_url(), pids) as conn:
            delivery = GITHUB.signed(SECRET.value)
            status, body = await conn.post(delivery)
            assert (status, body) == (202, {"accepted": 1, "duplicates": 0, "ids": [delivery.event_id]})
            accepted[delivery.event_id] = conn.worker
        if wanted <= set(accepted.values()):
            return accepted
    pytest.fail(f"{MAX_CONNECTIONS} connections never reached {wanted - set(accepted.values())}")


async def stored_events(nats_url: str) -> list[RawStreamMsg]:
    """Every message of HUB_EVENTS."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(EVENTS_STREAM)).state
        return [await js.get_msg(EVENTS_STREAM, seq) for seq in range(state.first_seq, state.last_seq + 1)]
    finally:
        await nc.close()


def msg_id(event_id: str) -> str:
    return f"{TENANT}:{GITHUB.connector}:{event_id}"


# --- sharing the port ----------------------------------------------------------------------------


async def test_workers_share_the_port_and_each_serves_webhooks(ingress: Supervised, nats_server: RunningServer) -> None:
    pids = ingress.worker_pids()
    assert len(set(pids)) == WORKERS
    for pid in pids:
        assert not pid_gone(pid)
        assert parent_of(pid) == ingress.pid
        assert MASTER_KEY not in " ".join(cmdline_of(pid))
    (listening,) = [r for r in ingress.log_records() if r.get("msg") == "listening"]
    assert listening["workers"] == pids
    assert listening["http"] == ingress.http_url()

    accepted = await post_until_served_by(ingress, set(pids))

    events = await stored_events(nats_server.url)
    assert sorted(str((m.headers or {}).get("Nats-Msg-Id")) for m in events) == sorted(map(msg_id, accepted))
    assert MASTER_KEY not in ingress.log_text()
    assert SECRET.value not in ingress.log_text()


async def test_a_redelivery_on_the_other_worker_is_a_duplicate(
    ingress: Supervised, nats_server: RunningServer, valkey_server: RunningServer
) -> None:
    pids = ingress.worker_pids()
    async with contextlib.AsyncExitStack() as stack:
        by_worker: dict[int, Connection] = {}
        for _ in range(MAX_CONNECTIONS):
            conn = await stack.enter_async_context(connection(ingress.http_url(), pids))
            by_worker.setdefault(conn.worker, conn)
            if len(by_worker) == WORKERS:
                break
        first, second = (by_worker[pid] for pid in pids)
        delivery = GITHUB.signed(SECRET.value)

        assert await first.post(delivery) == (202, {"accepted": 1, "duplicates": 0, "ids": [delivery.event_id]})
        # The done mark follows the answer (hub/ingest/ingestor.py); a redelivery landing on the other worker
        # within its round trip would find the claim held (409, retry later), so wait for it here.
        store = Redis.from_url(valkey_server.url)
        try:

            async def marked_done() -> bool:
                return await store.get(dedupe_key(TENANT, GITHUB.connector, delivery.event_id)) == DONE

            await wait_for(marked_done, 5, "the done mark")
        finally:
            await store.aclose()
        assert await second.post(delivery) == (200, {"accepted": 0, "duplicates": 1, "ids": [delivery.event_id]})

    events = await stored_events(nats_server.url)
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in events] == [msg_id(delivery.event_id)]


# --- a worker dies, the supervisor stops ---------------------------------------------------------


async def test_a_killed_worker_is_restarted_and_requests_keep_succeeding(ingress: Supervised) -> None:
    killed, survivor = ingress.worker_pids()
    port = int(ingress.http_url().rsplit(":", 1)[1])
    killed_listener = listeners(port) & socket_inodes(killed)
    assert killed_listener
    os.kill(killed, signal.SIGKILL)

    async def killed_gone() -> bool:
        """Its sockets close when its last thread exits, which can be after its main thread is a zombie:
        until then the kernel still hands it new connections (SO_REUSEPORT), and resets them as it closes."""
        return pid_gone(killed) and not listeners(port) & killed_listener

    await wait_for(killed_gone, 10, "the killed worker and its listening socket gone")
    for _ in range(5):  # meanwhile the survivor serves every connection
        async with connection(ingress.http_url(), [survivor]) as conn:
            status, _ = await conn.post(GITHUB.signed(SECRET.value))
            assert status == 202

    async def replaced() -> bool:
        ingress.alive()
        pids = ingress.worker_pids()
        return len(pids) == WORKERS and killed not in pids

    await wait_for(replaced, START_TIMEOUT_S, "a new worker in the endpoints record")
    (restarted,) = set(ingress.worker_pids()) - {survivor}
    assert parent_of(restarted) == ingress.pid
    (warning,) = [r for r in ingress.log_records() if r.get("msg") == "worker exited: restarting it"]
    assert warning["level"] == "warning"
    assert (warning["worker"], warning["pid"], warning["exit_code"]) == (0, killed, -signal.SIGKILL)

    await post_until_served_by(ingress, {restarted})


async def test_sigterm_stops_every_worker_and_exits_0(ingress: Supervised) -> None:
    pids = ingress.worker_pids()
    ingress.proc.send_signal(signal.SIGTERM)

    async def exited() -> bool:
        return ingress.proc.poll() is not None

    await wait_for(exited, STOP_TIMEOUT_S, "the supervisor to exit")
    assert ingress.proc.returncode == 0, ingress.log_text()[-4000:]
    assert all(pid_gone(pid) for pid in pids), [pid for pid in pids if not pid_gone(pid)]
    assert not (ingress.data_dir / "endpoints.json").exists()
    assert not [r for r in ingress.log_records() if r.get("msg") == "worker exited: restarting it"]


async def test_workers_die_with_a_sigkilled_supervisor(ingress: Supervised) -> None:
    pids = ingress.worker_pids()
    ingress.proc.send_signal(signal.SIGKILL)
    ingress.proc.wait(5)

    async def all_gone() -> bool:
        return all(pid_gone(pid) for pid in pids)

    await wait_for(all_gone, STOP_TIMEOUT_S, "every worker gone after the supervisor was killed")


async def test_without_urls_the_workers_share_the_supervisors_embedded_servers(start: Starter, tmp_path: Path) -> None:
    """Every role, embedded servers: started once, by the supervisor, and stopped with it; `send-test`
    finds the hub through the supervisor's endpoints record."""
    env = hub_env(tmp_path / "data", write_specs(tmp_path), None)
    hub = await start(env)
    record = hub.record()
    assert record is not None
    servers = set(record["embedded_pids"].values())
    assert len(servers) == 2
    assert all(parent_of(pid) == hub.pid for pid in servers)
    assert processes_using(hub.data_dir) == servers  # no worker started servers of its own
    for pid in record["worker_pids"]:
        worker_env = environ_of(pid)
        assert (worker_env["HUB_NATS_URL"], worker_env["HUB_REDIS_URL"]) == (record["nats_url"], record["redis_url"])
    async with aiohttp.ClientSession() as session, session.get(record["admin_url"] + "/v1/openapi.json") as response:
        assert response.status == 401  # the admin API answers on its shared port, and wants a key
    sent = cli(env, "send-test", f"{TENANT}/{GITHUB.connector}")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"POST {record['http_url']}{HOOK} -> 202" in sent.stdout
    assert len(await stored_events(record["nats_url"])) == 1  # where `tail` reads from

    hub.proc.send_signal(signal.SIGTERM)

    async def exited() -> bool:
        return hub.proc.poll() is not None

    await wait_for(exited, STOP_TIMEOUT_S, "the supervisor to exit")
    assert hub.proc.returncode == 0, hub.log_text()[-4000:]
    assert all(pid_gone(pid) for pid in [*record["worker_pids"], *servers])


# --- start-up failures ---------------------------------------------------------------------------


def problem_lines(stderr: str) -> list[str]:
    """What the CLI printed, without the JSON log lines."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


def test_a_config_error_fails_fast_as_with_one_worker(tmp_path: Path) -> None:
    env = hub_env(tmp_path / "data", write_specs(tmp_path), None)
    del env[SECRET.env]

    one = cli(env, "run", "--workers", "1")
    began = time.monotonic()
    two = cli(env, "run", "--workers", "2")

    assert time.monotonic() - began < 15
    assert (two.returncode, problem_lines(two.stderr)) == (one.returncode, problem_lines(one.stderr))
    assert one.returncode == 2
    assert any(SECRET.env in line and "spec.secrets[0]" in line for line in problem_lines(two.stderr)), two.stderr
    assert "worker started" not in two.stderr
    assert not (tmp_path / "data" / "nats").exists()


def test_a_worker_that_cannot_start_stops_the_supervisor(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path
) -> None:
    """A store secret that is not set passes the supervisor's checks but fails each worker's start."""
    specs = write_specs(tmp_path, {"source": "store", "name": "gh-signing"})
    env = hub_env(tmp_path / "data", specs, (nats_server.url, valkey_server.url))
    supervised = launch(env, tmp_path / "supervisor.log", "--workers", str(WORKERS), "--role", "ingress")
    try:
        supervised.proc.wait(START_TIMEOUT_S)
        started = [r["pid"] for r in supervised.log_records() if r.get("msg") == "worker started"]
        supervised.seen.update(started)

        assert supervised.proc.returncode == 2, supervised.log_text()
        assert "secret gh-signing is not in the store" in supervised.log_text()
        assert [r["msg"] for r in supervised.log_records() if r.get("level") == "error"] == [
            "worker could not start: stopping the others"
        ]
        assert len(started) == WORKERS
        assert all(pid_gone(pid) for pid in started)
    finally:
        supervised.stop()


# --- the supervisor's choices --------------------------------------------------------------------


def test_a_worker_gets_the_roles_and_flags_but_not_those_the_supervisor_sets() -> None:
    """`--workers` and the ports and URLs reach a worker through its environment: a flag would win."""
    flags = {"workers": "4", "http_port": "0", "admin_port": "0", "nats_url": "nats://x", "redis_url": "redis://x"}
    flags |= {"connectors": "specs/", "log_format": "console"}
    argv = worker_argv(["ingress", "admin"], flags, insecure_no_auth=True)
    assert argv == [
        sys.executable,
        *("-m", "hub", "run", "--role", "ingress,admin", "--insecure-no-auth"),
        *("--connectors", "specs/", "--log-format", "console"),
    ]


def test_restarts_back_off_up_to_a_cap() -> None:
    delays = [restart_delay(failures) for failures in range(2000)]
    assert delays[0] == RESTART_DELAY_S
    assert delays == sorted(delays)
    assert delays[-1] == RESTART_DELAY_MAX_S
