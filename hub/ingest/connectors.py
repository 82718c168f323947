"""The running hub's connectors: specs joined with their adapter and resolved secrets.

Built once at start-up from validated specs and frozen. Every problem (unknown provider, bad
provider options, a missing or malformed secret, a replay window the JetStream duplicate window
cannot cover) is collected and reported together, each naming its connector.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import ValidationError

from adapters.base import HandshakeReply, InboundRequest, SigningSecret, Verification, WebhookAdapter
from adapters.lifecycle import TypeInfo
from adapters.registry import UnknownProviderError, type_info, webhook_adapter
from events.streams import DuplicateWindowError, check_duplicate_window
from hub.errors import ConfigError, Problem
from hub.ingest.redaction import Redaction, build_redaction, hub_field_problems
from hub.ingest.secrets import WITHOUT_STORE, SecretResolutionError, SecretResolver
from schemas.connector import DEFAULT_REPLAY_WINDOW, CaptureRejected, ConnectorDocument
from schemas.loader import LoadedSpec, field_path

ANSWER_MARGIN_S = 1.0
ANSWER_MARGIN_SHARE = 0.2
"""A webhook's answer budget (its publish deadline) is the provider's own timeout less a margin for the
rest of the request and the network: the larger of 1 s and a fifth of that timeout (GitHub 10 s: 8 s)."""


def answer_budget_s(provider_timeout_s: float, publish_timeout_s: float, spec_s: float | None = None) -> float:
    """How long a webhook's publish may keep retrying before the sender is answered 503: the spec's
    `answerBudget`, else the provider's timeout less the margin; HUB_PUBLISH_TIMEOUT caps both."""
    margin_s = max(ANSWER_MARGIN_S, provider_timeout_s * ANSWER_MARGIN_SHARE)
    budget_s = spec_s if spec_s is not None else provider_timeout_s - margin_s
    return max(0.5, min(publish_timeout_s, budget_s))


@dataclass(frozen=True, slots=True)
class Connector:
    """One enabled webhook connector, ready to verify and publish."""

    tenant: str
    name: str
    provider: str
    adapter: WebhookAdapter  # type: ignore[type-arg]
    secrets: tuple[SigningSecret, ...]
    replay_window_s: float
    dedupe_window_s: float
    max_body_bytes: int
    publish_deadline_s: float
    shadow: bool = False
    """Verification failures are counted and logged, and the event accepted unverified (onboarding)."""
    capture_body_bytes: int | None = None
    """How much of a refused request's body is kept with it (None: refused requests are not kept)."""
    redaction: Redaction | None = None
    """What is redacted or cut from each event's data (None: the data is embedded as received)."""

    @property
    def label(self) -> str:
        """`tenant/name`, for logs."""
        return f"{self.tenant}/{self.name}"

    def verify(self, request: InboundRequest) -> Verification:
        """Verify with this connector's own secrets only (never another connector's)."""
        return self.adapter.verify(request, self.secrets)

    def handshake(self, request: InboundRequest) -> HandshakeReply | None:
        """The provider's handshake reply for a verified request, or None."""
        return self.adapter.handshake(request, self.secrets)


class ConnectorRegistry:
    """Enabled webhook connectors by (tenant, name); read-only once built."""

    def __init__(self, connectors: Iterable[Connector]) -> None:
        self._by_key: Mapping[tuple[str, str], Connector] = MappingProxyType(
            {(c.tenant, c.name): c for c in connectors}
        )

    def get(self, tenant: str, name: str) -> Connector | None:
        """The connector at that path, or None."""
        return self._by_key.get((tenant, name))

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Connector]:
        return iter(self._by_key.values())

    def in_shadow_mode(self) -> list[str]:
        """Labels of the connectors that accept unverified requests (onboarding only)."""
        return sorted(c.label for c in self._by_key.values() if c.shadow)


