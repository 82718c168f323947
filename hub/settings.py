"""The hub's settings: `HUB_*` environment variables, each also a `--flag` (flags win).

No `.env` file is read: configuration is explicit, from the environment or the command line.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ByteSize, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from adapters.registry import known_types
from events.streams import (
    AUDIT_STREAM,
    DLQ_STREAM,
    EVENTS_STREAM,
    INVOCATIONS_STREAM,
    JOURNEYS_STREAM,
    REJECTED_STREAM,
    REPLAY_STREAM,
    Retention,
    StreamSettings,
)
from schemas.durations import Duration, format_duration

_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _comma_separated(value: Any) -> Any:
    """`a,b` (an environment variable or a flag) as a list; a list stays as it is."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _host(value: str) -> str:
    host = value.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"{value!r} is not a host name or an IP address (no scheme, port or path)") from None
    return host


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a network (CIDR) or an IP address") from None


NATS_SCHEMES = ("nats", "tls")


def nats_servers(value: str) -> list[str]:
    """The server URLs of a HUB_NATS_URL (`nats://a:4222,nats://b:4222`, the usual NATS form), in order."""
    return [part.strip() for part in value.split(",") if part.strip()]


def nats_shown(value: str) -> str:
    """HUB_NATS_URL as a message may show it: each URL without its `user:password@`."""
    return ",".join(
        urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2]).geturl() for url in nats_servers(value)
    )


def _nats_url_list(value: str) -> str:
    """Each URL checked (scheme nats or tls, a host, a valid port); the list joined again without blanks.

    A problem names the URL by its position and its host, never the whole URL: it may carry a password.
    """
    servers = nats_servers(value)
    if not servers:
        raise ValueError("HUB_NATS_URL holds no NATS server URL (e.g. nats://n1:4222, or several, comma-separated)")
    for position, url in enumerate(servers, 1):
        parts = urlsplit(url)
        where = f"HUB_NATS_URL, URL {position} of {len(servers)}"
        if parts.scheme not in NATS_SCHEMES:
            raise ValueError(f"{where}: the scheme must be nats:// or tls:// (e.g. nats://nats-1:4222)")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{where} (host {parts.hostname}): the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError(f"{where}: no host")
        if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{where} (host {parts.hostname}): only scheme://[user:password@]host[:port]")
    return ",".join(servers)


def _known_type(value: str) -> str:
    if value not in known_types():
        raise ValueError(f"HUB_DISABLED_PROVIDERS: {value!r} is no registered provider or poller (see `catalog`)")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as (host, port), the host checked as `_host` checks it."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port (e.g. sentinel-1:26379)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: the port is not a number from 1 to 65535")
    return _host(host), int(port)


