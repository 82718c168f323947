"""A three-node JetStream cluster for tests: three nats-server processes from the pip binary, on free
loopback ports, routed to each other.

Loaded by the top-level conftest (`pytest_plugins`). The fixture waits until the cluster has a meta
leader (each node's `/jsz` on its monitoring port, bounded), yields the nodes, and stops every
process by its own PID at teardown, also when a start or the test failed. A test may stop a node
(`Node.kill`) to force an election.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.app.embedded import die_with_parent, find_binary

HOST = "127.0.0.1"
NODES = 3
CLUSTER_NAME = "hub-test"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.05


@dataclass
class Node:
    """One nats-server of the cluster, signalled only by its own PID."""

    name: str
    port: int
    monitor_port: int
    route_port: int
    store: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def jsz(self) -> dict[str, object] | None:
        """The node's JetStream report, or None while it does not answer."""
        url = f"http://{HOST}:{self.monitor_port}/jsz"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=1) as reply:
            report: dict[str, object] = json.loads(reply.read())
            return report
        return None

    def kill(self) -> None:
        """SIGKILL this node (a crash, not a shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; nothing if it has exited."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def config(self, peers: list[Node]) -> str:
        routes = ", ".join(json.dumps(f"nats-route://{HOST}:{peer.route_port}") for peer in peers if peer is not self)
        return (
            f"server_name: {self.name}\n"
            f'listen: "{HOST}:{self.port}"\n'
            f'http: "{HOST}:{self.monitor_port}"\n'
            f"jetstream {{ store_dir: {json.dumps(str(self.store))} }}\n"
            f'cluster {{ name: {CLUSTER_NAME}, listen: "{HOST}:{self.route_port}", routes: [{routes}] }}\n'
        )


@dataclass
class Cluster:
    """Three routed JetStream nodes."""

    nodes: list[Node]

    @property
    def urls(self) -> str:
        """HUB_NATS_URL for the whole cluster: the three client URLs, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> Node:
        (found,) = [node for node in self.nodes if node.name == name]
        return found

    def meta_leader(self) -> str | None:
        """The meta leader every answering node agrees on, or None while there is none."""
        leaders = set()
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            report = node.jsz()
            meta = report.get("meta_cluster") if report else None
            leaders.add(meta.get("leader") if isinstance(meta, dict) else None)
        return leaders.pop() if len(leaders) == 1 and None not in leaders else None


def _start(cluster: Cluster, log_dir: Path) -> None:
    binary = find_binary("nats")
    for node in cluster.nodes:
        node.store.mkdir(parents=True)
        conf = node.store / "nats.conf"
        conf.write_text(node.config(cluster.nodes))
        with (log_dir / f"{node.name}.log").open("wb") as log:
            node.process = subprocess.Popen(
                [str(binary), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while cluster.meta_leader() is None:
        for node in cluster.nodes:
            if node.process is not None and node.process.poll() is not None:
                log_text = (log_dir / f"{node.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{node.name} exited with {node.process.returncode}:\n{log_text}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no JetStream meta leader within {READY_TIMEOUT_S}s (logs in {log_dir})")
        time.sleep(_POLL_S)


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago: all bound at once, so none is given twice."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three JetStream nodes routed to each other, with a meta leader; stopped by PID at teardown."""
    root = tmp_path / "nats-cluster"
    root.mkdir()
    ports = iter(_free_ports(3 * NODES))
    nodes = [Node(f"n{i + 1}", next(ports), next(ports), next(ports), root / f"n{i + 1}") for i in range(NODES)]
    cluster = Cluster(nodes)
    try:
        _start(cluster, root)
        yield cluster
    finally:
        for node in nodes:
            node.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the cluster is `integration`, as those of tests/servers.py are."""
    for item in items:
        if "nats_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
