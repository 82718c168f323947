"""The one place events enter the bus: envelope, dedupe claim, publish with PubAck, done mark.

Webhooks and pollers hand over normalized events; `Ingestor.ingest` returns only after
every new event is acknowledged by JetStream, so a 2xx built on its result means "durably in the
stream". If any publish fails, every claim of the request is released before the error reaches
the sender, so the sender's retry can deliver.

The `done` mark is written after `ingest` returns, in its own task, not before the answer: if the
process dies between the PubAck and the mark, the claim expires after the claim TTL and a
redelivery publishes again under the same `Nats-Msg-Id`, which JetStream's duplicate window
(longer than the claim TTL, docs/design.md §3) drops and the hub answers as a duplicate. Within a process
the mark is queued before anything that process reads next, so a sender's redelivery after the
answer finds it; one that reaches another process within the mark's round trip finds the claim
still held and gets 409 with Retry-After, as for any delivery in flight.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from adapters.base import NormalizedEvent, Verification
from events.envelope import Envelope, rfc3339
from events.subjects import event_subject
from hub.errors import ClaimHeld, PublishUnavailable
from hub.ingest.dedupe import Claim, DedupeStore, dedupe_key
from hub.ingest.metrics import IngestMetrics
from hub.ingest.publisher import Publisher
from hub.ingest.redaction import Redaction
from hub.runtime import tracing
from hub.runtime.background import Background
from hub.runtime.settled import all_settled

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[\x21-\x7e]{1,200}")
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ALL_ZERO_ID = re.compile(r"^00-0{32}-|-0{16}-")  # W3C: an all-zero trace-id or parent-id is invalid


class EventSource(Protocol):
    """Where events come from: a webhook connector, or a poll source."""

    @property
    def tenant(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def dedupe_window_s(self) -> float: ...
    @property
    def publish_deadline_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the edge established about one request, shared by all the events it carries."""

    verification: Verification
    received_at: float
    body_sha256: str
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Ids accepted now and ids already delivered before."""

    accepted: list[str]
    duplicates: list[str]


def replay_key(tenant: str, connector: str, signature: bytes) -> str:
    """`dd:{tenant}:{connector}:sig:<sha256 of the signature>`: a request's signature as a dedupe key."""
    return f"dd:{tenant}:{connector}:sig:{hashlib.sha256(signature).hexdigest()}"


def safe_event_id(raw: str) -> str:
    """The id as given when it is printable ASCII of at most 200 characters, else `sha256:<hex>`.

    The id becomes a Valkey key and a `Nats-Msg-Id` header, so it must not carry control characters.
    """
    if _SAFE_ID.fullmatch(raw):
        return raw
    return "sha256:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def traceparent_for(incoming: str | None) -> str:
    """The caller's W3C traceparent when well-formed, else a new trace."""
    if incoming and _TRACEPARENT.fullmatch(incoming) and not _ALL_ZERO_ID.search(incoming):
        return incoming
    ids = secrets.token_hex(24)  # one read of the system's randomness for both ids
    return f"00-{ids[:32]}-{ids[32:]}-01"


def build_envelope(
    connector: EventSource, event: NormalizedEvent, provenance: Provenance, redaction: Redaction | None = None
) -> Envelope:
    """The canonical envelope of one event (docs/design.md §4); with the connector's `redaction`, its
    data redacted and cut (the id, type, time and subject are the event's, from the original payload)."""
    if redaction is not None:
        redacted = redaction.apply(event.data)
        return replace(build_envelope(connector, replace(event, data=redacted.data), provenance), **redacted.attributes)
    received = rfc3339(provenance.received_at)
    return Envelope(
        id=safe_event_id(event.id),
        source=f"hub://{connector.tenant}/{connector.name}",
        type=event.type,
        time=rfc3339(event.time) if event.time else received,
        subject=event.subject,
        datacontenttype=event.datacontenttype,
        data=event.data,
        hubtenant=connector.tenant,
        hubconnector=connector.name,
        hubprovider=connector.provider,
        hubreceivedat=received,
        hubverified=provenance.verification.scheme,
        hubkeyid=provenance.verification.key_id,
        hubbodysha256=provenance.body_sha256,
        traceparent=provenance.traceparent,
    )


