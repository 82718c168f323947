"""How a CLI command reaches a running hub: its NATS and Valkey (the `HUB_*_URL` settings, else the
embedded servers a local `connector-hub run` recorded in its data dir), its ingress URL, its control
plane, and its connectors, from the spec files or as the hub serves them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import nats
import nats.errors
from nats.aio.client import Client as NATS

from hub.app.config import master_key
from hub.app.endpoints import running_hub_endpoints
from hub.app.valkey import configured_locator
from hub.cli.command import Invocation, setting_flags
from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, current_entries, kv_bucket
from hub.control.plane import ControlPlane
from hub.control.secretstore import SecretCache
from hub.control.specstore import SpecStore
from hub.errors import ConfigError, Problem
from hub.gate.catalog import GateCatalog, catalog_of
from hub.ingest.connectors import Connector, build_connector
from hub.ingest.secrets import WITHOUT_STORE, SecretResolver
from hub.settings import Settings, nats_servers, nats_shown
from schemas.connector import ConnectorDocument
from schemas.loader import load_specs

CONNECT_TIMEOUT_S = 5.0


def _recorded(settings: Settings, field: str, setting: str) -> str:
    record = running_hub_endpoints(settings.data_dir)
    if record is None:
        raise SystemExit(f"connector-hub: {setting} is unset and no hub is running with data dir {settings.data_dir}")
    return str(record[field])


def nats_url(settings: Settings) -> str:
    """HUB_NATS_URL, else the embedded server a local `connector-hub run` recorded."""
    return settings.nats_url or _recorded(settings, "nats_url", "HUB_NATS_URL")


def redis_url(settings: Settings) -> str:
    """HUB_REDIS_SENTINELS (as a Sentinel locator), else HUB_REDIS_URL, else the local running hub's Valkey."""
    return configured_locator(settings) or _recorded(settings, "redis_url", "HUB_REDIS_URL")


def hub_url(settings: Settings) -> str:
    """The running hub's base URL: from its endpoints record, else the configured host and port."""
    record = running_hub_endpoints(settings.data_dir)
    if record is not None:
        return str(record["http_url"])
    return f"http://{settings.http_host}:{settings.http_port}"


async def _quiet(exc: Exception) -> None:
    """nats-py's default error callback logs a traceback per attempt; the error below says it once."""


async def connect(settings: Settings, client_name: str) -> NATS:
    """A CLI command's connection to the hub's NATS, or SystemExit saying why there is none."""
    url = nats_url(settings)
    try:
        connecting = nats.connect(nats_servers(url), name=client_name, connect_timeout=2, error_cb=_quiet)
        return await asyncio.wait_for(connecting, CONNECT_TIMEOUT_S)  # nats-py would retry a refused connect
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise SystemExit(f"connector-hub: cannot connect to NATS at {nats_shown(url)}: {type(exc).__name__}") from None


@asynccontextmanager
async def control_plane(settings: Settings) -> AsyncIterator[ControlPlane]:
    """The control plane on the hub's bus; the CLI acts as an operator."""
    nc = await connect(settings, "connector-hub-cli")
    try:
        yield await ControlPlane.open(nc.jetstream(), master_key(settings), replicas=settings.stream_replicas)
    finally:
        await nc.close()


def on_control_plane(settings: Settings, command: Callable[[ControlPlane], Awaitable[int]]) -> int:
    """Run one command against the control plane; its exit status."""

    async def main() -> int:
        async with control_plane(settings) as plane:
            return await command(plane)

    return asyncio.run(main())


def hub_is_running(settings: Settings) -> bool:
    """Whether there is a hub to ask: HUB_NATS_URL is set, or a local `connector-hub run` recorded itself."""
    return bool(settings.nats_url) or running_hub_endpoints(settings.data_dir) is not None


def reads_deployed(run: Invocation) -> bool:
    """Whether a verb acts on what the running hub serves (so a connector applied a minute ago can
    be tested) rather than on the spec files: not with `--connectors`, nor when no hub runs."""
    return "connectors" not in setting_flags(run.args) and hub_is_running(run.settings)


def target_connector(run: Invocation, target: str) -> Connector:
    """The connector a verb acts on, as the running hub serves it or from the spec files (`reads_deployed`)."""
    if reads_deployed(run):
        return asyncio.run(deployed_connector(run.settings, target))
    return connector_from_specs(run.settings, target)


def connector_from_specs(settings: Settings, target: str) -> Connector:
    """The connector `tenant/name` of HUB_CONNECTORS, built as `run` builds it (its secrets resolved)."""
    tenant, _, name = target.partition("/")
    if settings.connectors is None:
        raise ConfigError([Problem("", "HUB_CONNECTORS", "set HUB_CONNECTORS (or --connectors) to the spec files")])
    documents = [s.connector for s in load_specs(settings.connectors).connectors if s.connector.key == (tenant, name)]
    if not documents:
        raise ConfigError([Problem("", "", f"no connector {target} in {settings.connectors}")])
    if documents[0].spec.type == "poll":
        raise ConfigError(
            [
                Problem(
                    target,
                    "spec.type",
                    "a poll connector: the hub polls its source (`connector-hub status` shows runs)",
                )
            ]
        )
    return _built(settings, documents[0], WITHOUT_STORE)


async def deployed_connector(settings: Settings, target: str) -> Connector:
    """The connector `tenant/name` from the running hub's spec store, its store secrets opened with
    the master key; ConfigError when it is not deployed or cannot be built here."""
    tenant, _, name = target.partition("/")
    nc = await connect(settings, "connector-hub-cli")
    try:
        js = nc.jetstream()
        specs = SpecStore(await kv_bucket(js, SPECS_BUCKET, replicas=settings.stream_replicas))
        stored = await specs.connector(tenant, name)
        if stored is None or not isinstance(stored.document, ConnectorDocument):
            raise ConfigError([Problem("", "", f"no connector {target} in the running hub's spec store")])
        secrets = SecretCache(master_key(settings))
        secrets_kv = await kv_bucket(js, SECRETS_BUCKET, replicas=settings.stream_replicas)
        for entry in await current_entries(secrets_kv, f"{tenant}.*"):
            secrets.apply(entry.key, entry.value)
    finally:
        await nc.close()
    return _built(settings, stored.document, SecretResolver(secrets))


async def deployed_catalog(settings: Settings) -> GateCatalog:
    """The gate's catalog as the running hub builds it: every stored connector and Policy."""
    async with control_plane(settings) as plane:
        stored = await plane.specs.connectors()
        policies = await plane.specs.policies()
    return catalog_of([s.document for s in stored if isinstance(s.document, ConnectorDocument)], policies)


def _built(settings: Settings, document: ConnectorDocument, resolver: SecretResolver) -> Connector:
    return build_connector(
        document,
        publish_timeout_s=settings.publish_timeout.total_seconds(),
        claim_ttl_s=settings.claim_ttl.total_seconds(),
        duplicate_window_s=settings.duplicate_window.total_seconds(),
        resolver=resolver,
    )
