"""Every verb of `connector-hub`, one row each: the parser and the dispatch both iterate this table."""

from __future__ import annotations

from hub.cli import (
    catalog,
    control,
    dlq,
    events,
    explain,
    jobs,
    providerdocs,
    rejected,
    replay,
    restore,
    retention,
    run,
    schemagen,
    sendtest,
    servicemap,
    slo,
    status,
    tail,
    urltoken,
    verify,
)
from hub.cli import validate as validate_verb
from hub.cli.command import Command

COMMANDS: tuple[Command, ...] = (
    run.RUN,
    validate_verb.VALIDATE,
    *control.COMMANDS,
    sendtest.SEND_TEST,
    verify.VERIFY,
    urltoken.URL_TOKEN,
    tail.TAIL,
    status.STATUS,
    *slo.COMMANDS,
    explain.POLICY_EXPLAIN,
    servicemap.SERVICE_MAP_VERIFY,
    providerdocs.PROVIDERS,
    catalog.CATALOG,
    schemagen.SCHEMAS,
    *jobs.COMMANDS,
    replay.REPLAY,
    *dlq.COMMANDS,
    *events.COMMANDS,
    *rejected.COMMANDS,
    *restore.COMMANDS,
    retention.RETENTION,
)

GROUPS = {
    "keys": "admin API keys",
    "secrets": "the write-only secret store",
    "policy": "inspect the gate's policy decisions",
    "service-map": "signed service maps",
    "jobs": "replay and redrive jobs",
    "dlq": "dead letters",
    "events": "stored events and their journeys",
    "rejected": "refused requests kept for diagnosis, and their retry",
    "slo": "connectors' service level objectives",
}
"""Help of the first word of two-word verbs (`keys create`, ...)."""
