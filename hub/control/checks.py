"""What every apply checks before it stores a document, for the CLI and the admin API alike.

The models are checked when a document is parsed; here come the type itself (retired, disabled on
this hub, or pinned to a version it does not serve: refused; deprecated: a warning; see
adapters/lifecycle.py), the provider's and the poller's own options, what stops every instance from
serving a webhook connector (no secret, a replay window the duplicate window cannot cover:
`serving_problems`, which the serving build runs too), and the store secrets a connector references
(they must exist and be readable, or the connector would be stored only to fail on every instance).
`env` and `file` secrets are checked by each instance when it loads the connector: they live on the
instances, not where the apply runs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from adapters.registry import poller, type_info, webhook_adapter
from hub.errors import ConfigError, Problem
from hub.ingest.connectors import configure_adapter, serving_problems
from hub.ingest.secrets import store_secrets_of
from hub.poll.sources import configure_poller
from hub.settings import Settings
from schemas.connector import ConnectorDocument


@dataclass(frozen=True, slots=True)
class ServingLimits:
    """The settings a webhook connector is served under, taken from the settings of the process that
    checks (the CLI's own; the hub's for its admin API): instances run with the same settings, so what
    these refuse no instance would serve."""

    duplicate_window_s: float
    claim_ttl_s: float
    disabled: tuple[str, ...] = ()
    """The providers and pollers the hub refuses (HUB_DISABLED_PROVIDERS)."""

    @classmethod
    def of(cls, settings: Settings) -> ServingLimits:
        """The limits these settings set."""
        return cls(
            settings.duplicate_window.total_seconds(), settings.claim_ttl.total_seconds(), settings.disabled_providers
        )


@dataclass(frozen=True, slots=True)
class StoreView:
    """What the checking process knows of the secret store: the tenant's secret names, and whether it
    has a master key (without one, no secret in the store can be read)."""

    names: Collection[str]
    readable: bool


def check_connector(
    document: ConnectorDocument, limits: ServingLimits | None, store: StoreView | None
) -> list[Problem]:
    """Every problem of a connector document. `limits` None: what stops it being served is left to
    the instances' build (the hub's start-up apply of its own files); `store` None: its store secrets
    are not checked (`validate`, which needs no bus)."""
    problems: list[Problem] = []
    disabled = limits.disabled if limits is not None else ()
    try:
        if document.spec.type == "webhook":
            adapter = configure_adapter(document, disabled)
            if limits is not None:
                problems.extend(
                    serving_problems(
                        document, adapter, claim_ttl_s=limits.claim_ttl_s, duplicate_window_s=limits.duplicate_window_s
                    )
                )
        else:
            configure_poller(document, disabled)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if store is not None:
        problems.extend(_store_problems(document, store))
    return problems


def lifecycle_warnings(document: ConnectorDocument) -> list[str]:
    """What an apply of this document should tell, without refusing it: its type is deprecated (with
    the date and the replacement). Nothing for an unknown type: the checks refuse that."""
    try:
        if document.spec.type == "webhook":
            info = type_info("provider", webhook_adapter(document.spec.provider))
        else:
            assert document.spec.poll is not None
            info = type_info("poller", poller(document.spec.poll.kind))
    except LookupError:
        return []
    return [f"connector {'/'.join(document.key)}: {warning}" for warning in info.warnings()]


def _store_problems(document: ConnectorDocument, store: StoreView) -> list[Problem]:
    label = "/".join(document.key)
    refs = {f"spec.secrets[{index}]": entry.secretRef for index, entry in enumerate(document.spec.secrets)}
    if document.spec.poll is not None and document.spec.poll.auth is not None:
        refs["spec.poll.auth.secretRef"] = document.spec.poll.auth.secretRef
    problems: list[Problem] = []
    if not store.readable:
        problems.extend(
            Problem(
                label,
                where,
                f"store secret {ref.name} cannot be read: HUB_MASTER_KEY (or HUB_MASTER_KEY_FILE) is not set here",
            )
            for where, ref in refs.items()
            if ref.source == "store"
        )
    for name in sorted(store_secrets_of(document) - set(store.names)):
        problems.append(Problem(label, "secretRef", f"secret {name} is not in the store: set it first (`secrets set`)"))
    return problems
