"""The poll part of a Connector (`spec.poll`): what to fetch, when, how to read it, and where it may go.

The hub fetches through an egress guard (allowed hosts, no private or link-local addresses unless
allowed), keeps a cursor and conditional-request validators per connector, and normalizes each item
into an envelope of type `<provider>.<item type>`.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.durations import Duration
from schemas.expressions import check_jmespath
from schemas.resilience import Backoff, Circuit
from schemas.secrets import SecretRef

JMESPath = Annotated[str, AfterValidator(check_jmespath)]
CURSOR_PLACEHOLDER = "{cursor}"
HOST_PATTERN = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cron(expression: str) -> str:
    """Five fields (croniter also reads a sixth, seconds, which would poll every second), and a next time."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a cron expression (5 fields: minute hour day month weekday)")
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{expression!r} never fires (no such date)") from None
    return expression


def check_network(value: str) -> str:
    """A CIDR network (a bare address is its /32 or /128)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP network: {exc}") from None
    return value


class PollRequest(_Model):
    """The first request of a run; `{cursor}` in the URL or a query value is the stored cursor."""

    url: str = Field(min_length=1, max_length=4096, pattern=r"^https?://", description="URL template; may use {cursor}")
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters; values may use {cursor}")
    body: str | None = Field(default=None, description="POST body template; may use {cursor}")


class PollAuth(_Model):
    """Credentials sent to the source's own hosts (never on a redirect to another host)."""

    type: Literal["bearer", "basic", "header"]
    secretRef: SecretRef = Field(description="The token (bearer), the password (basic) or the header's value")
    username: str | None = Field(default=None, description="basic only")
    header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$", description="header only: its name")

    @model_validator(mode="after")
    def _fits_type(self) -> Self:
        if (self.type == "basic") != (self.username is not None):
            raise ValueError("`username` is required for basic auth and only for it")
        if (self.type == "header") != (self.header is not None):
            raise ValueError("`header` (the header name) is required for header auth and only for it")
        return self


class ItemSelectors(_Model):
    """JMESPath over a JSON response: the list of items, and per item its id, time and type."""

    path: JMESPath = Field(default="@", description="The list of items in the response (default: the response)")
    id: JMESPath = Field(description="Per item: its stable id (the dedupe key)")
    time: JMESPath | None = Field(default=None, description="Per item: its time (RFC 3339 or epoch seconds)")
    type: JMESPath | None = Field(default=None, description="Per item: its type, after `<provider>.` (default: item)")
    subject: JMESPath | None = Field(default=None, description="Per item: the envelope's subject")
    cursor: JMESPath | None = Field(
        default=None,
        description="The next cursor, over the response (`@`) or, with cursorFrom: lastItem, the last item",
    )
    cursorFrom: Literal["response", "lastItem"] = "response"


class Pagination(_Model):
    """The next page of the same run: a URL from the body or from the `Link: <...>; rel="next"` header."""

    nextLink: JMESPath | None = Field(default=None, description="JMESPath to the next page's URL in the body")
    linkHeader: bool = Field(default=False, description="Follow the Link header's rel=next")
    maxPages: int = Field(default=10, ge=1, le=1000, description="Pages per run at most")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.nextLink is not None and self.linkHeader:
            raise ValueError("pagination follows either nextLink or linkHeader, not both")
        return self


class Egress(_Model):
    """Where a poll source may connect."""

    allowedHosts: list[Annotated[str, Field(pattern=HOST_PATTERN)]] = Field(
        default_factory=list, description="Hosts the source may fetch from (default: the request URL's host only)"
    )
    allowPrivateNetworks: bool = Field(
        default=False, description="Allow private, loopback, link-local and other non-public addresses"
    )
    allowedNetworks: list[Annotated[str, AfterValidator(check_network)]] = Field(
        default_factory=list, description="Non-public networks allowed anyway (CIDR), e.g. one internal API"
    )


class PollSettings(_Model):
    """A poll source: acted on by the poll scheduler (role `poller`)."""

    kind: str = Field(min_length=1, max_length=63, description="The poller: http_json, rss, ...")
    interval: Duration | None = None
    cron: Annotated[str, AfterValidator(_check_cron)] | None = None
    jitter: Duration = Field(default=timedelta(0), description="A random delay up to this before each run")
    timeout: Duration = Field(default=timedelta(seconds=10), description="Per request, 100ms to 5m")
    request: PollRequest
    initialCursor: str | None = Field(default=None, description="The cursor before the first run")
    auth: PollAuth | None = None
    items: ItemSelectors | None = Field(default=None, description="For JSON sources (http_json)")
    pagination: Pagination = Field(default_factory=Pagination)
    egress: Egress = Field(default_factory=Egress)
    backoff: Backoff = Field(default_factory=Backoff)
    circuit: Circuit = Field(default_factory=lambda: Circuit(failureThreshold=5, cooldown=timedelta(minutes=5)))
    dedupeWindow: Duration = Field(
        default=timedelta(days=30),
        description="How long a published item id is remembered (feeds keep items for weeks), 1m to 90d",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Poller options, checked by the poller")

    @model_validator(mode="after")
    def _one_schedule(self) -> Self:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("a poll schedule is exactly one of interval or cron")
        if self.interval is not None and not timedelta(seconds=1) <= self.interval <= timedelta(days=7):
            raise ValueError("interval must be between 1s and 7d")
        if not timedelta(milliseconds=100) <= self.timeout <= timedelta(minutes=5):
            raise ValueError("timeout must be between 100ms and 5m")
        if not timedelta(minutes=1) <= self.dedupeWindow <= timedelta(days=90):
            raise ValueError("dedupeWindow must be between 1m and 90d")
        return self
