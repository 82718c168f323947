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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from multidict import CIMultiDict

from adapters.base import SigningSecret, TestRequest, matching_key
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


def matching_hmac(
    provider: str,
    secrets: Sequence[SigningSecret],
    candidates: Sequence[bytes],
    content: bytes,
    algorithm: str = "sha256",
    key: Callable[[SigningSecret], bytes] = lambda secret: secret.value,
) -> str:
    """The key id of the first secret whose HMAC of `content` is one of `candidates` (`matching_key`);
    `key` derives the HMAC key from a secret where it is not the secret's bytes as they are."""
    return matching_key(provider, secrets, candidates, lambda secret: hmac_digest(algorithm, key(secret), content))


def matching_credential(provider: str, secrets: Sequence[SigningSecret], credential: bytes) -> str:
    """The key id of the secret equal to a credential sent as it is (a token, a password, a clientState).

    Both sides are hashed before the constant-time comparison: equal lengths, so it leaks no length.
    """
    digest = hashlib.sha256(credential).digest()
    return matching_key(provider, secrets, [digest], lambda secret: hashlib.sha256(secret.value).digest())


def after_prefix(value: str, prefix: str, header: str, provider: str) -> str:
    """`value` after its literal `prefix` (`sha256=`, `v0=`), else a SignatureError naming the header."""
    if not value.startswith(prefix):
        raise SignatureError(provider, "malformed_signature", f"{header} does not start with {prefix}")
    return value[len(prefix) :]


def decode_hex(value: str, nbytes: int, provider: str) -> bytes:
    """Exactly `nbytes` from lowercase hex (as `hexdigest()` writes it), else a SignatureError."""
    if len(value) != 2 * nbytes or not _LOWER_HEX.fullmatch(value):
        raise SignatureError(provider, "malformed_signature", f"expected {2 * nbytes} lowercase hex digits")
    return bytes.fromhex(value)


def decode_base64(value: str, nbytes: int, provider: str) -> bytes:
    """Exactly `nbytes` from canonical, padded standard base64, else a SignatureError."""
    raw = canonical_base64(value)
    if raw is None or len(raw) != nbytes:
        raise SignatureError(provider, "malformed_signature", f"expected canonical base64 of {nbytes} bytes")
    return raw


def canonical_base64(value: str) -> bytes | None:
    """The bytes of canonical, padded standard base64, else None.

    Canonical: the one spelling `b64encode` gives, so the unused low bits of a last character are zero.
    A decoder that ignores them accepts four spellings of one value: a flipped bit that still verifies.
    """
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == value else None


def is_canonical_base64url(part: str) -> bool:
    """Whether `part` is unpadded base64url whose unused trailing bits are zero: one spelling per value
    (the parts of a JWT or of an itsdangerous token)."""
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == part


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


def one_item(items: Sequence[tuple[str, str]], key: str, *, header: str, provider: str) -> str:
    """The value of the one `key=` item of a signature list (`t=` of `t=1,v1=ab`), else malformed."""
    values = [value for name, value in items if name == key]
    if len(values) != 1:
        raise SignatureError(provider, "malformed_signature", f"{header} needs exactly one {key}=")
    return values[0]


def signatures(
    items: Sequence[tuple[str, str]],
    version: str,
    decode: Callable[[str], bytes],
    *,
    header: str,
    provider: str,
    label: str | None = None,
) -> list[bytes]:
    """The decoded signatures of the items named `version` (several: the sender's own key rotation).

    Items of other versions are ignored, never decoded; none of this version is `unsupported_scheme`
    (`label`: how the message names the version, default `<version>=`). A malformed item is skipped, never
    compared, as the providers' own verifiers accept a header where any one signature matches (stripe,
    standardwebhooks, svix); only a header whose every item of this version is malformed is `malformed_signature`.
    """
    name_of = label or version + "="
    found: list[bytes] = []
    malformed = 0
    for name, value in items:
        if name != version:
            continue
        try:
            found.append(decode(value))
        except SignatureError:
            malformed += 1
    if found:
        return found
    if malformed:
        raise SignatureError(
            provider, "malformed_signature", f"{header}: all {malformed} {name_of} items are malformed"
        )
    raise SignatureError(provider, "unsupported_scheme", f"{header} carries no {name_of} signature")


def timestamped_signatures(
    items: Sequence[tuple[str, str]], provider: str, *, header: str, timestamp_key: str, version: str
) -> tuple[str, float, list[bytes]]:
    """Of a `t=<ts>,v1=<hex>[,v1=<hex>...]` list (Stripe's shape): the one timestamp as sent and as unix
    seconds, and the decoded 32-byte hex signatures of `version`."""
    timestamp = one_item(items, timestamp_key, header=header, provider=provider)
    signed_at = parse_timestamp(timestamp, provider)
    decoded = signatures(
        items, version, lambda value: decode_hex(value, 32, provider), header=header, provider=provider
    )
    return timestamp, signed_at, decoded


def body_field(fields: Mapping[str, Any], name: str, provider: str, *, label: str | None = None) -> str:
    """A signed string field of a scheme that signs inside the JSON body (`label`: its name in messages).

    Absent, the request is unsigned (`missing_header`); of another type, `malformed_signature`.
    """
    if name not in fields:
        raise SignatureError(provider, "missing_header", f"{label or name} is missing from the body")
    value = fields[name]
    if not isinstance(value, str):
        raise SignatureError(provider, "malformed_signature", f"{label or name} is not a string")
    return value


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
