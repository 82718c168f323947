"""Dead letters on `hub.dlq.<tenant>.<connector>.<route>`: an invocation the hub gave up on, and why.

The record carries the envelope itself (embedded as JSON when it is JSON), so an operator can
inspect and replay it without going back to `HUB_EVENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson


class FailureClass(StrEnum):
    """Why an invocation was dead-lettered."""

    TRANSIENT = "transient"
    """Retries for timeouts, connection errors or 5xx were exhausted."""
    PERMANENT = "permanent"
    """The target refused it in a way a retry cannot fix (4xx other than 408/425/429, 3xx)."""
    POLICY_DENIED = "policy_denied"
    """The tenant's policy denied it when it was about to be dispatched (the policy changed)."""
    QUOTA_EXCEEDED = "quota_exceeded"
    """The target kept answering 429 until the retries were exhausted."""
    VALIDATION_ERROR = "validation_error"
    """The invocation cannot be dispatched as it is (its route is gone, or it is malformed)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered invocation."""

    invocation_id: str
    tenant: str
    connector: str
    route: str
    target: str
    failure_class: FailureClass
    error: str
    attempts: int
    first_attempt_at: str | None
    failed_at: str
    envelope: bytes

    def to_json(self) -> bytes:
        """The record as JSON; the envelope is embedded as is when it is valid JSON, else as text."""
        record: dict[str, Any] = {
            "invocationId": self.invocation_id,
            "tenant": self.tenant,
            "connector": self.connector,
            "route": self.route,
            "target": self.target,
            "class": self.failure_class.value,
            "error": self.error,
            "attempts": self.attempts,
            "firstAttemptAt": self.first_attempt_at,
            "failedAt": self.failed_at,
        }
        try:
            orjson.loads(self.envelope)
            record["envelope"] = orjson.Fragment(self.envelope)
        except orjson.JSONDecodeError:
            record["envelope"] = self.envelope.decode("utf-8", "replace")
        return orjson.dumps(record)
