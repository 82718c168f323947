"""The checker: the ledger against HUB_EVENTS (by `Nats-Msg-Id`) and, when routed, a target's log.

Each delivery in the ledger is one of:

- ok: stored once (and, when routed, applied once);
- lost: answered 2xx but not stored, or stored and routed but never settled (applied by the target,
  or dead-lettered when the target refuses it for good);
- duplicate: stored twice, or settled twice (applied under two idempotency keys, or applied and
  dead-lettered, or dead-lettered twice);
- unknown: never answered 2xx and not stored: the sender gave up. Counted, not a failure: the hub
  never told the sender it had the delivery.

Every scenario asserts lost 0 and duplicate 0; the counts of each scenario run are collected in
`RESULTS` and printed at the end of the pytest run (tests/reliability/conftest.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from events.streams import EVENTS_STREAM
from tests.reliability.ledger import Ledger

OK, LOST, DUPLICATE, UNKNOWN = "ok", "lost", "duplicate", "unknown"
CLASSES = (OK, LOST, DUPLICATE, UNKNOWN)


@dataclass
class Verdict:
    """Each delivery's class, and the counts per class."""

    scenario: str
    classes: dict[str, str] = field(default_factory=dict)
    attempts: int = 0

    def count(self, name: str) -> int:
        return sum(1 for found in self.classes.values() if found == name)

    def of(self, name: str) -> list[str]:
        return sorted(delivery for delivery, found in self.classes.items() if found == name)

    def line(self) -> str:
        counts = " ".join(f"{name}={self.count(name)}" for name in CLASSES)
        return f"{self.scenario}: deliveries={len(self.classes)} attempts={self.attempts} {counts}"


RESULTS: list[Verdict] = []
"""Every verdict of this pytest run, printed in its terminal summary."""


async def stored_msg_ids(js: JetStreamContext) -> Counter[str]:
    """How many times each `Nats-Msg-Id` is stored in HUB_EVENTS."""
    state = (await js.stream_info(EVENTS_STREAM)).state
    found: Counter[str] = Counter()
    if not state.messages:
        return found
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            message = await js.get_msg(EVENTS_STREAM, seq)
        except NotFoundError:  # a gap: the hub's streams never delete, but the check must not assume it
            continue
        found[(message.headers or {}).get("Nats-Msg-Id", "")] += 1
    return found


def classify(
    scenario: str,
    ledger: Ledger,
    stored: Counter[str],
    applied: Counter[str] | None = None,
    dead_lettered: Counter[str] | None = None,
) -> Verdict:
    """Each delivery's class. For routed scenarios, `applied` (event id -> times the target applied it)
    and `dead_lettered` (event id -> its dead letters): each stored event must be settled once."""
    verdict = Verdict(scenario, attempts=len(ledger.attempts))
    for delivery in ledger.deliveries.values():
        copies = stored[delivery.msg_id]
        settled = None
        if applied is not None:
            settled = applied[delivery.delivery_id] + (dead_lettered or Counter())[delivery.delivery_id]
        if copies > 1 or (settled or 0) > 1:
            found = DUPLICATE
        elif copies == 1 and settled == 0:
            found = LOST  # stored and routed, never settled
        elif copies == 1:
            found = OK
        else:
            found = LOST if ledger.accepted(delivery.delivery_id) else UNKNOWN
        verdict.classes[delivery.delivery_id] = found
    RESULTS.append(verdict)
    return verdict


def assert_sound(verdict: Verdict, ledger: Ledger, *, least_ok: int) -> None:
    """Nothing lost, nothing twice, and the fault left at least `least_ok` deliveries through."""
    summary = f"{verdict.line()}; answers {ledger.statuses()}"
    assert verdict.count(LOST) == 0, f"lost {verdict.of(LOST)[:10]}; {summary}"
    assert verdict.count(DUPLICATE) == 0, f"duplicated {verdict.of(DUPLICATE)[:10]}; {summary}"
    assert verdict.count(OK) >= least_ok, summary