def _sentinel(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return split_host_port(value)
    except ValueError as exc:
        raise ValueError(f"HUB_REDIS_SENTINELS: {exc}") from None


def _otlp_endpoint(value: str) -> str:
    """An http(s) base URL with a host (the exporter appends /v1/traces)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("HUB_OTLP_ENDPOINT: an http:// or https:// URL with a host (e.g. http://otel-collector:4318)")
    return value.strip()


_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _master_name(value: str) -> str:
    if not _MASTER_NAME.fullmatch(value):
        raise ValueError("HUB_REDIS_SENTINEL_MASTER: 1 to 64 letters, digits, '.', '_' or '-' (e.g. mymaster)")
    return value


Hosts = Annotated[tuple[Annotated[str, AfterValidator(_host)], ...], NoDecode, BeforeValidator(_comma_separated)]
Sentinels = Annotated[
    tuple[Annotated[tuple[str, int], BeforeValidator(_sentinel)], ...], NoDecode, BeforeValidator(_comma_separated)
]
Networks = Annotated[tuple[Annotated[str, AfterValidator(_network)], ...], NoDecode, BeforeValidator(_comma_separated)]


class Settings(BaseSettings):
    """Everything `connector-hub` reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="forbid", frozen=True)

    nats_url: Annotated[str, AfterValidator(_nats_url_list)] | None = Field(
        default=None,
        description="NATS server URL, or a cluster's comma-separated (nats://a:4222,nats://b:4222); "
        "unset: start an embedded nats-server",
    )
    redis_url: str | None = Field(default=None, description="Valkey/Redis URL; unset: start an embedded valkey-server")
    redis_sentinels: Sentinels = Field(
        default=(),
        description="Comma-separated Sentinels (host:port,host:port) of a replicated Valkey; when set, every Valkey "
        "client follows the primary they name (HUB_REDIS_URL is not used)",
    )
    redis_sentinel_master: Annotated[str, AfterValidator(_master_name)] = Field(
        default="mymaster", description="The master name the Sentinels monitor (with HUB_REDIS_SENTINELS)"
    )
    data_dir: Path = Field(default=Path(".hub"), description="Where embedded servers keep their data")
    connectors: Path | None = Field(default=None, description="Connector spec file or folder")
    http_host: str = Field(default="127.0.0.1", description="Ingress listen address")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Ingress listen port")
    admin_host: str = Field(default="127.0.0.1", description="Admin API listen address")
    admin_port: int = Field(
        default=8081, ge=0, le=65535, description="Admin API listen port (its own, not the ingress's)"
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes serving the same ports (SO_REUSEPORT); above 1, `run` supervises that many workers",
    )
    public_url: str | None = Field(
        default=None, description="The ingress's public base URL, for service maps (default: http://HOST:PORT)"
    )
    master_key: SecretStr | None = Field(
        default=None, description="Base64 of the 32-byte key that wraps stored secrets' data keys (environment only)"
    )
    master_key_file: Path | None = Field(default=None, description="A file holding the master key instead")
    signing_key: SecretStr | None = Field(
        default=None, description="The key service maps are signed with (environment only)"
    )
    service_map_ttl: Duration = Field(default=timedelta(minutes=5), description="How long a service map is valid")
    certification_period: Duration = Field(
        default=timedelta(hours=24),
        gt=timedelta(0),
        description="How long a connector must run without breaching its SLOs to be certified",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    tracing: Literal["off", "otlp", "console"] = Field(
        default="off",
        description="OpenTelemetry traces: off, otlp (to HUB_OTLP_ENDPOINT) or console (stdout); on needs the "
        "otel extra (pip install 'connector-hub[otel]')",
    )
    otlp_endpoint: Annotated[str, AfterValidator(_otlp_endpoint)] | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL for HUB_TRACING=otlp, e.g. http://otel-collector:4318 (/v1/traces "
        "is appended); unset: OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318",
    )

    publish_timeout: Duration = Field(
        default=timedelta(seconds=20),
        description="Upper bound of the publish deadline: a webhook's answer budget (its provider's timeout less "
        "a margin, GitHub 8s) and a poll page's",
    )
    claim_ttl: Duration = Field(default=timedelta(seconds=30), description="How long an in-flight dedupe claim lives")
    keepalive_timeout: Duration = Field(
        default=timedelta(seconds=15),
        gt=timedelta(0),
        description="A connection without a complete request head this long after it opened or after its last "
        "response is closed: idle keep-alive connections and slow headers",
    )
    body_timeout: Duration = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="Deadline for reading a request's body (400 body_timeout after it)",
    )
    duplicate_window: Duration = Field(
        default=timedelta(minutes=15),
        description="JetStream duplicate window; must exceed the claim TTL and twice every replay window",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5, description="Replicas of the hub's streams (R3 in a cluster)")
    nats_sync_interval: str = Field(
        default="always", description="Embedded JetStream fsync policy: always (acknowledged = on disk) or e.g. 2m"
    )
    poll_lease_ttl: Duration = Field(
        default=timedelta(seconds=30),
        description="Lease of a poll source's run; another instance takes over this long after its holder died",
    )
    store_timeout: Duration = Field(
        default=timedelta(milliseconds=500), description="Valkey socket timeout before dedupe fails open"
    )
    key_fetch_allowed_hosts: Hosts = Field(
        default=(),
        description="Comma-separated hosts, besides each provider's own, that connectors may name for key material "
        "(Pub/Sub jwksUrl, SNS certificateHosts): a local mirror, a test's loopback server. Plain http only to a "
        "loopback one",
    )
    key_fetch_allowed_networks: Networks = Field(
        default=(),
        description="Comma-separated non-public networks (CIDR) that key fetches and SNS subscription confirmations "
        "may reach, e.g. 127.0.0.0/8 for a mirror on this machine (default: public addresses only)",
    )

    events_max_age: Duration = Field(
        default=timedelta(days=7), description="How long HUB_EVENTS (and HUB_INVOCATIONS) keep events"
    )
    events_max_bytes: ByteSize = Field(
        default=ByteSize(0), description="Byte cap of HUB_EVENTS (0: age only), e.g. 20GiB"
    )
    journeys_max_age: Duration = Field(
        default=timedelta(days=7), description="How long HUB_JOURNEYS keeps what the gate did with each event"
    )
    journeys_max_bytes: ByteSize = Field(default=ByteSize(0), description="Byte cap of HUB_JOURNEYS (0: age only)")
    dlq_max_age: Duration = Field(default=timedelta(days=30), description="How long HUB_DLQ keeps dead letters")
    dlq_max_bytes: ByteSize = Field(default=ByteSize(0), description="Byte cap of HUB_DLQ (0: age only)")
    rejected_max_age: Duration = Field(
        default=timedelta(days=3), description="How long HUB_REJECTED keeps refused requests for diagnosis"
    )
    rejected_max_bytes: ByteSize = Field(default=ByteSize(0), description="Byte cap of HUB_REJECTED (0: age only)")
    rejected_per_connector: int = Field(
        default=100, ge=1, le=100_000, description="Refused requests kept per connector (the oldest go first)"
    )
    audit_max_age: Duration = Field(default=timedelta(days=90), description="How long HUB_AUDIT keeps audit records")
    audit_max_bytes: ByteSize = Field(default=ByteSize(0), description="Byte cap of HUB_AUDIT (0: age only)")
    audit_min_age: Duration = Field(
        default=timedelta(days=30),
        description="The floor of HUB_AUDIT_MAX_AGE: the audit trail is kept at least this long",
    )
    deleted_retention: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        description="How long a deleted connector (and the secrets only it used) stays restorable before it is purged",
    )
    replay_max_age: Duration = Field(
        default=timedelta(days=1), description="How long HUB_REPLAY keeps events replayed to shadow subjects"
    )
    replay_rate: float = Field(
        default=500.0, gt=0, le=100_000, description="Events per second a replay or redrive job sends at most"
    )
    disabled_providers: Annotated[
        tuple[Annotated[str, AfterValidator(_known_type)], ...], NoDecode, BeforeValidator(_comma_separated)
    ] = Field(
        default=(),
        description="Providers and pollers this hub refuses to apply or serve (comma-separated names)",
    )

    @model_validator(mode="after")
    def _audit_floor(self) -> Settings:
        if self.audit_max_age < self.audit_min_age:
            raise ValueError(
                f"HUB_AUDIT_MAX_AGE ({format_duration(self.audit_max_age)}) is below HUB_AUDIT_MIN_AGE "
                f"({format_duration(self.audit_min_age)}): the audit trail cannot be kept shorter than its floor"
            )
        return self

    @property
    def ingress_base_url(self) -> str:
        """Where providers reach this hub's webhooks."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def stream_settings(self) -> StreamSettings:
        """The stream configuration these settings ask for."""
        retention = {
            EVENTS_STREAM: Retention(self.events_max_age.total_seconds(), self.events_max_bytes),
            INVOCATIONS_STREAM: Retention(self.events_max_age.total_seconds(), self.events_max_bytes),
            JOURNEYS_STREAM: Retention(self.journeys_max_age.total_seconds(), self.journeys_max_bytes),
            DLQ_STREAM: Retention(self.dlq_max_age.total_seconds(), self.dlq_max_bytes),
            REJECTED_STREAM: Retention(self.rejected_max_age.total_seconds(), self.rejected_max_bytes),
            AUDIT_STREAM: Retention(self.audit_max_age.total_seconds(), self.audit_max_bytes),
            REPLAY_STREAM: Retention(self.replay_max_age.total_seconds()),
        }
        return StreamSettings(
            replicas=self.stream_replicas,
            duplicate_window_s=self.duplicate_window.total_seconds(),
            retention=tuple(retention.items()),
            rejected_per_connector=self.rejected_per_connector,
        )
