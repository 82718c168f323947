"""The ledger: every attempt a simulated provider made, and what it was answered.

One `Attempt` per HTTP request a sender made (or tried to make): which delivery, which attempt, when,
how long it took, the status or the error. The checker reads the ledger against what the bus stored.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attempt:
    """One request of one delivery: `status` when the hub answered, `error` when it did not."""

    delivery_id: str
    sender: str
    attempt: int
    at: float
    elapsed_s: float
    status: int | None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        """The sender was told the delivery is taken (any 2xx: 202 accepted, 200 a duplicate)."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Delivery:
    """What a sender delivers: the id it retries under and the `Nats-Msg-Id` the hub stores it with."""

    delivery_id: str
    sender: str
    msg_id: str


@dataclass
class Ledger:
    """Every delivery the senders were given and every attempt they made."""

    deliveries: dict[str, Delivery] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)

    def expect(self, delivery: Delivery) -> None:
        if delivery.delivery_id in self.deliveries:
            raise ValueError(f"delivery {delivery.delivery_id} is already in the ledger")
        self.deliveries[delivery.delivery_id] = delivery

    def record(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    def by_delivery(self) -> dict[str, list[Attempt]]:
        grouped: dict[str, list[Attempt]] = defaultdict(list)
        for attempt in self.attempts:
            grouped[attempt.delivery_id].append(attempt)
        return grouped

    def accepted(self, delivery_id: str) -> bool:
        return any(a.accepted for a in self.by_delivery().get(delivery_id, []))

    def statuses(self) -> dict[str, int]:
        """How often each answer came (`error:<kind>` for an attempt that got none): for failure messages."""
        counts: dict[str, int] = defaultdict(int)
        for attempt in self.attempts:
            counts[str(attempt.status) if attempt.status is not None else f"error:{attempt.error}"] += 1
        return dict(counts)
