"""What every apply checks before it stores a document, for the CLI and the admin API alike.

The models are checked when a document is parsed; here come the provider's and the poller's own
options, and the store secrets a connector references (they must exist, or the connector would be
stored only to fail on every instance). `env` and `file` secrets are checked by each instance when
it loads the connector: they live on the instances, not where the apply runs.
"""

from __future__ import annotations

from collections.abc import Collection

from hub.errors import ConfigError, Problem
from hub.ingest.connectors import configure_adapter
from hub.ingest.secrets import store_secrets_of
from hub.poll.sources import configure_poller
from schemas.connector import ConnectorDocument


def check_connector(document: ConnectorDocument, stored_secrets: Collection[str] | None) -> list[Problem]:
    """Every problem of a connector document; `stored_secrets` are its tenant's secret names
    (None: the store is not checked)."""
    problems: list[Problem] = []
    try:
        if document.spec.type == "webhook":
            configure_adapter(document)
        else:
            configure_poller(document)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if stored_secrets is not None:
        label = "/".join(document.key)
        for name in sorted(store_secrets_of(document) - set(stored_secrets)):
            problems.append(
                Problem(label, "secretRef", f"secret {name} is not in the store: set it first (`secrets set`)")
            )
    return problems
