"""The hub's Valkey client, from one locator string: a plain `redis://` URL (one server, `HUB_REDIS_URL`)
or `redis+sentinel://host:port,host:port/<master name>` (the Sentinels of a replicated Valkey,
`HUB_REDIS_SENTINELS` and `HUB_REDIS_SENTINEL_MASTER`).

One string, because it travels where the URL already goes: from `servers()` to every worker of
`run --workers N` and into the endpoints record the CLI reads. A client built from Sentinels asks
them for the current primary whenever it opens a connection; after a failover the first command on
a connection to the old primary fails (no retries: the callers fail open or pause, as they do for a
standalone Valkey), and the next connection goes to the promoted replica.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from hub.settings import Settings, split_host_port

SENTINEL_SCHEME = "redis+sentinel"


def configured_locator(settings: Settings) -> str | None:
    """Where the settings say Valkey is: the Sentinels when set, else HUB_REDIS_URL (None: neither)."""
    if not settings.redis_sentinels:
        return settings.redis_url
    hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in settings.redis_sentinels)
    return f"{SENTINEL_SCHEME}://{hosts}/{settings.redis_sentinel_master}"


def parse_sentinel_locator(locator: str) -> tuple[tuple[tuple[str, int], ...], str] | None:
    """The Sentinels and master name of a `redis+sentinel://` locator; None for any other URL."""
    prefix = f"{SENTINEL_SCHEME}://"
    if not locator.startswith(prefix):
        return None
    hosts, _, master = locator.removeprefix(prefix).partition("/")
    if not master or not hosts:
        raise ValueError(f"a {SENTINEL_SCHEME} locator needs host:port[,host:port]/master")
    return tuple(split_host_port(part) for part in hosts.split(",")), master


class SentinelRedis(Redis):
    """A client of the Sentinels' current primary that also closes its connections to the Sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for client in self.sentinel_manager.sentinels:
                await client.aclose()


def connect_valkey(locator: str, timeout_s: float) -> Redis:
    """A Valkey client that fails fast (no retries, short timeouts) for a URL or a Sentinel locator."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    found = parse_sentinel_locator(locator)
    if found is None:
        return Redis.from_url(locator, **options)
    sentinels, master = found
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=dict(options), **options)
    client: SentinelRedis = sentinel.master_for(master, redis_class=SentinelRedis)
    client.sentinel_manager = sentinel
    return client
