"""Envelope encryption for the secret store: AES-256-GCM data keys wrapped by one master key.

Each sealed value gets its own random data key; only the 48-byte wrapped data key depends on the
master key. The same associated data (the store binds it to tenant, name and version) authenticates
both layers, so a record copied under another key does not decrypt. Key material never appears in
a repr, a log line or an exception message: errors name the setting, the file or the key id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID_CONTEXT = b"connector-hub master key id"


class MasterKeyError(Exception):
    """The master key setting is unusable. The message never contains key material."""


class SealingError(Exception):
    """A sealed value cannot be opened (other master key, tampering, malformed record)."""


@dataclass(frozen=True)
class MasterKey:
    """The hub's 256-bit master key; `key_id` identifies it in sealed records without revealing it."""

    key: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, got {len(self.key)}")
        object.__setattr__(self, "key_id", hashlib.sha256(_KEY_ID_CONTEXT + self.key).hexdigest()[:16])


def generate_master_key() -> str:
    """A new random master key as the base64 text HUB_MASTER_KEY expects."""
    return base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode("ascii")


def load_master_key(value: str | None, file: Path | None) -> MasterKey | None:
    """The master key from HUB_MASTER_KEY (`value`) or HUB_MASTER_KEY_FILE (`file`), None when neither is set.

    An empty value counts as unset, so `HUB_MASTER_KEY=` in a compose file does not stop a hub that
    does not use the store.
    """
    value = value.strip() if value else None
    if value and file is not None:
        raise MasterKeyError("set HUB_MASTER_KEY or HUB_MASTER_KEY_FILE, not both")
    if value:
        return MasterKey(_decode_key(value, "HUB_MASTER_KEY"))
    if file is None:
        return None
    where = f"HUB_MASTER_KEY_FILE {file}"
    try:
        text = file.read_bytes().decode("ascii").strip()
    except OSError as exc:
        raise MasterKeyError(f"{where} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise MasterKeyError(f"{where} is not base64 text") from None
    if not text:
        raise MasterKeyError(f"{where} is empty")
    return MasterKey(_decode_key(text, where))


def _decode_key(text: str, where: str) -> bytes:
    """Standard or urlsafe base64, padding optional, of exactly 32 bytes."""
    normalized = text.replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{where} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{where} must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


@dataclass(frozen=True)
class SealedValue:
    """A value encrypted under its own data key, with that data key wrapped by the master key."""

    wrapped_key: bytes
    key_nonce: bytes
    nonce: bytes
    ciphertext: bytes
    master_key_id: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form; the bytes as standard base64."""
        return {
            "wrappedKey": _b64(self.wrapped_key),
            "keyNonce": _b64(self.key_nonce),
            "nonce": _b64(self.nonce),
            "ciphertext": _b64(self.ciphertext),
            "masterKeyId": self.master_key_id,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SealedValue:
        """The inverse of `to_dict`; SealingError when a field is missing or not base64."""
        if not isinstance(data, dict) or not isinstance(data.get("masterKeyId"), str):
            raise SealingError("malformed sealed value")
        try:
            return cls(
                wrapped_key=base64.b64decode(data["wrappedKey"], validate=True),
                key_nonce=base64.b64decode(data["keyNonce"], validate=True),
                nonce=base64.b64decode(data["nonce"], validate=True),
                ciphertext=base64.b64decode(data["ciphertext"], validate=True),
                master_key_id=data["masterKeyId"],
            )
        except (KeyError, TypeError, ValueError):
            raise SealingError("malformed sealed value") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal(master: MasterKey, aad: bytes, plaintext: bytes) -> SealedValue:
    """Encrypt `plaintext` under a fresh data key and wrap that key with the master key, both bound to `aad`."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    key_nonce = os.urandom(NONCE_BYTES)
    return SealedValue(
        wrapped_key=AESGCM(master.key).encrypt(key_nonce, data_key, aad),
        key_nonce=key_nonce,
        nonce=nonce,
        ciphertext=AESGCM(data_key).encrypt(nonce, plaintext, aad),
        master_key_id=master.key_id,
    )


def unseal(master: MasterKey, aad: bytes, sealed: SealedValue) -> bytes:
    """The plaintext of `sealed`; SealingError for another master key, other `aad` or any tampering."""
    if sealed.master_key_id != master.key_id:
        raise SealingError(f"sealed with master key {sealed.master_key_id}, this hub has {master.key_id}")
    try:
        data_key = AESGCM(master.key).decrypt(sealed.key_nonce, sealed.wrapped_key, aad)
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except (InvalidTag, ValueError):
        # ValueError: a nonce or data key of the wrong length, only possible in a tampered record.
        raise SealingError("cannot decrypt: wrong master key or tampered record") from None
