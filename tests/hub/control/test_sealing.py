"""Envelope sealing and master key loading: round trips, wrong keys, tampering, and no key in any message."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.control.sealing import (
    MasterKey,
    MasterKeyError,
    SealedValue,
    SealingError,
    generate_master_key,
    load_master_key,
    seal,
    unseal,
)

RAW_KEY = bytes(range(32))
KEY_TEXT = base64.b64encode(RAW_KEY).decode()
AAD = b"connector-hub secret acme/gh-secret/v1"
PLAINTEXT = b"s3cr3t-value-XYZ"


@pytest.fixture
def master() -> MasterKey:
    return MasterKey(RAW_KEY)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_seal_then_unseal_gives_the_plaintext_back(master: MasterKey) -> None:
    sealed = seal(master, AAD, PLAINTEXT)

    assert unseal(master, AAD, sealed) == PLAINTEXT
    assert PLAINTEXT not in sealed.ciphertext
    assert sealed.master_key_id == master.key_id


def test_every_seal_uses_a_fresh_data_key_and_nonces(master: MasterKey) -> None:
    first, second = seal(master, AAD, PLAINTEXT), seal(master, AAD, PLAINTEXT)

    assert first.wrapped_key != second.wrapped_key
    assert first.nonce != second.nonce
    assert first.key_nonce != second.key_nonce
    assert first.ciphertext != second.ciphertext


def test_the_dict_form_round_trips(master: MasterKey) -> None:
    sealed = seal(master, AAD, PLAINTEXT)

    assert SealedValue.from_dict(sealed.to_dict()) == sealed
    assert all(isinstance(value, str) for value in sealed.to_dict().values())


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"masterKeyId": "x"},
        {"masterKeyId": "x", "wrappedKey": "!", "keyNonce": "", "nonce": "", "ciphertext": ""},
    ],
)
def test_a_malformed_dict_is_a_sealing_error(data: object) -> None:
    with pytest.raises(SealingError, match="malformed sealed value"):
        SealedValue.from_dict(data)


def test_another_master_key_names_both_key_ids(master: MasterKey) -> None:
    other = MasterKey(bytes(32))
    sealed = seal(master, AAD, PLAINTEXT)

    with pytest.raises(SealingError) as caught:
        unseal(other, AAD, sealed)

    assert str(caught.value) == f"sealed with master key {master.key_id}, this hub has {other.key_id}"
    assert master.key_id != other.key_id


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: dataclasses.replace(s, ciphertext=flip_last_byte(s.ciphertext)),
        lambda s: dataclasses.replace(s, wrapped_key=flip_last_byte(s.wrapped_key)),
        lambda s: dataclasses.replace(s, nonce=flip_last_byte(s.nonce)),
        lambda s: dataclasses.replace(s, key_nonce=flip_last_byte(s.key_nonce)),
        lambda s: dataclasses.replace(s, nonce=s.nonce[:4]),
    ],
    ids=["ciphertext", "wrapped-key", "nonce", "key-nonce", "short-nonce"],
)
def test_a_tampered_record_does_not_decrypt(master: MasterKey, tamper: Callable[[SealedValue], SealedValue]) -> None:
    sealed = seal(master, AAD, PLAINTEXT)

    with pytest.raises(SealingError, match="cannot decrypt: wrong master key or tampered record"):
        unseal(master, AAD, tamper(sealed))


def test_a_record_moved_to_another_secret_or_version_does_not_decrypt(master: MasterKey) -> None:
    sealed = seal(master, AAD, PLAINTEXT)

    for other_aad in (b"connector-hub secret acme/gh-secret/v2", b"connector-hub secret other/gh-secret/v1"):
        with pytest.raises(SealingError, match="cannot decrypt"):
            unseal(master, other_aad, sealed)


def test_a_master_key_never_shows_its_material(master: MasterKey) -> None:
    for shown in (repr(master), str(master), f"{master}"):
        assert RAW_KEY.hex() not in shown
        assert KEY_TEXT not in shown
        assert str(RAW_KEY) not in shown
        assert master.key_id in shown


def test_the_key_id_is_derived_from_the_key() -> None:
    assert MasterKey(RAW_KEY).key_id == MasterKey(RAW_KEY).key_id
    assert len(MasterKey(RAW_KEY).key_id) == 16
    assert MasterKey(RAW_KEY).key_id != MasterKey(bytes(32)).key_id


def test_a_master_key_is_32_bytes() -> None:
    with pytest.raises(MasterKeyError, match="32 bytes, got 16"):
        MasterKey(bytes(16))


def test_generated_keys_load_and_differ() -> None:
    first, second = generate_master_key(), generate_master_key()

    assert first != second
    loaded = load_master_key(first, None)
    assert loaded is not None
    assert base64.b64encode(loaded.key).decode() == first


def test_load_from_the_value(master: MasterKey) -> None:
    loaded = load_master_key(KEY_TEXT, None)

    assert loaded is not None
    assert loaded.key == RAW_KEY
    assert loaded.key_id == master.key_id


def test_load_the_urlsafe_variant_without_padding() -> None:
    key = b"\xfb\xff" * 16  # encodes with + and / in standard base64
    text = base64.urlsafe_b64encode(key).decode().rstrip("=")
    assert "-" in text
    assert "_" in text

    loaded = load_master_key(text, None)

    assert loaded is not None
    assert loaded.key == key


def test_load_from_a_file_with_surrounding_whitespace(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(f"  {KEY_TEXT}\n")

    loaded = load_master_key(None, key_file)

    assert loaded is not None
    assert loaded.key == RAW_KEY


def test_neither_setting_means_no_master_key() -> None:
    assert load_master_key(None, None) is None
    assert load_master_key("", None) is None


def test_both_settings_are_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY_TEXT)

    with pytest.raises(MasterKeyError) as caught:
        load_master_key(KEY_TEXT, key_file)

    assert str(caught.value) == "set HUB_MASTER_KEY or HUB_MASTER_KEY_FILE, not both"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (base64.b64encode(b"k" * 16).decode(), "HUB_MASTER_KEY must decode to 32 bytes, got 16"),
        (base64.b64encode(b"k" * 33).decode(), "HUB_MASTER_KEY must decode to 32 bytes, got 33"),
        ("not base64 at all!" + "A" * 30, "HUB_MASTER_KEY is not valid base64"),
        (KEY_TEXT[:-2] + "é=", "HUB_MASTER_KEY is not valid base64"),
        ("A" * 45, "HUB_MASTER_KEY is not valid base64"),
    ],
    ids=["short", "long", "bad-characters", "non-ascii", "bad-length"],
)
def test_a_bad_value_is_named_but_never_shown(value: str, message: str) -> None:
    with pytest.raises(MasterKeyError) as caught:
        load_master_key(value, None)

    assert str(caught.value) == message
    assert value not in str(caught.value)
    assert value.strip("=") not in repr(caught.value)


def test_a_bad_file_is_named_but_its_content_never_shown(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    content = base64.b64encode(b"secret-material-16").decode()
    key_file.write_text(content)

    with pytest.raises(MasterKeyError) as caught:
        load_master_key(None, key_file)

    assert str(caught.value) == f"HUB_MASTER_KEY_FILE {key_file} must decode to 32 bytes, got 18"
    assert content not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "is empty"), (b"\xff\xfe key", "is not base64 text"), (b"%%%%", "is not valid base64")],
)
def test_an_unusable_file_says_why(tmp_path: Path, content: bytes, problem: str) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_bytes(content)

    with pytest.raises(MasterKeyError) as caught:
        load_master_key(None, key_file)

    assert str(caught.value) == f"HUB_MASTER_KEY_FILE {key_file} {problem}"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "master.key"

    with pytest.raises(MasterKeyError) as caught:
        load_master_key(None, missing)

    assert str(caught.value) == f"HUB_MASTER_KEY_FILE {missing} cannot be read: No such file or directory"
