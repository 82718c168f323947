"""Why an inbound request is refused, as typed errors with machine-readable reasons.

Adapters and the hub raise these; the hub's ingress maps each class to an HTTP status in one
place (`hub.ingress.responses`). `category` is the stable outcome token (the response's `error`
and the metrics' `outcome` label); `reason` is the specific cause; `detail` is a human sentence.
None of them ever contains a secret or a signature value.
"""

from __future__ import annotations

from typing import ClassVar


class RequestRejected(Exception):
    """Root of every refusal of an inbound request."""

    category: ClassVar[str] = "rejected"

    def __init__(self, reason: str | None = None, detail: str = "") -> None:
        self.reason = reason or self.category
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)


class SignatureError(RequestRejected):
    """The request is not signed by one of the connector's secrets (401)."""

    category = "bad_signature"

    def __init__(self, provider: str, reason: str, detail: str = "") -> None:
        self.provider = provider
        super().__init__(reason, detail)


class ReplayWindowError(RequestRejected):
    """The signed timestamp is outside the connector's replay window (401)."""

    category = "replay_window"

    def __init__(self, age_s: float, window_s: float) -> None:
        self.age_s = age_s
        self.window_s = window_s
        direction = "old" if age_s >= 0 else "in the future"
        super().__init__(
            "timestamp_too_old" if age_s >= 0 else "timestamp_in_future",
            f"signed timestamp is {abs(age_s):.0f}s {direction}; the window is {window_s:.0f}s",
        )


class PayloadError(RequestRejected):
    """The body cannot be read as the provider's payload (400)."""

    category = "bad_payload"
