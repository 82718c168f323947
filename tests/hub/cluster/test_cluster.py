"""The hub against a three-node JetStream cluster (tests/cluster.py), with HUB_STREAM_REPLICAS=3 and
HUB_NATS_URL listing the three nodes: events stored on every node, the control plane's buckets R3,
the gate dispatching, `run` connecting with the list, and a delivery accepted once after the stream
leader's server is killed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.aio.client import Client as NATS

from events.streams import EVENTS_STREAM
from hub.app.config import load_configuration
from hub.app.connections import Endpoints
from hub.app.embedded import RunningServer
from hub.app.roles import Process, listening, start_process
from hub.control.buckets import SPECS_BUCKET, STATUS_BUCKET
from hub.ingress.app import build_app
from hub.settings import Settings
from tests.cluster import Cluster, Node
from tests.conftest import wait_for
from tests.hub.app.test_workers import cli, hub_env, launch
from tests.hub.gate.harness import subscribe_target
from tests.hub.ingress.signing import GITHUB, TENANT, Delivery, SecretSpec, new_secret, specs_yaml
from tests.hub.poll.test_poll_smoke import source

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPLICAS = 3
POLLED = 6
SECRET = SecretSpec("k1", "CLUSTER_GH_SECRET", new_secret("github"))
TARGET = "svc.acme.prs"
HOOK = f"/hooks/{TENANT}/{GITHUB.connector}"
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
POLICY = {
    "apiVersion": "hub/v1",
    "kind": "Policy",
    "metadata": {"name": "default", "tenant": TENANT},
    "spec": {"allowedSubjects": ["svc.acme"], "rules": [{"name": "all", "effect": "allow"}]},
}


def write_specs(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    """acme/gh with one route to a subject target, the tenant's policy allowing it, and `extra` documents."""
    connector = GITHUB.doc([SECRET])
    route = {"name": "prs", "match": {"types": [GITHUB.expected_type]}, "target": {"subject": TARGET}}
    connector["spec"]["routes"] = [route]
    path = tmp_path / "connectors.yaml"
    path.write_text(specs_yaml(connector, POLICY, *extra))
    return path


def poll_connector(source_url: str) -> dict[str, Any]:
    """beta/api: three pages of two items each from the loopback source (tests/hub/poll/test_poll_smoke.py)."""
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": "api", "tenant": "beta"},
        "spec": {
            "type": "poll",
            "provider": "beta-api",
            "poll": {
                "kind": "http_json",
                "interval": "1h",
                "request": {"url": f"{source_url}/items"},
                "items": {"path": "items", "id": "id", "type": "kind", "cursor": "cursor"},
                "pagination": {"nextLink": "next"},
                "egress": {"allowedNetworks": ["127.0.0.1/32"]},
            },
        },
    }


@contextlib.asynccontextmanager
async def hub_on(
    cluster: Cluster, redis_url: str, tmp_path: Path, roles: Sequence[str], *extra: dict[str, Any]
) -> AsyncIterator[tuple[str, Process]]:
    """An in-process hub with these roles (started as `run` starts them) on the cluster; its ingress URL."""
    settings = Settings(
        nats_url=cluster.urls,
        redis_url=redis_url,
        data_dir=tmp_path / "hub",
        connectors=write_specs(tmp_path, *extra),
        stream_replicas=REPLICAS,
        http_port=0,
    )
    async with contextlib.AsyncExitStack() as stack:
        configuration = load_configuration(settings, roles)
        endpoints = Endpoints(cluster.urls, redis_url, {})
        process = await start_process(stack, settings, configuration, endpoints, roles)
        app = build_app(process.context, ingress=True)
        url = await stack.enter_async_context(listening(app, "127.0.0.1", 0, reuse_port=False))
        yield url, process


async def post(url: str, delivery: Delivery) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + HOOK, data=delivery.body, headers=delivery.headers) as reply,
    ):
        return reply.status


