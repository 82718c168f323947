"""Unit tests of the shared HMAC primitives: digests, strict decoders, signature lists, timestamps."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from adapters.base import TestRequest
from adapters.errors import SignatureError
from adapters.signing import (
    MAX_SIGNATURE_ITEMS,
    body_sha256,
    decode_base64,
    decode_hex,
    header_of,
    hmac_digest,
    parse_timestamp,
    split_items,
    with_headers,
)

DIGEST = hashlib.sha256(b"x").digest()
HEX = DIGEST.hex()
B64 = base64.b64encode(DIGEST).decode()
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NON_CANONICAL = B64[:-2] + ALPHABET[ALPHABET.index(B64[-2]) ^ 1] + "="  # same 32 bytes, other padding bits


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_hmac_digest_matches_hmac_module(algorithm: str) -> None:
    assert hmac_digest(algorithm, b"key", b"message") == hmac.new(b"key", b"message", algorithm).digest()


def test_hmac_digest_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="md5"):
        hmac_digest("md5", b"key", b"message")


def test_decode_hex_accepts_exact_lowercase_hex() -> None:
    assert decode_hex(HEX, 32, "p") == DIGEST


@pytest.mark.parametrize(
    "value",
    [
        "",
        HEX[:-2],  # truncated
        HEX + "00",  # over-long
        HEX[:-1],  # odd length
        HEX.upper(),  # not as hexdigest() writes it
        HEX[:-2] + "zz",
        HEX[:-2] + " 0",  # bytes.fromhex would skip the space
        HEX[:-1] + "\u0663",  # a Unicode digit
        HEX[:-1] + "\n",
    ],
)
def test_decode_hex_refuses_anything_else(value: str) -> None:
    with pytest.raises(SignatureError) as caught:
        decode_hex(value, 32, "p")
    assert (caught.value.provider, caught.value.reason) == ("p", "malformed_signature")


def test_decode_base64_accepts_canonical_padded_base64() -> None:
    assert decode_base64(B64, 32, "p") == DIGEST
    assert base64.b64decode(NON_CANONICAL) == DIGEST  # what a lenient decoder would accept


@pytest.mark.parametrize(
    "value",
    [
        "",
        B64[:-4],  # truncated
        base64.b64encode(DIGEST + b"\0").decode(),  # over-long
        B64.rstrip("="),  # unpadded
        NON_CANONICAL,
        base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # url-safe alphabet
        B64[:10] + "\n" + B64[10:],
        B64[:-1] + "\u00e9",
    ],
)
def test_decode_base64_refuses_anything_else(value: str) -> None:
    with pytest.raises(SignatureError) as caught:
        decode_base64(value, 32, "p")
    assert caught.value.reason == "malformed_signature"


def test_split_items_parses_key_value_lists() -> None:
    assert split_items("t=1,v1=ab=,v0=cd", "p", item_sep=",", pair_sep="=") == [("t", "1"), ("v1", "ab="), ("v0", "cd")]
    assert split_items("v1,a= v1a,b", "p", item_sep=" ", pair_sep=",") == [("v1", "a="), ("v1a", "b")]


def test_split_items_caps_the_number_of_items() -> None:
    at_cap = ",".join(["v1=a"] * MAX_SIGNATURE_ITEMS)
    assert len(split_items(at_cap, "p", item_sep=",", pair_sep="=")) == MAX_SIGNATURE_ITEMS
    with pytest.raises(SignatureError) as caught:
        split_items(at_cap + ",v1=a", "p", item_sep=",", pair_sep="=")
    assert caught.value.reason == "too_many_signatures"


@pytest.mark.parametrize("header", ["", "t=1,", ",t=1", "t=1,,v1=a", "t", "=1", "t=1,v1"])
def test_split_items_refuses_empty_and_keyless_items(header: str) -> None:
    with pytest.raises(SignatureError) as caught:
        split_items(header, "p", item_sep=",", pair_sep="=")
    assert caught.value.reason == "malformed_signature"


def test_parse_timestamp_reads_seconds_and_milliseconds() -> None:
    assert parse_timestamp("1614265330", "p") == 1614265330.0
    assert parse_timestamp("1614265330123", "p", unit="ms") == 1614265330.123


@pytest.mark.parametrize("value", ["", "-1", "+1", "1.5", " 1", "1e9", "\u0661", "9" * 13])
def test_parse_timestamp_refuses_non_integers(value: str) -> None:
    with pytest.raises(SignatureError) as caught:
        parse_timestamp(value, "p")
    assert caught.value.reason == "malformed_signature"


def test_with_headers_replaces_headers_of_any_case() -> None:
    request = TestRequest(headers={"x-sig": "old", "Content-Type": "application/json"}, body=b"{}")
    signed = with_headers(request, {"X-Sig": "new"})
    assert signed.headers == {"Content-Type": "application/json", "X-Sig": "new"}
    assert signed.body == b"{}"
    assert header_of(signed, "x-SIG") == "new"
    assert header_of(signed, "missing") is None


def test_body_sha256() -> None:
    assert body_sha256(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
