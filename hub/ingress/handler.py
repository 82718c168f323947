"""`POST /hooks/{tenant}/{connector}`: docs/design.md §3's nine steps, in order, for one request.

Look up, read under a cap, verify with the connector's own secrets, check the replay window,
answer a handshake, normalize, claim, publish with PubAck, and answer the provider's success status (202
unless it needs another) only after every ack.
"""

from __future__ import annotations

import hashlib
import logging
import time

import orjson
from aiohttp import web

from adapters.base import HandshakeReply, InboundRequest, Verification
from adapters.errors import ReplayWindowError, RequestRejected, SignatureError
from events.envelope import Envelope
from hub.errors import UnknownConnector
from hub.ingest.connectors import Connector
from hub.ingest.context import HUB, HubContext
from hub.ingest.ingestor import Provenance, build_envelope, replay_key, traceparent_for
from hub.ingest.metrics import UNKNOWN
from hub.ingress.body import read_capped_body
from hub.ingress.rejected import INBOUND
from hub.ingress.responses import rejection_response, status_of
from hub.runtime import tracing

log = logging.getLogger(__name__)


def check_replay_window(signed_at: float | None, received_at: float, window_s: float) -> None:
    """Refuse a signed timestamp older or newer than the window (no timestamp: nothing to check)."""
    if signed_at is None:
        return
    age_s = received_at - signed_at
    if abs(age_s) > window_s:
        raise ReplayWindowError(age_s, window_s)


async def handle_webhook(request: web.Request) -> web.StreamResponse:
    """Answer one webhook delivery; every refusal is a 4xx/503 with a machine-readable reason.

    The whole request is the `receive` span, and its log lines carry its trace id, tenant and connector
    (and the event ids once known)."""
    tenant, name = request.match_info["tenant"], request.match_info["connector"]
    sender = request.headers.get("traceparent")
    traceparent = traceparent_for(sender)  # the sender's when well-formed, else a new trace
    with (
        tracing.span("receive", traceparent, fresh=traceparent != sender, tenant=tenant, connector=name) as trace,
        tracing.logged(trace.traceparent, tenant, name) as fields,
    ):
        response = await _answer(request, trace.traceparent or traceparent, fields)
        trace.status(response.status)
    return response


async def _answer(request: web.Request, traceparent: str, fields: tracing.LogFields) -> web.StreamResponse:
    context = request.app[HUB]
    started = time.perf_counter()
    connector = context.registry.current.get(request.match_info["tenant"], request.match_info["connector"])
    try:
        if connector is None:
            raise UnknownConnector()
        response, outcome = await _deliver(context, connector, request, traceparent, fields)
    except RequestRejected as rejection:
        response, outcome = rejection_response(rejection), rejection.category
        if connector is not None:
            log.info(
                "webhook refused",
                extra={"connector": connector.label, "error": outcome, "reason": rejection.reason},
            )
            # the connectors page's rejection rate; 5xx answers for the availability SLO
            context.activity.refused(connector.tenant, connector.name, unavailable=status_of(rejection) >= 500)
            if context.rejected is not None:  # kept for diagnosis (hub/ingress/rejected.py)
                await context.rejected.record(connector, request, rejection, request.get(INBOUND))
    tenant, name = (connector.tenant, connector.name) if connector else (UNKNOWN, UNKNOWN)
    if outcome in ("accepted", "duplicate"):
        context.activity.succeeded(tenant, name)
    context.metrics.requests.labels(tenant, name, outcome).inc()
    context.metrics.latency.labels(outcome).observe(time.perf_counter() - started)
    return response


def request_replay_key(connector: Connector, verification: Verification) -> str | None:
    """Where the provider signs no timestamp and its dedupe key is unsigned, the signature bytes
    also guard against a captured request replayed under a new delivery id."""
    scheme = connector.adapter.scheme
    if scheme.timestamp is not None or scheme.dedupe_key_signed or verification.signature is None:
        return None
    return replay_key(connector.tenant, connector.name, verification.signature)


SHADOW = Verification(scheme="none", key_id=None)
"""What a shadow-mode connector records for a request that failed verification."""

REPLY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
"""On every provider-specific answer: a handshake may echo the sender's text (a validation token, a
challenge), which a browser must never sniff into HTML, and no cache may keep or replay an answer."""

VerificationFailure = SignatureError | ReplayWindowError