class Ingestor:
    """Claims, publishes and marks events, in that order, for one request at a time."""

    def __init__(
        self, dedupe: DedupeStore, publisher: Publisher, metrics: IngestMetrics, *, claim_ttl_s: float
    ) -> None:
        self._dedupe = dedupe
        self._publisher = publisher
        self._metrics = metrics
        self._retry_after_s = max(1, round(claim_ttl_s / 10))
        self._token_prefix = secrets.token_hex(12)  # per process; a counter makes each request's token unique
        self._token_counter = itertools.count()
        self._marking = Background()

    async def ingest(
        self, connector: EventSource, envelopes: Sequence[Envelope], replay_key: str | None = None
    ) -> IngestResult:
        """Publish the envelopes not delivered before; raise ClaimHeld or PublishUnavailable.

        `replay_key` (a request's signature, where the provider signs no timestamp) is claimed
        with the events: a request whose signature was already delivered is a replay, whatever
        delivery id it now carries, and publishes nothing.
        """
        envelopes = list({e.id: e for e in envelopes}.values())  # one event twice in a batch is one event
        keys = [dedupe_key(connector.tenant, connector.name, e.id) for e in envelopes]
        token = f"{self._token_prefix}{next(self._token_counter):x}"
        all_keys = [*keys, replay_key] if replay_key else keys
        with tracing.span("claim", events=len(envelopes)):
            claims = await self._dedupe.claim(all_keys, token)
        ours = [key for key, claim in zip(all_keys, claims, strict=True) if claim.ours]
        if Claim.HELD in claims:
            await self._dedupe.release(ours, token)
            raise ClaimHeld(self._retry_after_s)
        if replay_key and claims[-1] is Claim.DONE:
            await self._dedupe.release(ours, token)
            if any(claim is not Claim.DONE for claim in claims[: len(envelopes)]):  # seen under another id
                self._metrics.replays.labels(connector.tenant, connector.name).inc()
            return IngestResult(accepted=[], duplicates=[e.id for e in envelopes])
        claims = claims[: len(envelopes)]
        fresh = [(e, key, c) for e, key, c in zip(envelopes, keys, claims, strict=True) if c is not Claim.DONE]
        results = await all_settled([self._publish(connector, e, key, c) for e, key, c in fresh])
        await self._settle_claims(connector, token, ours, replay_key, fresh, results)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure
        jetstream_duplicates = {e.id for (e, _, _), duplicate in zip(fresh, results, strict=True) if duplicate}
        self._count(connector, len(fresh) - len(jetstream_duplicates), len(jetstream_duplicates))
        already = {e.id for e, c in zip(envelopes, claims, strict=True) if c is Claim.DONE} | jetstream_duplicates
        return IngestResult(
            accepted=[e.id for e in envelopes if e.id not in already],
            duplicates=[e.id for e in envelopes if e.id in already],
        )

    async def _settle_claims(
        self,
        connector: EventSource,
        token: str,
        ours: list[str],
        replay_key: str | None,
        fresh: Sequence[tuple[Envelope, str, Claim]],
        results: Sequence[bool | BaseException],
    ) -> None:
        """Mark what is stored as done; give back the rest, remembering the publishes whose outcome is
        unknown (hub.ingest.landed), so that no retry at any later time stores an event twice.

        Keys stored are marked done even when another event of the request failed: the sender's retry
        of the whole request then finds them delivered, whenever it comes.
        """
        failed = {key for (_, key, _), r in zip(fresh, results, strict=True) if isinstance(r, BaseException)}
        if not failed:
            self._mark_done(ours, connector.dedupe_window_s)
            return
        unsure = {key for (_, key, _), r in zip(fresh, results, strict=True) if isinstance(r, PublishUnavailable)}
        stored = [key for key in ours if key not in failed and key != replay_key]
        self._mark_done(stored, connector.dedupe_window_s)
        given_back = [key for key in ours if key in failed and key not in unsure]
        if replay_key in ours:
            given_back.append(replay_key)
        await self._dedupe.release(given_back, token)
        unsure_keys = [key for key in ours if key in unsure]
        await self._dedupe.release_unsure(unsure_keys, token, time.time(), connector.dedupe_window_s)

    def _mark_done(self, keys: list[str], window_s: float) -> None:
        """Start writing the done marks; `drain` waits for the ones still on their way."""
        if keys:
            self._marking.start(self._dedupe.mark_done(keys, window_s))

    async def drain(self, timeout_s: float) -> None:
        """Wait for the done marks on their way (at stop, before the store connection closes)."""
        if cancelled := await self._marking.drain(timeout_s):
            # Claims expire on their own; JetStream's duplicate window covers a redelivery.
            log.warning("done marks not written at stop", extra={"count": cancelled})

    async def _publish(self, connector: EventSource, envelope: Envelope, key: str, claim: Claim) -> bool:
        """Publish one envelope; True when the stream already had it (same Nats-Msg-Id).

        After a publish of it failed with an unknown outcome, the stream is read first where JetStream's
        duplicate window no longer covers that publish.
        """
        subject = event_subject(connector.tenant, connector.name, envelope.type)
        msg_id = f"{connector.tenant}:{connector.name}:{envelope.id}"
        if claim is Claim.CLAIMED_AFTER_FAILURE:
            failed_at = await self._dedupe.failed_at(key)
            if failed_at is not None and await self._publisher.already_stored(
                subject, msg_id, failed_at, connector.publish_deadline_s
            ):
                return True
        with tracing.span("publish", event_id=envelope.id, type=envelope.type) as trace:
            ack = await self._publisher.publish(
                subject,
                envelope.to_json(),
                envelope.to_headers(),
                msg_id=msg_id,
                deadline_s=connector.publish_deadline_s,
            )
            trace.set("sequence", ack.seq)
        return bool(ack.duplicate)

    def _count(self, connector: EventSource, published: int, duplicates: int) -> None:
        if published:
            self._metrics.published.labels(connector.tenant, connector.name).inc(published)
        if duplicates:
            self._metrics.jetstream_duplicates.labels(connector.tenant, connector.name).inc(duplicates)