def configure_adapter(
    document: ConnectorDocument,
    disabled: Collection[str] = (),
) -> WebhookAdapter:  # type: ignore[type-arg]
    """The provider's adapter configured with the spec's options; errors name the field. A provider
    retired, `disabled` on this hub, or not at the version the spec pins is refused."""
    label = f"{document.metadata.tenant}/{document.metadata.name}"
    try:
        adapter_cls = webhook_adapter(document.spec.provider)
    except UnknownProviderError as exc:
        raise ConfigError([Problem(label, "spec.provider", str(exc))]) from None
    refused = type_problems(document, type_info("provider", adapter_cls), disabled, "spec.provider")
    if refused:
        raise ConfigError(refused)
    try:
        return adapter_cls.configure(document.spec.webhook_settings.options)
    except ValidationError as exc:
        raise ConfigError([Problem(label, _options_field(e["loc"]), e["msg"]) for e in exc.errors()]) from None


def type_problems(
    document: ConnectorDocument, info: TypeInfo, disabled: Collection[str], type_field: str
) -> list[Problem]:
    """Why the hub does not serve this spec's type (retired, disabled, another version), each naming
    the spec field: `type_field` for the type itself, `spec.typeVersion` for the pin."""
    label = f"{document.metadata.tenant}/{document.metadata.name}"
    fields = {"type": type_field, "version": "spec.typeVersion"}
    refused = info.refusals(document.spec.typeVersion, disabled)
    return [Problem(label, fields[what], message) for what, message in refused]


def _options_field(loc: tuple[int | str, ...]) -> str:
    """`spec.webhook.options.<field>`, or the options as a whole for a cross-field rule."""
    return "spec.webhook.options" + (f".{field_path(loc)}" if loc else "")


def build_connector(
    document: ConnectorDocument,
    *,
    publish_timeout_s: float,
    claim_ttl_s: float,
    duplicate_window_s: float,
    resolver: SecretResolver = WITHOUT_STORE,
    disabled: Collection[str] = (),
) -> Connector:
    """One runtime connector from its spec, or ConfigError listing what is wrong with it (`disabled`:
    the providers this hub does not serve, HUB_DISABLED_PROVIDERS)."""
    tenant, name = document.key
    adapter = configure_adapter(document, disabled)
    settings = document.spec.webhook_settings
    problems: list[Problem] = []
    secrets = _secrets(document, adapter, resolver, problems)
    problems += serving_problems(document, adapter, claim_ttl_s=claim_ttl_s, duplicate_window_s=duplicate_window_s)
    redaction = None
    try:
        redaction = build_redaction(document, resolver)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return Connector(
        tenant=tenant,
        name=name,
        provider=document.spec.provider,
        adapter=adapter,
        secrets=tuple(secrets),
        replay_window_s=replay_window_s(document, adapter),
        dedupe_window_s=settings.dedupeWindow.total_seconds(),
        max_body_bytes=settings.maxBodyBytes,
        publish_deadline_s=answer_budget_s(
            adapter.scheme.delivery_timeout_s,
            publish_timeout_s,
            settings.answerBudget.total_seconds() if settings.answerBudget is not None else None,
        ),
        shadow=settings.verification == "shadow",
        capture_body_bytes=_capture_body_bytes(settings.captureRejected, redaction),
        redaction=redaction,
    )


def _capture_body_bytes(capture: CaptureRejected, redaction: Redaction | None) -> int | None:
    """How much of a refused request's body is kept: none at all for a connector with redaction rules,
    since the body holds what they hide and redacting it would break the signature a retry checks."""
    if not capture.enabled:
        return None
    return 0 if redaction is not None and redaction.rules else capture.maxBodyBytes


def replay_window_s(document: ConnectorDocument, adapter: WebhookAdapter) -> float:  # type: ignore[type-arg]
    """The connector's replay window: the spec's, else the provider's, else the default."""
    window = document.spec.webhook_settings.replayWindow
    if window is not None:
        return window.total_seconds()
    return adapter.replay_window_s or DEFAULT_REPLAY_WINDOW.total_seconds()


