"""Requests the ingress refused and kept (hub/ingress/rejected.py): list them, show one, retry one.

Listing reads HUB_REJECTED with batched direct gets (a connector's subject, a tenant's, or every
tenant's for an operator), newest first, filtered by reason and time of receipt, paged by stream
sequence: `cursor` is the sequence the next page starts below. The stream keeps at most
`HUB_REJECTED_PER_CONNECTOR` records per connector, so a listing reads a bounded number of records.

A retry re-verifies a kept request with the connector as it is served NOW (its current secrets and
spec), judging the replay window against the time the request was received, not the time of the
retry. A request that now verifies goes through the live path's own steps (handler.envelopes_for,
then Ingestor.ingest: dedupe claim, publish with PubAck, done mark), each envelope carrying
`hubrecoveredat` (the retry time); a second retry of it is a duplicate and publishes nothing.

The function a bulk job calls per record:

    async def retry(path: RetryPath, connector: Connector, kept: KeptRequest, audit: RetryAudit)
        -> RetryResult

`path` comes from `retry_path(nc, redis, settings)` (an async context manager: enter it once for a
whole job; it waits for the done marks at exit), `connector` is the connector as currently deployed
(the caller builds it with its current secrets, and checks the caller's tenant reaches it), `kept`
comes from `show` or `list_kept`, and `audit` receives one record per retry, outcome `recovered`,
`still_refused` or `duplicate` (`unavailable` when it raises). A 409 (another delivery of the same
event in flight) or an unavailable bus or key server raises the ingest path's own RequestRejected
(ClaimHeld, PublishUnavailable), after which the retry can be attempted again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import nats.errors
import orjson
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from adapters.base import InboundRequest
from adapters.errors import RequestRejected
from events.directget import HistoryUnavailable, direct_get
from events.envelope import rfc3339
from events.streams import REJECTED_STREAM
from events.subjects import REJECTED_PREFIX, rejected_subject
from hub.errors import ClaimHeld
from hub.ingest.connectors import Connector
from hub.ingest.dedupe import DedupeStore
from hub.ingest.ingestor import Ingestor
from hub.ingest.keycache import KeyCache
from hub.ingest.metrics import IngestMetrics
from hub.ingest.publisher import Publisher
from hub.ingress.handler import check_replay_window, envelopes_for, request_replay_key
from hub.ingress.rejected import RejectedRecord
from hub.ingress.responses import status_of
from hub.settings import Settings

BATCH = 256
"""Records asked for per direct get."""
SCAN_WINDOW = 2_048
"""Stream sequences a listing reads at a time, newest first."""
SCAN_LIMIT = 16_384
"""Stream sequences one listing call looks at, at most."""
MAX_LIMIT = 200
AUDIT_ACTION = "rejected_retry"


@dataclass(frozen=True, slots=True)
class KeptRequest:
    """One kept request and its stream sequence."""

    seq: int
    record: RejectedRecord

    def summary(self) -> dict[str, Any]:
        """What a listing shows."""
        return {"seq": self.seq, **self.record.summary()}

    def to_dict(self) -> dict[str, Any]:
        """Everything kept: the summary, the refusal's detail, the headers and the body (base64)."""
        record = self.record
        return {
            **self.summary(),
            "detail": record.detail,
            "url": record.url,
            "headers": [[name, value] for name, value in record.headers],
            "withheldHeaders": record.withheld,
            "bodyBase64": orjson.loads(record.to_json())["body"],
            "retryable": record.body_complete,
        }


@dataclass(frozen=True, slots=True)
class Query:
    """Which kept requests to list: a tenant (None: every tenant, operators only), a connector of it,
    a reason, a window of receipt times, and the page."""

    tenant: str | None = None
    connector: str | None = None
    reason: str | None = None
    since: float | None = None
    until: float | None = None
    cursor: int | None = None
    limit: int = 50

    def subject(self) -> str:
        """The subject filter the query reads."""
        if self.tenant is None:
            return f"{REJECTED_PREFIX}.>"
        if self.connector is None:
            return f"{rejected_subject(self.tenant, 'x').rsplit('.', 1)[0]}.*"
        return rejected_subject(self.tenant, self.connector)

    def admits(self, kept: KeptRequest) -> bool:
        """Whether a record passes the reason and time filters and lies below the cursor."""
        record = kept.record
        return (
            (self.cursor is None or kept.seq < self.cursor)
            and (self.reason is None or self.reason in (record.reason, record.error))
            and (self.since is None or record.received_at >= self.since)
            and (self.until is None or record.received_at < self.until)
        )


