"""The envelope (docs/design.md §4): JSON body, `ce-*` headers and RFC 3339 times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import (
    HEADER_PREFIX,
    STRUCTURED_CONTENT_TYPE,
    Envelope,
    headers_to_attributes,
    rfc3339,
)

REQUIRED = {
    "id": "d-1",
    "source": "hub://acme/gh-acme",
    "type": "github.push",
    "time": "2024-05-01T12:00:00.000Z",
    "hubtenant": "acme",
    "hubconnector": "gh-acme",
    "hubprovider": "github",
    "hubreceivedat": "2024-05-01T12:00:01.250Z",
    "hubverified": "hmac-sha256",
    "hubbodysha256": "ab" * 32,
}
OPTIONAL = {
    "subject": "acme/widgets",
    "hubkeyid": "current",
    "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
}
HEADER_VALUE_OK = re.compile(r"[\x21-\x7e]*")
ZONES: st.SearchStrategy[tzinfo | None] = st.one_of(st.none(), st.timezones())


def envelope(**overrides: object) -> Envelope:
    return Envelope(**{**REQUIRED, **overrides})  # type: ignore[arg-type]


def test_json_round_trip() -> None:
    original = envelope(data={"ref": "main", "n": [1, 2.5, None, True]}, **OPTIONAL)
    assert Envelope.from_json(original.to_json()) == original


def test_json_body_is_cloudevents_structured_mode() -> None:
    body = orjson.loads(envelope(data={"a": 1}).to_json())
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["data"] == {"a": 1}
    assert {k: body[k] for k in REQUIRED} == REQUIRED


def test_fragment_data_is_embedded_byte_for_byte() -> None:
    raw = b'{ "z" : 1,   "a":[1.50, "\\u00e9"] }'
    body = envelope(data=orjson.Fragment(raw)).to_json()
    assert b'"data":' + raw in body
    assert orjson.loads(body)["data"] == {"z": 1, "a": [1.5, "é"]}


def test_from_json_ignores_unknown_extensions() -> None:
    body = orjson.loads(envelope(data=1).to_json())
    body["someextension"] = "x"
    assert Envelope.from_json(orjson.dumps(body)) == envelope(data=1)


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"1", b"null"])
def test_from_json_refuses_non_objects(body: bytes) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        Envelope.from_json(body)


def test_none_attributes_are_omitted_from_json_and_headers() -> None:
    plain = envelope()
    body = orjson.loads(plain.to_json())
    headers = plain.to_headers()
    for name in OPTIONAL:
        assert name not in body
        assert HEADER_PREFIX + name not in headers
    assert "null" not in "".join(headers.values())


def test_headers_carry_every_attribute() -> None:
    full = envelope(data={"big": "payload"}, **OPTIONAL)
    headers = full.to_headers()
    assert headers["Content-Type"] == STRUCTURED_CONTENT_TYPE
    expected = {HEADER_PREFIX + name for name in (*REQUIRED, *OPTIONAL, "specversion", "datacontenttype")}
    assert set(headers) == expected | {"Content-Type"}
    assert "ce-data" not in headers
    assert headers_to_attributes(headers) == full.attributes()


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a b", "a%20b"),
        ("line\r\nInjected: 1", "line%0D%0AInjected:%201"),
        ('say "hi"', "say%20%22hi%22"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
        ("tab\there", "tab%09here"),
        ("nul\x00", "nul%00"),
        ("del\x7f", "del%7F"),
        ("owner/repo#1:a=b", "owner/repo#1:a=b"),
    ],
)
def test_header_values_are_percent_encoded(value: str, encoded: str) -> None:
    headers = envelope(subject=value).to_headers()
    assert headers["ce-subject"] == encoded
    assert headers_to_attributes(headers)["subject"] == value


@settings(max_examples=300, database=None)
@given(subject=st.text(), event_type=st.text(), key_id=st.text(min_size=1))
def test_any_text_survives_the_headers_exactly(subject: str, event_type: str, key_id: str) -> None:
    """No header value carries a control char, space or non-ASCII; decoding gives back the exact text."""
    headers = envelope(subject=subject, type=event_type, hubkeyid=key_id).to_headers()
    for value in headers.values():
        assert HEADER_VALUE_OK.fullmatch(value), value
    decoded = headers_to_attributes(headers)
    assert (decoded["subject"], decoded["type"], decoded["hubkeyid"]) == (subject, event_type, key_id)


def test_headers_to_attributes_ignores_other_headers_and_none() -> None:
    assert headers_to_attributes(None) == {}
    assert headers_to_attributes({"Nats-Msg-Id": "x", "Content-Type": "y", "CE-id": "a%20b"}) == {"id": "a b"}


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1714564800.25, "2024-05-01T12:00:00.250Z"),
        (1714564800.0009, "2024-05-01T12:00:00.000Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 123456), "2024-05-01T12:00:00.123Z"),
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "2024-05-01T12:00:00.000Z"),
        (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:00.000Z"),
        (datetime(2024, 5, 1, 7, 30, tzinfo=timezone(timedelta(hours=-4, minutes=-30))), "2024-05-01T12:00:00.000Z"),
    ],
)
def test_rfc3339(moment: datetime | float, text: str) -> None:
    """UTC, milliseconds, `Z`; naive datetimes are taken as UTC."""
    assert rfc3339(moment) == text


@settings(max_examples=200, database=None)
@given(st.datetimes(timezones=ZONES, min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1)))  # type: ignore[arg-type]
def test_rfc3339_shape_and_value(moment: datetime) -> None:
    text = rfc3339(moment)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs(parsed - aware) < timedelta(milliseconds=1)
