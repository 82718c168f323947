"""Small shared primitives of HMAC signature schemes: digest, strict decoders, header parsing.

Everything that reads a signature header is strict: a signature has one exact length and one
canonical encoding, so a truncated, over-long or re-encoded value is malformed and never compared.
Error details name headers and limits, never a secret or a signature value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from multidict import CIMultiDict

from adapters.base import TestRequest
from adapters.errors import SignatureError

MAX_SIGNATURE_ITEMS = 16
"""More items than this in one signature header is refused before any of them is parsed."""

DIGEST_SIZES: Mapping[str, int] = {"sha1": 20, "sha256": 32, "sha512": 64}

_LOWER_HEX = re.compile(r"[0-9a-f]*")
_DIGITS = re.compile(r"[0-9]+")
_MAX_TIMESTAMP_DIGITS = {"s": 12, "ms": 15}


def hmac_digest(algorithm: str, key: bytes, message: bytes) -> bytes:
    """HMAC of `message` under `key` with one of DIGEST_SIZES' algorithms."""
    if algorithm not in DIGEST_SIZES:
        raise ValueError(f"unsupported HMAC algorithm {algorithm!r}")
    return hmac.digest(key, message, algorithm)


def decode_hex(value: str, nbytes: int, provider: str) -> bytes:
    """Exactly `nbytes` from lowercase hex (as `hexdigest()` writes it), else a SignatureError."""
    if len(value) != 2 * nbytes or not _LOWER_HEX.fullmatch(value):
        raise SignatureError(provider, "malformed_signature", f"expected {2 * nbytes} lowercase hex digits")
    return bytes.fromhex(value)


def decode_base64(value: str, nbytes: int, provider: str) -> bytes:
    """Exactly `nbytes` from canonical, padded standard base64, else a SignatureError."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != nbytes or base64.b64encode(raw).decode("ascii") != value:
        raise SignatureError(provider, "malformed_signature", f"expected canonical base64 of {nbytes} bytes")
    return raw


def split_items(header: str, provider: str, *, item_sep: str, pair_sep: str) -> list[tuple[str, str]]:
    """A signature list as (key, value) pairs: `t=1,v1=ab` (`,` and `=`) or `v1,ab v1,cd` (` ` and `,`).

    At most MAX_SIGNATURE_ITEMS items, counted before splitting; an empty key or an item without
    `pair_sep` is malformed.
    """
    if header.count(item_sep) >= MAX_SIGNATURE_ITEMS:
        raise SignatureError(provider, "too_many_signatures", f"more than {MAX_SIGNATURE_ITEMS} items")
    pairs = []
    for item in header.split(item_sep):
        key, sep, value = item.partition(pair_sep)
        if not key or not sep:
            raise SignatureError(provider, "malformed_signature", f"an item is not of the form key{pair_sep}value")
        pairs.append((key, value))
    return pairs


def parse_timestamp(value: str, provider: str, *, unit: str = "s") -> float:
    """Unix seconds from a signed timestamp of decimal digits in `unit` (`s` or `ms`)."""
    if len(value) > _MAX_TIMESTAMP_DIGITS[unit] or not _DIGITS.fullmatch(value):
        raise SignatureError(provider, "malformed_signature", f"the signed timestamp is not an integer in {unit}")
    return int(value) / 1000 if unit == "ms" else float(value)


def with_headers(request: TestRequest, added: Mapping[str, str]) -> TestRequest:
    """`request` plus `added` headers, replacing any existing header of the same name (any case)."""
    replaced = CIMultiDict(added)
    headers = {name: value for name, value in request.headers.items() if name not in replaced}
    return TestRequest(headers={**headers, **added}, body=request.body)


def header_of(request: TestRequest, name: str) -> str | None:
    """A header of a test request by case-insensitive name, or None."""
    return CIMultiDict(request.headers).get(name)


def body_sha256(body: bytes) -> str:
    """`sha256:<hex>` of a body: the fallback id of a delivery that carries none."""
    return "sha256:" + hashlib.sha256(body).hexdigest()
