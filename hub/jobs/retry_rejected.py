"""Retry rejected: kept requests (HUB_REJECTED) re-verified with their connector's current secrets and,
when they now verify, ingested through the live path (hub/history/rejected.py `retry`), in bulk.

The job walks the matching kept requests newest first, a page per step, the checkpoint being the
sequence the next page starts below. A page retried again after a crash publishes nothing twice: a
request already recovered is a duplicate for the dedupe store and for JetStream. Each retry is audited
by `retry` itself. Done counts the recovered and the duplicates, failed the requests still refused or
whose connector is not served now; the result gives each outcome's count.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hub.control.audit import AuditLog
from hub.control.served_connector import NotServed, SecretStoreUnavailable, current_connector
from hub.history.rejected import KeptRequest, Query, RetryAudit, RetryPath, list_kept, retry, retry_path
from hub.ingest.connectors import Connector
from hub.jobs.kind import JobContext, JobServices, Step
from hub.jobs.store import Job, JobStore

KIND = "retry-rejected"
FILTER_FIELDS = ("connector", "reason", "since", "until")
DONE = ("recovered", "duplicate")


class RetryUnavailable(Exception):
    """This runner cannot retry kept requests (no master key or Valkey to act with)."""


async def start(store: JobStore, tenant: str | None, where: dict[str, Any], *, created_by: str | None) -> Job:
    """A job retrying every kept request of `tenant` (None: every tenant, operators only) that matches
    `where` (`connector`, `reason`, `since`, `until`: as `GET /v1/rejected` takes them)."""
    params = {key: value for key, value in where.items() if key in FILTER_FIELDS and value is not None}
    return await store.create(KIND, tenant, params, created_by=created_by)


class RetryRejected:
    """The `retry-rejected` job kind."""

    name = KIND

    async def step(self, job: Job, context: JobContext) -> Step:
        services = context.services
        if services is None:
            raise RetryUnavailable("this runner has no secret store or dedupe store to retry with")
        query = Query(
            tenant=job.tenant,
            connector=job.params.get("connector"),
            reason=job.params.get("reason"),
            since=job.params.get("since"),
            until=job.params.get("until"),
            cursor=job.checkpoint.get("cursor"),
            limit=min(context.batch_size, 200),
        )
        page = await list_kept(context.nc, query)
        step: Counter[str] = Counter()
        async with retry_path(context.nc, services.redis, services.settings) as path:
            connectors: dict[tuple[str, str], Connector | None] = {}
            for kept in page.items:
                await context.pacer.take()
                step[await _retry_one(context, services, path, connectors, kept, job)] += 1
        outcomes = Counter(job.checkpoint.get("outcomes", {})) + step
        done = sum(step[outcome] for outcome in DONE)
        finished = page.next_cursor is None
        return Step(
            {"cursor": page.next_cursor, "outcomes": dict(outcomes)},
            done=done,
            failed=len(page.items) - done,
            finished=finished,
            result=dict(outcomes) if finished else None,
        )


async def _retry_one(
    context: JobContext,
    services: JobServices,
    path: RetryPath,
    connectors: dict[tuple[str, str], Connector | None],
    kept: KeptRequest,
    job: Job,
) -> str:
    """The outcome of one kept request: recovered, duplicate, still_refused or not_served."""
    key = (kept.record.tenant, kept.record.connector)
    if key not in connectors:
        try:
            connectors[key] = await current_connector(services.plane, context.nc, services.settings, *key)
        except (NotServed, SecretStoreUnavailable):
            connectors[key] = None
    connector = connectors[key]
    if connector is None:
        return "not_served"
    audit = RetryAudit(AuditLog(context.nc.jetstream()), job.created_by, f"job/{job.id}")
    return (await retry(path, connector, kept, audit)).outcome
