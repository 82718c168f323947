"""The Connector document (docs/design.md §8): what a connector is, as a pydantic model.

The webhook part, the poll part (`schemas/poll.py`) and the routes are acted on (ingress, poll
scheduler, gate consumers). Provider-specific options are validated by the
provider's own options model (in its adapter module), not here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from schemas.durations import Duration
from schemas.expressions import check_jmespath
from schemas.patterns import check_pattern, is_within
from schemas.poll import PollSettings
from schemas.redaction import RedactionRules, TruncateOver
from schemas.resilience import Circuit
from schemas.secrets import SecretEntry
from schemas.slo import Slo

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="[a-z0-9-], 1-63, no leading or trailing -")]

DEFAULT_REPLAY_WINDOW = timedelta(seconds=300)
MAX_BODY_BYTES_LIMIT = 64 * 1024 * 1024
MAX_DISPATCH_TIMEOUT = timedelta(seconds=60)
HUB_SUBJECT_ROOT = "hub"
TYPE_VERSION_PIN = r"^(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,5})){0,2}$"
"""`spec.typeVersion`: `1`, `1.2` or `1.2.0` (adapters/lifecycle.py reads it)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(_Model):
    """Who the connector belongs to and what it is called."""

    name: Name
    tenant: Name
    labels: dict[str, str] = Field(default_factory=dict)
    revision: int | None = Field(
        default=None,
        ge=1,
        description="The stored revision this document was read at (set by the hub); an apply that carries "
        "a revision other than the stored one is refused, so no change is lost",
    )


MAX_CAPTURE_BODY_BYTES = 48 * 1024
"""The largest body preview kept with a refused request: base64-encoded with its headers, it must fit
in one HUB_REJECTED record (events.streams.REJECTED_RECORD_MAX_BYTES, checked by a test)."""


class CaptureRejected(_Model):
    """What the hub keeps of a refused request, for diagnosis and retry."""

    enabled: bool = Field(default=True, description="Keep refused requests (false: keep nothing at all)")
    maxBodyBytes: int = Field(
        default=16_384,
        ge=0,
        le=MAX_CAPTURE_BODY_BYTES,
        description="How much of a refused request's body is kept (a request cut short cannot be retried)",
    )


class WebhookSettings(_Model):
    """How the ingress treats this connector's deliveries."""

    replayWindow: Duration | None = Field(
        default=None,
        description="Reject signed timestamps older or newer than this (default: the provider's, else 300s)",
    )
    dedupeWindow: Duration = Field(
        default=timedelta(hours=72), description="How long a delivered id is remembered as done"
    )
    maxBodyBytes: int = Field(
        default=1_048_576,
        ge=1,
        le=MAX_BODY_BYTES_LIMIT,
        description="Body cap in bytes, also applied after inflating a compressed body",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Provider options, checked by the provider's own model"
    )
    verification: Literal["enforce", "shadow"] = Field(
        default="enforce",
        description="shadow (for onboarding only): failed verifications are counted and logged, and the "
        "event is accepted with hubverified none",
    )
    captureRejected: CaptureRejected = Field(
        default_factory=CaptureRejected,
        description="Refused requests kept for diagnosis (never a credential header or a URL token)",
    )
    answerBudget: Duration | None = Field(
        default=None,
        description="How long a delivery's publish may be retried before the sender gets 503 (default: the "
        "provider's timeout less max(1s, a fifth of it), e.g. 8s for GitHub); below the provider's timeout",
    )

    @model_validator(mode="after")
    def _windows_are_sane(self) -> Self:
        if self.replayWindow is not None and not timedelta(seconds=1) <= self.replayWindow <= timedelta(days=1):
            raise ValueError("replayWindow must be between 1s and 24h")
        if not timedelta(minutes=1) <= self.dedupeWindow <= timedelta(days=30):
            raise ValueError("dedupeWindow must be between 1m and 30d")
        if self.answerBudget is not None and not timedelta(milliseconds=500) <= self.answerBudget <= timedelta(
            minutes=5
        ):
            raise ValueError("answerBudget must be between 500ms and 5m")
        return self


class Match(_Model):
    """Which events a route takes."""

    types: list[Annotated[str, AfterValidator(check_pattern)]] = Field(
        min_length=1, description="Event types; `*` matches one token, a final `>` one or more"
    )
    when: Annotated[str | None, AfterValidator(check_jmespath)] = Field(
        default=None, description="Optional JMESPath condition over the envelope; the route matches when it is truthy"
    )


RESERVED_HEADERS = ("content-type", "idempotency-key", "content-length", "host")


