"""Errors the hub itself raises: refusals at the edge (beside the adapters' ones) and
configuration errors at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.errors import RequestRejected

EXIT_USAGE = 2
"""The exit code of a command refused for its input: bad flags, specs, settings or keys."""


class UnknownConnector(RequestRejected):
    """No enabled connector at that path (404; nothing else is revealed)."""

    category = "unknown_connector"


class BodyTooLarge(RequestRejected):
    """The body, or the body once inflated, is over the connector's cap (413)."""

    category = "too_large"

    def __init__(self, limit: int, reason: str = "too_large") -> None:
        self.limit = limit
        super().__init__(reason, f"the body is over the {limit}-byte limit")


class UnsupportedEncoding(RequestRejected):
    """A Content-Encoding the ingress does not inflate (415)."""

    category = "unsupported_encoding"

    def __init__(self, encoding: str) -> None:
        super().__init__("unsupported_encoding", f"Content-Encoding {encoding[:32]!r} is not gzip or deflate")


class ClaimHeld(RequestRejected):
    """Another request is delivering the same event right now (409 with Retry-After)."""

    category = "in_flight"

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__("in_flight", "the same event is being delivered by another request; retry shortly")


class PublishUnavailable(RequestRejected):
    """JetStream did not confirm the publish in time (503 with Retry-After); nothing was accepted."""

    category = "unavailable"

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        self.retry_after_s = retry_after_s
        super().__init__("unavailable", detail)


KEYS_UNAVAILABLE = "the provider's key material could not be fetched; retry later"


class KeysUnavailable(PublishUnavailable):
    """Key material a provider's verification needs could not be fetched, or a URL it asks the hub to
    visit could not be (503 with Retry-After).

    The answer says no more than `detail`, a fixed sentence: what the fetch met (a status, a refused
    address, a connection error) is `cause`, for the hub's log only, or whoever sends requests could
    learn what the hub's fetches reach.
    """

    def __init__(self, cause: str, detail: str = KEYS_UNAVAILABLE) -> None:
        super().__init__(detail, retry_after_s=10)
        self.reason = "keys_unavailable"
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: where (connector and field) and what."""

    connector: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"connector {self.connector}: {self.field}: {self.message}" if self.connector else self.message


class ConfigError(Exception):
    """The hub cannot start with this configuration; `problems` names every connector and field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