def stored_on(node: Node, stream: str) -> int | None:
    """Messages of `stream` in this node's own store (its monitoring report), None if it holds none."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.monitor_port}/jsz?streams=true", timeout=2) as reply:
        report: dict[str, Any] = json.loads(reply.read())
    for account in report.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail["name"] == stream:
                return int(detail["state"]["messages"])
    return None


async def msg_ids(nc: NATS) -> list[str]:
    """The Nats-Msg-Id of every message in HUB_EVENTS, in order."""
    js = nc.jetstream()
    state = (await js.stream_info(EVENTS_STREAM)).state
    messages = [await js.get_msg(EVENTS_STREAM, seq) for seq in range(state.first_seq, state.last_seq + 1)]
    return [str((message.headers or {}).get("Nats-Msg-Id")) for message in messages]


def msg_id(delivery: Delivery) -> str:
    return f"{TENANT}:{GITHUB.connector}:{delivery.event_id}"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET.env, SECRET.value)


@pytest.mark.usefixtures("secret_env")
async def test_ingest_control_plane_and_gate_on_a_replicated_cluster(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path
) -> None:
    roles = ("ingress", "poller", "policy", "dispatch")
    async with (
        source() as source_url,
        hub_on(nats_cluster, valkey_server.url, tmp_path, roles, poll_connector(source_url)) as (url, process),
    ):
        js = process.conn.nc.jetstream()
        for stream in (EVENTS_STREAM, f"KV_{SPECS_BUCKET}", f"KV_{STATUS_BUCKET}"):
            info = await js.stream_info(stream)
            assert info.config.num_replicas == REPLICAS, stream
            assert info.cluster is not None, stream
            assert len(info.cluster.replicas or []) == REPLICAS - 1, stream

        receiver = await nats.connect(nats_cluster.nodes[-1].url)  # a target's consumer on one node only
        try:
            target = await subscribe_target(receiver, TARGET)
            await receiver.flush()
            delivery = GITHUB.signed(SECRET.value)
            assert await post(url, delivery) == 202  # the spec applied from the files is served

            async def on_every_node() -> bool:  # the webhook's event and the six polled items
                return all(stored_on(node, EVENTS_STREAM) == 1 + POLLED for node in nats_cluster.nodes)

            await wait_for(on_every_node, 15, "the webhook's and the poll run's events in every node's store")
            ids = await msg_ids(process.conn.nc)
            assert msg_id(delivery) in ids
            assert len([i for i in ids if i.startswith("beta:api:")]) == POLLED

            async def dispatched() -> bool:
                return len(target.messages) == 1

            await wait_for(dispatched, 15, "the gate's delivery to the subject target")
            assert target.ids() == [delivery.event_id]
        finally:
            await receiver.close()


@pytest.mark.usefixtures("secret_env")
async def test_a_delivery_after_the_stream_leader_dies_is_stored_once(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path
) -> None:
    async with hub_on(nats_cluster, valkey_server.url, tmp_path, ("ingress",)) as (url, process):
        first = GITHUB.signed(SECRET.value)
        assert await post(url, first) == 202
        info = await process.conn.nc.jetstream().stream_info(EVENTS_STREAM)
        assert info.cluster is not None
        assert info.cluster.leader is not None
        leader = nats_cluster.node(info.cluster.leader)
        leader.kill()

        second = GITHUB.signed(SECRET.value)
        answers: list[int] = []

        async def accepted() -> bool:  # the provider's retries: the same delivery until it is accepted
            answers.append(await post(url, second))
            return answers[-1] == 202

        await wait_for(accepted, 30, "the delivery accepted after the election")
        assert set(answers) <= {202, 503}

        survivor = next(node for node in nats_cluster.nodes if node is not leader)
        nc = await nats.connect(survivor.url)
        try:
            assert await msg_ids(nc) == [msg_id(first), msg_id(second)]
            new_leader = (await nc.jetstream().stream_info(EVENTS_STREAM)).cluster
            assert new_leader is not None
            assert new_leader.leader not in (None, leader.name)
        finally:
            await nc.close()


async def test_run_connects_with_a_list_of_nats_urls(
    nats_cluster: Cluster, valkey_server: RunningServer, tmp_path: Path
) -> None:
    env = hub_env(tmp_path / "data", write_specs(tmp_path), (nats_cluster.urls, valkey_server.url))
    env |= {"HUB_STREAM_REPLICAS": str(REPLICAS), "HUB_MASTER_KEY": MASTER_KEY, SECRET.env: SECRET.value}
    hub = launch(env, tmp_path / "run.log", "--role", "ingress")
    try:

        async def listening_record() -> bool:
            hub.alive()
            return hub.record() is not None

        await wait_for(listening_record, 60, "the hub's endpoints record")
        record = hub.record()
        assert record is not None
        assert record["nats_url"] == nats_cluster.urls
        delivery = GITHUB.signed(SECRET.value)
        assert await post(hub.http_url(), delivery) == 202
        nc = await nats.connect(nats_cluster.nodes[0].url)
        try:
            assert await msg_ids(nc) == [msg_id(delivery)]
            assert (await nc.jetstream().stream_info(EVENTS_STREAM)).config.num_replicas == REPLICAS
        finally:
            await nc.close()
        listed = cli(env, "list")  # a CLI verb reaches the bus through the same list
        assert listed.returncode == 0, listed.stderr
        assert f"{TENANT}/{GITHUB.connector}" in listed.stdout
    finally:
        hub.stop()
