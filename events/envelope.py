"""The canonical event envelope (CloudEvents 1.0, JSON structured mode) and its NATS codec.

The body of a NATS message is the envelope as JSON; the same attributes (all but `data`) travel
as `ce-<name>` headers so consumers can route without parsing the body. Header values are
percent-encoded outside printable ASCII (the CloudEvents HTTP binding's rule), so untrusted
values can never break a header line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, unquote

import orjson
from pydantic import Field

HEADER_PREFIX = "ce-"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_NOTHING_TO_ENCODE = re.compile(r"[\x21\x23-\x24\x26-\x7e]*")
"""Printable ASCII but `"` and `%`: the text of most values (ids, types, times), already a header value."""


def header_value(text: str) -> str:
    """`text` as a header value: percent-encoded outside printable ASCII, and `"` and `%` too.

    Most attribute values need no encoding; a regex says so in a fraction of `quote`'s time, which
    counts at one call per attribute of every published event.
    """
    return text if _NOTHING_TO_ENCODE.fullmatch(text) else quote(text, safe=_HEADER_SAFE)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as the hub publishes it; `hub*` attributes are its verified provenance."""

    id: Annotated[str, Field(description="Provider delivery/event id, else sha256 of the raw body")]
    source: Annotated[str, Field(description="hub://<tenant>/<connector>")]
    type: Annotated[str, Field(description="<provider>.<event type>, e.g. github.push")]
    time: Annotated[str, Field(description="Provider event time, else received time (RFC 3339)")]
    hubtenant: str
    hubconnector: str
    hubprovider: str
    hubreceivedat: Annotated[str, Field(description="When the hub received it (RFC 3339)")]
    hubverified: Annotated[str, Field(description="Verification scheme, e.g. hmac-sha256")]
    hubbodysha256: Annotated[str, Field(description="Hex sha256 of the body the provider signed")]
    data: Annotated[Any, Field(description="The provider payload, parsed")] = None
    subject: Annotated[str | None, Field(description="Repo, customer, channel...")] = None
    hubkeyid: Annotated[str | None, Field(description="Name (never value) of the secret that verified it")] = None
    traceparent: Annotated[str | None, Field(description="W3C trace context")] = None
    hubrecoveredat: Annotated[
        str | None, Field(description="When a refused request was retried and recovered (RFC 3339)")
    ] = None
    hubredactions: Annotated[
        str | None,
        Field(description='What the connector\'s rules redacted: JSON {"count": n, "paths": [...]}, never values'),
    ] = None
    hubtruncated: Annotated[str | None, Field(description='"true" when data was cut to fit the connector\'s limit')] = (
        None
    )
    huboriginalsize: Annotated[str | None, Field(description="Size in bytes of the data before it was cut")] = None
    datacontenttype: str = "application/json"
    specversion: str = "1.0"

    def attributes(self) -> dict[str, str]:
        """Every context attribute that is set (all but `data`)."""
        return {name: value for name in _ATTRIBUTE_NAMES if (value := getattr(self, name)) is not None}

    def to_json(self) -> bytes:
        """The structured-mode JSON body; an `orjson.Fragment` in `data` is embedded as is."""
        body: dict[str, Any] = self.attributes()
        body["data"] = self.data
        return orjson.dumps(body)

    def to_headers(self) -> dict[str, str]:
        """The `ce-*` headers of the NATS message (values percent-encoded where needed)."""
        headers = {HEADER_PREFIX + name: header_value(value) for name, value in self.attributes().items()}
        headers["Content-Type"] = STRUCTURED_CONTENT_TYPE
        return headers

    @classmethod
    def from_json(cls, body: bytes) -> Envelope:
        """Decode a structured-mode body; unknown extension attributes are ignored."""
        raw = orjson.loads(body)
        if not isinstance(raw, dict):
            raise ValueError("an envelope is a JSON object")
        return cls(**{name: raw[name] for name in _FIELD_NAMES if name in raw})


_FIELD_NAMES = tuple(f.name for f in fields(Envelope))
_ATTRIBUTE_NAMES = tuple(name for name in _FIELD_NAMES if name != "data")


def headers_to_attributes(headers: dict[str, str] | None) -> dict[str, str]:
    """The context attributes carried by a message's `ce-*` headers, decoded."""
    return {
        key[len(HEADER_PREFIX) :]: unquote(value)
        for key, value in (headers or {}).items()
        if key.lower().startswith(HEADER_PREFIX)
    }


def rfc3339(moment: datetime | float) -> str:
    """RFC 3339 in UTC with millisecond precision and a `Z`."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
