"""Poll sources: enabled poll connectors joined with their poller and resolved credentials.

Built at start-up from validated specs, like the webhook registry; every problem (unknown poller,
bad options, settings the poller cannot use, a missing secret) is collected and reported together.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import ValidationError

from adapters.pollers.base import Poller
from adapters.registry import UnknownPollerError, poller, type_info
from hub.errors import ConfigError, Problem
from hub.ingest.connectors import type_problems
from hub.ingest.redaction import Redaction, build_redaction, poll_hub_field_problems
from hub.ingest.secrets import WITHOUT_STORE, SecretResolutionError, SecretResolver
from hub.poll.store import SourceKey
from schemas.connector import ConnectorDocument
from schemas.loader import LoadedSpec, field_path
from schemas.poll import PollAuth, PollSettings
from schemas.secrets import SecretEntry


@dataclass(frozen=True, slots=True)
class PollSource:
    """One enabled poll connector, ready to run."""

    tenant: str
    name: str
    provider: str
    poller: Poller
    settings: PollSettings
    dedupe_window_s: float
    publish_deadline_s: float
    auth_headers: dict[str, str] = field(repr=False)
    key_id: str | None
    redaction: Redaction | None = None
    """What is redacted or cut from each item before it is published (None: published as read)."""

    @property
    def key(self) -> SourceKey:
        """Its identity in the poll store."""
        return SourceKey(self.tenant, self.name)

    @property
    def label(self) -> str:
        """`tenant/name`, for logs."""
        return f"{self.tenant}/{self.name}"

    @property
    def host(self) -> str:
        """The host of the request URL (the only host credentials go to)."""
        return urlsplit(self.settings.request.url).hostname or ""


def build_sources(
    specs: Iterable[LoadedSpec], *, publish_timeout_s: float, disabled: Collection[str] = ()
) -> list[PollSource]:
    """The enabled poll connectors, or ConfigError listing every problem of every one (`disabled`: the
    types this hub does not serve, HUB_DISABLED_PROVIDERS)."""
    sources: list[PollSource] = []
    problems: list[Problem] = []
    for loaded in specs:
        document = loaded.connector
        if document.spec.type != "poll" or not document.spec.enabled:
            continue
        try:
            sources.append(build_source(document, publish_timeout_s=publish_timeout_s, disabled=disabled))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return sources


def configure_poller(document: ConnectorDocument, disabled: Collection[str] = ()) -> Poller:
    """The poller for a poll connector's spec; errors name the field. A poller retired, `disabled` on
    this hub, or not at the version the spec pins is refused."""
    label = f"{document.metadata.tenant}/{document.metadata.name}"
    settings = document.spec.poll
    assert settings is not None
    try:
        poller_cls = poller(settings.kind)
    except UnknownPollerError as exc:
        raise ConfigError([Problem(label, "spec.poll.kind", str(exc))]) from None
    refused = type_problems(document, type_info("poller", poller_cls), disabled, "spec.poll.kind")
    if refused:
        raise ConfigError(refused)
    problems = [Problem(label, f"spec.poll.{name}", message) for name, message in poller_cls.check_settings(settings)]
    problems += poll_hub_field_problems(document)
    if problems:
        raise ConfigError(problems)
    try:
        return poller_cls.configure(document.spec.provider, settings)
    except ValidationError as exc:
        raise ConfigError(
            [
                Problem(label, "spec.poll.options" + (f".{field_path(e['loc'])}" if e["loc"] else ""), e["msg"])
                for e in exc.errors()
            ]
        ) from None


def build_source(
    document: ConnectorDocument,
    *,
    publish_timeout_s: float,
    resolver: SecretResolver = WITHOUT_STORE,
    disabled: Collection[str] = (),
) -> PollSource:
    """One runtime poll source from its spec (`disabled`: the pollers this hub does not serve)."""
    tenant, name = document.key
    settings = document.spec.poll
    assert settings is not None
    configured = configure_poller(document, disabled)
    headers: dict[str, str] = {}
    key_id = None
    if settings.auth is not None:
        try:
            headers, key_id = _auth_headers(settings.auth, tenant, resolver)
        except SecretResolutionError as exc:
            raise ConfigError([Problem(f"{tenant}/{name}", "spec.poll.auth.secretRef", str(exc))]) from None
    redaction = build_redaction(document, resolver)
    return PollSource(
        tenant=tenant,
        name=name,
        provider=document.spec.provider,
        poller=configured,
        settings=settings,
        dedupe_window_s=settings.dedupeWindow.total_seconds(),
        publish_deadline_s=publish_timeout_s,
        auth_headers=headers,
        key_id=key_id,
        redaction=redaction,
    )


def _auth_headers(auth: PollAuth, tenant: str, resolver: SecretResolver) -> tuple[dict[str, str], str | None]:
    secret = resolver.resolve(tenant, SecretEntry(secretRef=auth.secretRef))
    if secret is None:  # a store secret, resolved once the hub has connected
        return {}, None
    value = secret.value.decode()
    if auth.type == "bearer":
        return {"Authorization": f"Bearer {value}"}, secret.key_id
    if auth.type == "basic":
        token = base64.b64encode(f"{auth.username}:{value}".encode()).decode()
        return {"Authorization": f"Basic {token}"}, secret.key_id
    assert auth.header is not None
    return {auth.header: value}, secret.key_id