@dataclass(frozen=True, slots=True)
class Page:
    """Kept requests, newest first, and the cursor of the next page (None: no more)."""

    items: list[KeptRequest]
    next_cursor: int | None


async def _window(nc: NATS, query: Query, lower: int, upper: int) -> list[KeptRequest]:
    """The kept requests on the query's subjects with a sequence in [lower, upper), oldest first."""
    kept: list[KeptRequest] = []
    seq = lower
    while seq < upper:
        found = await direct_get(nc, REJECTED_STREAM, seq=seq, subject=query.subject(), batch=BATCH)
        inside = [stored for stored in found if stored.sequence < upper]
        for stored in inside:
            with contextlib.suppress(ValueError):  # not a record: nothing to show
                kept.append(KeptRequest(stored.sequence, RejectedRecord.from_json(stored.data)))
        if len(inside) < len(found) or len(found) < BATCH:
            return kept
        seq = found[-1].sequence + 1
    return kept


async def _upper_bound(nc: NATS, query: Query) -> int:
    """Where a page starts below: the cursor, else one past the stream's last sequence."""
    if query.cursor is not None:
        return query.cursor
    try:
        state = (await nc.jetstream().stream_info(REJECTED_STREAM)).state
    except (nats.errors.Error, TimeoutError) as exc:
        raise HistoryUnavailable(f"HUB_REJECTED could not be read: {type(exc).__name__}") from None
    return int(state.last_seq) + 1


async def list_kept(nc: NATS, query: Query) -> Page:
    """A page of kept requests, newest first.

    The stream is read backwards in windows of SCAN_WINDOW sequences, each read forward with the
    query's subject filter (done by the server), until the page is full, the stream's start or the
    `since` time is reached, or SCAN_LIMIT sequences were looked at: a page can then come back short,
    with a cursor to go on. Memory and time per call stay bounded whatever the stream holds.
    """
    limit = max(1, min(query.limit, MAX_LIMIT))
    upper = await _upper_bound(nc, query)
    admitted: list[KeptRequest] = []
    scanned = 0
    reached_since = False
    while upper > 1 and len(admitted) <= limit and scanned < SCAN_LIMIT and not reached_since:
        lower = max(1, upper - SCAN_WINDOW)
        window = await _window(nc, query, lower, upper)
        admitted.extend(k for k in reversed(window) if query.admits(k))
        scanned += upper - lower
        upper = lower
        reached_since = bool(window) and query.since is not None and window[0].record.received_at < query.since
    if len(admitted) > limit:
        return Page(admitted[:limit], admitted[limit - 1].seq)
    unread = upper > 1 and not reached_since  # stopped at the scan limit: go on below where it stopped
    return Page(admitted, upper if unread else None)


async def show(nc: NATS, tenant: str, connector: str, seq: int) -> KeptRequest | None:
    """The kept request at `seq` if it is this connector's, else None (as for a missing one)."""
    if seq < 1:
        return None
    found = await direct_get(nc, REJECTED_STREAM, seq=seq, subject=rejected_subject(tenant, connector), batch=1)
    if found and found[0].sequence == seq:
        with contextlib.suppress(ValueError):
            return KeptRequest(seq, RejectedRecord.from_json(found[0].data))
    return None


@dataclass(frozen=True, slots=True)
class RetryPath:
    """The live ingest path's parts a retry publishes through."""

    ingestor: Ingestor
    keys: KeyCache


@contextlib.asynccontextmanager
async def retry_path(nc: NATS, redis: Redis, settings: Settings) -> AsyncIterator[RetryPath]:
    """An ingest path on the hub's connections; at exit its done marks are written (so a second
    retry finds them) and its key cache closed."""
    metrics = IngestMetrics()
    claim_ttl_s = settings.claim_ttl.total_seconds()
    publisher = Publisher(nc, metrics, duplicate_window_s=settings.duplicate_window.total_seconds())
    ingestor = Ingestor(
        DedupeStore(redis, metrics, claim_ttl_s=claim_ttl_s), publisher, metrics, claim_ttl_s=claim_ttl_s
    )
    path = RetryPath(ingestor, KeyCache.from_settings(settings))
    try:
        yield path
    finally:
        await ingestor.drain(settings.store_timeout.total_seconds())
        await path.keys.close()