async def _verified(
    context: HubContext, connector: Connector, inbound: InboundRequest
) -> tuple[Verification, VerificationFailure | None]:
    """Fetch the key material the scheme needs, verify, check the window. A failure is raised, but in
    shadow mode returned with SHADOW for the caller to decide (a key server that cannot be reached is
    still a 503)."""
    try:
        urls = connector.adapter.key_urls(inbound)
        if urls:  # certificates or JWKS the provider's scheme needs, fetched once and cached
            inbound.keys = await context.keys.fetch_all(urls)
        verification = connector.verify(inbound)
        check_replay_window(verification.signed_at, inbound.received_at, connector.replay_window_s)
    except (SignatureError, ReplayWindowError) as failure:
        if not connector.shadow:
            raise
        return SHADOW, failure
    return verification, None


def _accept_unverified(context: HubContext, connector: Connector, failure: VerificationFailure) -> None:
    """Shadow mode: count and log the failure; the request's events are published unverified."""
    context.metrics.shadow_failures.labels(connector.tenant, connector.name, failure.reason).inc()
    log.warning(
        "shadow mode: verification failed, accepting unverified",
        extra={"connector": connector.label, "error": failure.category, "reason": failure.reason},
    )


def _reply(reply: HandshakeReply) -> web.Response:
    """A provider-specific answer (a handshake's, or the one a provider needs once events are published)."""
    return web.Response(
        status=reply.status, body=reply.body, headers={"Content-Type": reply.content_type, **REPLY_HEADERS}
    )


def envelopes_for(
    connector: Connector, inbound: InboundRequest, verification: Verification, traceparent: str | None = None
) -> list[Envelope]:
    """Normalize a verified request into its events' envelopes (a live request, or a kept one retried);
    the connector's redaction applies after verification and normalization, before anything is published.

    `traceparent`: the live request's trace (its `receive` span's when tracing is on); else the request's
    own header's."""
    provenance = Provenance(
        verification=verification,
        received_at=inbound.received_at,
        body_sha256=hashlib.sha256(inbound.body).hexdigest(),
        traceparent=traceparent or traceparent_for(inbound.headers.get("traceparent")),
    )
    return [
        build_envelope(connector, event, provenance, connector.redaction)
        for event in connector.adapter.normalize(inbound)
    ]


async def _deliver(
    context: HubContext, connector: Connector, request: web.Request, traceparent: str, fields: tracing.LogFields
) -> tuple[web.Response, str]:
    body = await read_capped_body(request, connector.max_body_bytes)
    inbound = InboundRequest(
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        body=body,
        received_at=time.time(),
        query=request.query,
    )
    request[INBOUND] = inbound  # what a refusal keeps (hub/ingress/rejected.py)
    with tracing.span("verify", provider=connector.provider) as trace:
        verification, failure = await _verified(context, connector, inbound)
        trace.set("verified", verification.scheme)
    reply = connector.handshake(inbound)
    confirm = connector.adapter.confirmation_url(inbound)  # checked before anything is published
    if failure is not None:
        if reply is not None or confirm is not None:
            # Shadow mode accepts unverified events, never an unverified handshake or confirmation: the
            # reply may be computed with the secret (Zoom's HMAC of any plainToken is a valid signature
            # of a forged event) or enrol a subscription the tenant never made, and a visit is an action.
            raise failure
        _accept_unverified(context, connector, failure)
    if reply is not None:
        return _reply(reply), "handshake"
    envelopes = envelopes_for(connector, inbound, verification, traceparent)
    fields.event_id = ",".join(e.id for e in envelopes) or None  # the log lines from here on name them
    result = await context.ingestor.ingest(connector, envelopes, request_replay_key(connector, verification))
    context.activity.accepted(connector.tenant, connector.name, len(result.accepted))  # events per minute
    answer = {
        "accepted": len(result.accepted),
        "duplicates": len(result.duplicates),
        "ids": [*result.accepted, *result.duplicates],
    }
    scheme = connector.adapter.scheme  # the codes the provider counts as delivered (some retry on any other)
    status, outcome = (
        (scheme.accepted_status, "accepted") if result.accepted else (scheme.duplicate_status, "duplicate")
    )
    if confirm is not None:  # published first: a failed visit is retried with the provider's retry
        await context.keys.visit(confirm)
        log.info("subscription confirmed", extra={"connector": connector.label})
    custom = connector.adapter.accepted_reply(inbound)  # only now: every event is durably in the stream
    if custom is not None:
        return _reply(custom), outcome
    return web.Response(status=status, body=orjson.dumps(answer), content_type="application/json"), outcome
