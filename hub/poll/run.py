"""One run of one poll source: pages from the stored state, each published before its state is saved.

The order is what makes a crash harmless: a page's events are claimed, published and acknowledged
by JetStream (the same `Ingestor` path as webhooks), and only then is the page's state (cursor,
validators) saved. A crash in between re-fetches the page on the next run, and the dedupe claims
(and JetStream's duplicate window behind them) keep anything already published from landing twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from adapters.base import NormalizedEvent, Verification
from adapters.pollers.base import FetchRequest, PollClient
from events.envelope import Envelope
from hub.ingest.ingestor import Ingestor, Provenance, build_envelope, traceparent_for
from hub.poll.sources import PollSource
from hub.poll.store import PollStore
from hub.runtime import tracing


@dataclass(slots=True)
class RunProgress:
    """What a run has done so far; kept by the caller, so a run that fails half way still counts
    the pages it published and saved."""

    pages: int = 0
    published: int = 0
    duplicates: int = 0
    newest_item_time: float | None = None
    cursor: str | None = None
    not_modified: bool = False
    interrupted: bool = False
    """The run stopped early: the lease was lost or the hub is stopping (what was saved stands)."""


INGEST_CHUNK = 256
"""Events handed to the ingestor at once: a source's page of thousands of items must not hold the
event loop every tenant shares for the whole page's envelopes and claims."""


async def run_source(
    source: PollSource,
    client: PollClient,
    store: PollStore,
    ingestor: Ingestor,
    keep_going: Callable[[], bool],
    progress: RunProgress,
) -> None:
    """Fetch up to `maxPages` pages, publishing each page's events before saving its state.

    SourceError (from the client or the poller), ClaimHeld, PublishUnavailable and BodyTooLarge
    propagate; `progress` says how far the run got. The run is a `poll run` span; with tracing on, its
    items' envelopes carry its trace context (else each item starts a trace of its own).
    """
    with (
        tracing.span("poll run", tenant=source.tenant, connector=source.name, kind=source.settings.kind) as trace,
        tracing.logged(trace.traceparent, source.tenant, source.name),
    ):
        await _run_pages(source, client, store, ingestor, keep_going, progress, trace.traceparent)
        trace.set("pages", progress.pages)
        trace.set("published", progress.published)


async def _run_pages(
    source: PollSource,
    client: PollClient,
    store: PollStore,
    ingestor: Ingestor,
    keep_going: Callable[[], bool],
    progress: RunProgress,
    traceparent: str | None,
) -> None:
    state = await store.load_state(source.key, source.settings.initialCursor)
    progress.cursor = state.cursor
    request: FetchRequest | None = None
    for _ in range(source.settings.pagination.maxPages):
        page = await source.poller.fetch_page(client, state, request)
        progress.pages += 1
        if page.not_modified:
            progress.not_modified = progress.pages == 1
            return
        for start in range(0, len(page.events), INGEST_CHUNK):  # a page of any size, a bounded turn at a time
            chunk = page.events[start : start + INGEST_CHUNK]
            result = await ingestor.ingest(source, [_envelope(source, event, traceparent) for event in chunk])
            progress.published += len(result.accepted)
            progress.duplicates += len(result.duplicates)
            if result.accepted:  # counted as stored, so a run that dies later still counts them
                await store.update_status(source.key, {}, published=len(result.accepted))
        if page.newest_item_time is not None:
            progress.newest_item_time = max(progress.newest_item_time or 0.0, page.newest_item_time)
        if not keep_going():
            progress.interrupted = True
            return
        await store.save_state(source.key, page.state)
        state = page.state
        progress.cursor = state.cursor
        request = page.next_request
        if request is None:
            return


def _envelope(source: PollSource, event: NormalizedEvent, traceparent: str | None) -> Envelope:
    """The item's envelope; its `hubbodysha256` is of the item as the poller read it (before redaction)."""
    provenance = Provenance(
        verification=Verification(scheme=f"poll:{source.settings.kind}", key_id=source.key_id),
        received_at=time.time(),
        body_sha256=hashlib.sha256(orjson.dumps(event.data)).hexdigest(),
        traceparent=traceparent_for(traceparent),
    )
    return build_envelope(source, event, provenance, source.redaction)
