"""The poller protocol: one kind of poll source turns fetched pages into events and a new state.

A poller does no I/O of its own: the hub hands it a `PollClient` that fetches through the egress
guard (allowed hosts, checked addresses, redirects re-checked), with the source's credentials and
timeout. The poller builds requests (the cursor and conditional-request validators in them) and
reads responses; the hub publishes the page's events and saves the page's state only after every
one of them is acknowledged by JetStream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from adapters.base import NormalizedEvent
from adapters.lifecycle import ACTIVE, FIRST_OPTIONS_VERSION, FIRST_VERSION, Lifecycle, TypeVersion
from schemas.poll import PollSettings


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One HTTP request a poller wants made."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """What came back (after any allowed redirects); `headers` keys are lowercase."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name."""
        return self.headers.get(name.lower())


class SourceError(Exception):
    """A run of a source failed; `reason` is short, stable and safe to show (never a credential).

    `transient` failures (the source is down or busy) count towards `degraded`; the others say
    the configuration or the source's answers are wrong (`error`) and need a person.
    """

    transient: ClassVar[bool] = False

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class SourceUnavailable(SourceError):
    """Timeouts, connection errors, 5xx, 429: retried with backoff (at least `retry_after_s`)."""

    transient = True


class SourceRejected(SourceError):
    """The source refused the request (other 4xx, 3xx without an allowed redirect)."""


class EgressRefused(SourceError):
    """The egress guard refused a host or an address (not allowed, private, link-local, ...)."""


class InvalidPayload(SourceError):
    """The response cannot be read as this poller expects (not JSON, no list of items, an item without id)."""


class PollClient(Protocol):
    """How a poller fetches: the hub's guarded HTTP client.

    Raises `SourceError` subclasses for refusals, timeouts, connection errors and statuses other
    than 2xx and 304; a poller lets them propagate and raises `InvalidPayload` itself.
    """

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        """Fetch one request."""
        ...


@dataclass(frozen=True, slots=True)
class PollState:
    """What the hub keeps for a source between runs: the cursor and the conditional-request validators."""

    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One fetched page: its events, the state to save once they are all acknowledged, and the next page."""

    events: list[NormalizedEvent]
    state: PollState
    next_request: FetchRequest | None = None
    not_modified: bool = False
    newest_item_time: float | None = None
    """Epoch seconds of the newest item, for the lag metric."""


class PollerOptions(BaseModel):
    """A poller without options of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Poller(ABC):
    """One kind of poll source (a module in `adapters/pollers/`)."""

    name: ClassVar[str]
    options_model: ClassVar[type[BaseModel]] = PollerOptions
    type_version: ClassVar[TypeVersion] = FIRST_VERSION
    """Semver, as a provider's (adapters/lifecycle.py)."""
    options_version: ClassVar[int] = FIRST_OPTIONS_VERSION
    lifecycle: ClassVar[Lifecycle] = ACTIVE

    def __init__(self, provider: str, settings: PollSettings, options: BaseModel) -> None:
        self.provider = provider
        self.settings = settings
        self.options = options

    @classmethod
    def configure(cls, provider: str, settings: PollSettings) -> Poller:
        """The poller for a spec; pydantic ValidationError when its options are wrong."""
        return cls(provider, settings, cls.options_model.model_validate(settings.options))

    @classmethod
    def check_settings(cls, settings: PollSettings) -> list[tuple[str, str]]:
        """Problems with the spec's common poll settings for this poller: (field under spec.poll, message)."""
        return []

    @abstractmethod
    async def fetch_page(self, client: PollClient, state: PollState, request: FetchRequest | None) -> Page:
        """Fetch and read one page: the first of a run when `request` is None, else the one given."""


def event_type(provider: str, item_type: Any, default: str) -> str:
    """`<provider>.<item type>`: the envelope type of a polled item."""
    text = item_type if isinstance(item_type, str) and item_type else default
    return f"{provider}.{text}"