class AuditSink(Protocol):
    """Where audit records go (hub.control.audit.AuditLog)."""

    async def record(
        self,
        *,
        tenant: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str | None,
        key_id: str | None,
        started: float,
        detail: Mapping[str, object] | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryAudit:
    """Who retries (an API key or the CLI) and where the audit record goes."""

    sink: AuditSink
    key_id: str | None
    request_id: str | None = None
    started: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryResult:
    """What a retry did: `recovered` (events published), `still_refused` (with the refusal), or
    `duplicate` (already delivered: nothing published)."""

    outcome: str
    seq: int
    error: str | None = None
    reason: str | None = None
    detail: str | None = None
    ids: tuple[str, ...] = ()
    recovered_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The answer's JSON."""
        answer: dict[str, Any] = {"outcome": self.outcome, "seq": self.seq, "ids": list(self.ids)}
        if self.error is not None:
            answer |= {"error": self.error, "reason": self.reason, "detail": self.detail}
        if self.recovered_at is not None:
            answer["recoveredAt"] = self.recovered_at
        return answer


def _inbound(record: RejectedRecord) -> InboundRequest:
    """The kept request as the ingress read it, received when it was received."""
    return InboundRequest(
        method=record.method,
        url=record.url,
        headers=record.headers,
        body=record.body,
        received_at=record.received_at,
        query=dict(parse_qsl(urlsplit(record.url).query, keep_blank_values=True)),
    )


async def _attempt(path: RetryPath, connector: Connector, kept: KeptRequest) -> RetryResult:
    record = kept.record
    if not record.body_complete:
        return RetryResult("still_refused", kept.seq, "not_retryable", "body_not_kept", "the body was not kept whole")
    inbound = _inbound(record)
    try:
        urls = connector.adapter.key_urls(inbound)
        if urls:
            inbound.keys = await path.keys.fetch_all(urls)
        verification = connector.verify(inbound)
        check_replay_window(verification.signed_at, inbound.received_at, connector.replay_window_s)
        if connector.handshake(inbound) is not None or connector.adapter.confirmation_url(inbound) is not None:
            return RetryResult(
                "still_refused", kept.seq, "not_retryable", "handshake", "a handshake is answered live, not retried"
            )
        recovered_at = rfc3339(time.time())
        envelopes = [replace(e, hubrecoveredat=recovered_at) for e in envelopes_for(connector, inbound, verification)]
        result = await path.ingestor.ingest(connector, envelopes, request_replay_key(connector, verification))
    except RequestRejected as refusal:
        if isinstance(refusal, ClaimHeld) or not 400 <= status_of(refusal) < 500:
            raise  # in flight elsewhere, or the bus or a key server is unavailable: try again later
        return RetryResult("still_refused", kept.seq, refusal.category, refusal.reason, refusal.detail)
    if result.accepted:
        return RetryResult("recovered", kept.seq, ids=tuple(result.accepted), recovered_at=recovered_at)
    return RetryResult("duplicate", kept.seq, ids=tuple(result.duplicates))


async def retry(path: RetryPath, connector: Connector, kept: KeptRequest, audit: RetryAudit) -> RetryResult:
    """Re-verify a kept request with the connector as served now and, if it verifies, ingest it;
    audited whatever the outcome (see the module docstring)."""
    record = kept.record
    if (record.tenant, record.connector) != (connector.tenant, connector.name):
        raise ValueError("the kept request is not this connector's")
    started = audit.started or time.perf_counter()
    try:
        result = await _attempt(path, connector, kept)
    except RequestRejected as exc:
        await _audit(audit, connector, kept, "unavailable", started, {"seq": kept.seq, "reason": exc.reason})
        raise
    detail: dict[str, object] = {"seq": kept.seq, "events": len(result.ids)}
    if result.reason is not None:
        detail["reason"] = result.reason
    await _audit(audit, connector, kept, result.outcome, started, detail)
    return result


async def _audit(
    audit: RetryAudit, connector: Connector, kept: KeptRequest, outcome: str, started: float, detail: dict[str, object]
) -> None:
    await audit.sink.record(
        tenant=connector.tenant,
        action=AUDIT_ACTION,
        target=f"{connector.label}#{kept.seq}",
        outcome=outcome,
        request_id=audit.request_id,
        key_id=audit.key_id,
        started=started,
        detail=detail,
    )
