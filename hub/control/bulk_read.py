"""Reading many stream messages in one go: an ephemeral, unacknowledged pull consumer that is
drained in batches until the server says nothing is pending.

`current_entries` (buckets.py) costs a round trip per key, fine for the watcher and the CLI, too slow
for a page listing 1,000 connectors on every request; here the server streams the last value of
every matching key in a few batches. The end is the last message's own `num_pending` (exact, per
message), not a watcher's "no more values" marker.
"""

from __future__ import annotations

from datetime import datetime

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hub.control.buckets import SPECS_BUCKET, STATUS_BUCKET, connector_key
from hub.control.specstore import StoredSpec, StoredSpecError, parse_stored
from hub.control.status import ConnectorStatus

BATCH = 512
FETCH_TIMEOUT_S = 2.0
_REMOVED = ("DEL", "PURGE")
"""KV-Operation headers of a deleted key's marker."""


async def drain(
    js: JetStreamContext, stream: str, subject: str, *, last_per_subject: bool = False, since: datetime | None = None
) -> list[Msg]:
    """Every message of `stream` on `subject` (only each subject's last with `last_per_subject`;
    only those stored from `since` on when given), in stream order."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
        if last_per_subject
        else (DeliverPolicy.BY_START_TIME if since is not None else DeliverPolicy.ALL),
        opt_start_time=since,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    subscription = await js.pull_subscribe(subject, stream=stream, config=config)
    found: list[Msg] = []
    try:
        if (await subscription.consumer_info()).num_pending == 0:
            return found
        while True:
            try:
                messages = await subscription.fetch(BATCH, timeout=FETCH_TIMEOUT_S)
            except NatsTimeoutError:
                break
            found.extend(messages)
            if not messages or messages[-1].metadata.num_pending == 0:
                break
    finally:
        await subscription.unsubscribe()
    return found


def _live(message: Msg) -> bool:
    return (message.headers or {}).get("KV-Operation") not in _REMOVED


async def connectors_with_statuses(
    js: JetStreamContext, tenant: str | None
) -> tuple[list[StoredSpec], dict[tuple[str, str], ConnectorStatus]]:
    """A tenant's (None: every) stored connectors, by tenant and name, and their statuses: what
    `SpecStore.connectors` and `StatusStore.all` return, in two streamed reads."""
    spec_prefix = f"$KV.{SPECS_BUCKET}."
    specs = []
    pattern = connector_key(tenant, "*") if tenant is not None else "connector.>"
    for message in await drain(js, f"KV_{SPECS_BUCKET}", spec_prefix + pattern, last_per_subject=True):
        if not _live(message):
            continue
        try:
            document, tenant_authored = parse_stored(message.data)
        except StoredSpecError:
            continue  # the watcher reports a stored spec that does not parse; a listing skips it
        specs.append(StoredSpec(document, message.metadata.sequence.stream, tenant_authored))
    status_prefix = f"$KV.{STATUS_BUCKET}."
    statuses = {}
    status_pattern = f"{tenant}.*" if tenant is not None else ">"
    for message in await drain(js, f"KV_{STATUS_BUCKET}", status_prefix + status_pattern, last_per_subject=True):
        if _live(message):
            owner, _, name = message.subject[len(status_prefix) :].partition(".")
            statuses[(owner, name)] = ConnectorStatus.from_json(message.data or b"{}")
    specs.sort(key=lambda s: (s.document.metadata.tenant, s.document.metadata.name))
    return specs, statuses