class HttpTarget(_Model):
    """An HTTP endpoint invoked with the event (CloudEvents binary mode)."""

    url: AnyHttpUrl
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (not ce-*, Content-Type or Idempotency-Key)"
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="Whole request, 100ms to 60s")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if not timedelta(milliseconds=100) <= self.timeout <= MAX_DISPATCH_TIMEOUT:
            raise ValueError("timeout must be between 100ms and 60s")
        reserved = sorted(h for h in self.headers if h.lower() in RESERVED_HEADERS or h.lower().startswith("ce-"))
        if reserved:
            raise ValueError(f"headers set by the hub cannot be overridden: {', '.join(reserved)}")
        return self


class Target(_Model):
    """Where an invocation goes: a NATS subject or an HTTP endpoint (exactly one)."""

    subject: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="A literal subject outside `hub.` (no wildcards)",
    )
    http: HttpTarget | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.subject is None) == (self.http is None):
            raise ValueError("a target is exactly one of subject or http")
        if self.subject is not None and is_within(self.subject, HUB_SUBJECT_ROOT):
            raise ValueError(f"a target subject cannot be under `{HUB_SUBJECT_ROOT}.`: those are the hub's own streams")
        return self

    @property
    def label(self) -> str:
        """`subject:<subject>` or `http:<host>`: what policy rules, metrics and breakers key on."""
        if self.subject is not None:
            return f"subject:{self.subject}"
        assert self.http is not None
        return f"http:{self.http.url.host}"


class Rate(_Model):
    """Sustained rate and burst."""

    perSecond: float = Field(gt=0, le=1_000_000)
    burst: int = Field(default=1, ge=1, le=1_000_000)


class Limits(_Model):
    """How fast and how many at once a route (or a whole tenant) may invoke."""

    rate: Rate | None = None
    maxParallel: int | None = Field(default=None, ge=1, le=100_000)


class Retry(_Model):
    """Retries of transient dispatch failures, with exponential backoff."""

    maxAttempts: int = Field(default=8, ge=1, le=100)
    initial: Duration = timedelta(seconds=1)
    max: Duration = timedelta(minutes=5)
    jitter: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not timedelta(milliseconds=10) <= self.initial <= self.max <= timedelta(days=1):
            raise ValueError("retry delays need 10ms <= initial <= max <= 24h")
        return self


class Debounce(_Model):
    """Coalesce events with the same key inside a window into one invocation of the latest."""

    key: Annotated[str, AfterValidator(check_jmespath)] = Field(
        description="JMESPath over the envelope; events whose key is null are not debounced"
    )
    window: Duration = Field(description="From the first event of a key to the invocation, 100ms to 1h")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if not timedelta(milliseconds=100) <= self.window <= timedelta(hours=1):
            raise ValueError("window must be between 100ms and 1h")
        return self


class Route(_Model):
    """An event-to-invocation rule, acted on by the gate consumers."""

    name: Name
    match: Match
    target: Target
    limits: Limits = Field(default_factory=Limits)
    retry: Retry = Field(default_factory=Retry)
    circuit: Circuit = Field(default_factory=Circuit)
    debounce: Debounce | None = None


class ConnectorSpec(_Model):
    """What the connector does."""

    type: Literal["webhook", "poll"]
    provider: str = Field(min_length=1, max_length=63, description="The adapter (see `connector-hub providers`)")
    typeVersion: str | None = Field(
        default=None,
        pattern=TYPE_VERSION_PIN,
        description="The type version the spec is written for (`connector-hub catalog`): a major (`1`) or the "
        "least version within a major (`1.2`, `1.2.0`); a hub serving another major refuses the spec",
    )
    enabled: bool = True
    secrets: list[SecretEntry] = Field(default_factory=list)
    webhook: WebhookSettings | None = None
    poll: PollSettings | None = None
    routes: list[Route] = Field(default_factory=list)
    redact: RedactionRules = Field(default_factory=list)
    truncateOver: TruncateOver = None
    slo: Slo | None = Field(default=None, description="Service level objectives, evaluated by the hub (schemas/slo.py)")

    @model_validator(mode="after")
    def _parts_fit_the_type(self) -> Self:
        if self.type == "webhook" and self.poll is not None:
            raise ValueError("a webhook connector has no `poll` section")
        if self.type == "poll" and (self.poll is None or self.webhook is not None):
            raise ValueError("a poll connector has a `poll` section and no `webhook` section")
        for kind, names in (("secret", [s.key_id for s in self.secrets]), ("route", [r.name for r in self.routes])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind} names must be unique: {', '.join(duplicates)}")
        return self

    @property
    def webhook_settings(self) -> WebhookSettings:
        """The webhook section, defaults filled in when the spec omits it."""
        return self.webhook or WebhookSettings()


class ConnectorDocument(_Model):
    """`apiVersion: hub/v1`, `kind: Connector`."""

    apiVersion: Literal["hub/v1"]
    kind: Literal["Connector"]
    metadata: Metadata
    spec: ConnectorSpec

    @property
    def key(self) -> tuple[str, str]:
        """(tenant, name): the connector's identity."""
        return self.metadata.tenant, self.metadata.name