def serving_problems(
    document: ConnectorDocument,
    adapter: WebhookAdapter,  # type: ignore[type-arg]
    *,
    claim_ttl_s: float,
    duplicate_window_s: float,
) -> list[Problem]:
    """What stops every instance with these settings from serving a webhook connector, whatever its
    secrets resolve to: no secret at all, a replay window the duplicate window cannot cover, or a
    redaction rule on a field the event's id, type or time is read from (hub/ingest/redaction.py).
    `build_connector` refuses these, and every apply checks them first (hub/control/checks.py)."""
    label = f"{document.metadata.tenant}/{document.metadata.name}"
    problems: list[Problem] = []
    if not document.spec.secrets:
        problems.append(
            Problem(label, "spec.secrets", f"a {document.spec.provider} connector needs at least one secret")
        )
    replay_s = replay_window_s(document, adapter)
    signed_id = adapter.scheme.dedupe_key_signed
    try:
        # A replay of a request whose dedupe key is signed carries the same key: the done mark in Valkey
        # (dedupeWindow) refuses it, so JetStream's window need not cover the replay window.
        check_duplicate_window(duplicate_window_s, claim_ttl_s, 0.0 if signed_id else replay_s)
    except DuplicateWindowError as exc:
        problems.append(Problem(label, "spec.webhook.replayWindow", str(exc)))
    budget = document.spec.webhook_settings.answerBudget
    if budget is not None and budget.total_seconds() >= adapter.scheme.delivery_timeout_s:
        problems.append(
            Problem(
                label,
                "spec.webhook.answerBudget",
                f"the answer budget ({budget.total_seconds():g}s) must be below {document.spec.provider}'s own "
                f"timeout ({adapter.scheme.delivery_timeout_s:g}s): the sender would give up first",
            )
        )
    dedupe_s = document.spec.webhook_settings.dedupeWindow.total_seconds()
    if signed_id and dedupe_s <= replay_s:
        problems.append(
            Problem(
                label,
                "spec.webhook.dedupeWindow",
                f"the dedupe window ({dedupe_s:.0f}s) must exceed the replay window ({replay_s:.0f}s): "
                "a replay within it would not be recognised",
            )
        )
    return problems + hub_field_problems(document, adapter, time.time())


def build_registry(
    specs: Iterable[LoadedSpec],
    *,
    publish_timeout_s: float,
    claim_ttl_s: float,
    duplicate_window_s: float,
    disabled: Collection[str] = (),
) -> tuple[ConnectorRegistry, list[str]]:
    """The registry of enabled webhook connectors, and notes about the specs it leaves out.

    Raises ConfigError listing every problem of every connector.
    """
    connectors: list[Connector] = []
    problems: list[Problem] = []
    notes: list[str] = []
    for loaded in specs:
        document = loaded.connector
        label = f"{document.metadata.tenant}/{document.metadata.name}"
        if not document.spec.enabled:
            notes.append(f"connector {label} is disabled")
            continue
        if document.spec.type != "webhook":
            continue  # poll sources are the poller role's (hub/poll/sources.py)
        if document.spec.webhook_settings.verification == "shadow":
            notes.append(
                f"connector {label} is in SHADOW verification mode: requests that fail verification are accepted"
            )
        try:
            connectors.append(
                build_connector(
                    document,
                    publish_timeout_s=publish_timeout_s,
                    claim_ttl_s=claim_ttl_s,
                    duplicate_window_s=duplicate_window_s,
                    disabled=disabled,
                )
            )
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return ConnectorRegistry(connectors), notes


def _secrets(
    document: ConnectorDocument,
    adapter: WebhookAdapter,  # type: ignore[type-arg]
    resolver: SecretResolver,
    problems: list[Problem],
) -> list[SigningSecret]:
    label = f"{document.metadata.tenant}/{document.metadata.name}"
    secrets = []
    for index, entry in enumerate(document.spec.secrets):
        try:
            secret = resolver.resolve(document.metadata.tenant, entry)
            if secret is not None:  # None: a store secret, checked once the hub has connected
                adapter.check_secret(secret)
                secrets.append(secret)
        except (SecretResolutionError, ValueError) as exc:
            problems.append(Problem(label, f"spec.secrets[{index}]", f"{entry.key_id}: {exc}"))
    return secrets
