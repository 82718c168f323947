"""The signed service map: round trip, canonical form, tampering, validity window, the CLI."""

from __future__ import annotations

import hashlib
import io
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from itsdangerous import Signer

from events.envelope import rfc3339
from hub.cli.servicemap import service_map_cli
from hub.control.servicemap import (
    SALT,
    ServiceEntry,
    ServiceMapError,
    build_service_map,
    verify_service_map,
)

KEY = "test-signing-key"
NOW = 1_700_000_000.0
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def entries() -> list[ServiceEntry]:
    return [
        ServiceEntry(
            name="rss-news",
            provider="rss",
            type="poll",
            enabled=False,
            ingress_url=None,
            routes=(),
            status="degraded",
        ),
        ServiceEntry(
            name="gh-acme",
            provider="github",
            type="webhook",
            enabled=True,
            ingress_url="https://hub.example/hooks/acme/gh-acme",
            routes=(
                {"name": "deploys", "target": {"subject": "svc.deployer.requests"}},
                {
                    "name": "audit",
                    "target": {
                        "http": {
                            "url": "https://audit.example/in",
                            "method": "PUT",
                            "headers": {"Authorization": "Bearer s3cr3t"},
                            "timeout": 5.0,
                        }
                    },
                },
            ),
            status="ok",
        ),
    ]


def signed(signing_key: str = KEY, ttl_s: int = 300) -> dict[str, Any]:
    return build_service_map("acme", entries(), signing_key=signing_key, ttl_s=ttl_s, now=NOW)


def resigned(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with a valid signature over whatever it now holds, as a careless signer would make it."""
    body = {field: value for field, value in document.items() if field != "signature"}
    signature = Signer(KEY, salt=SALT, digest_method=hashlib.sha256).get_signature(
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    )
    return {**body, "signature": signature.decode()}


def reason(document: Any, key: str = KEY, now: float = NOW) -> str:
    with pytest.raises(ServiceMapError) as failure:
        verify_service_map(document, key, now=now)
    assert str(failure.value)
    return failure.value.reason


def test_a_built_map_verifies_as_dict_bytes_and_text() -> None:
    document = signed()

    assert list(document) == ["tenant", "generatedAt", "ttlSeconds", "connectors", "signature"]
    assert document["tenant"] == "acme"
    assert document["generatedAt"] == "2023-11-14T22:13:20.000Z"
    assert document["ttlSeconds"] == 300
    assert [connector["name"] for connector in document["connectors"]] == ["gh-acme", "rss-news"]
    assert verify_service_map(document, KEY, now=NOW) == document
    assert verify_service_map(orjson.dumps(document), KEY, now=NOW) == document
    assert verify_service_map(orjson.dumps(document).decode(), KEY, now=NOW) == document


def test_entries_are_camel_case_and_routes_keep_no_headers() -> None:
    github = entries()[1].to_dict()

    assert github == {
        "name": "gh-acme",
        "provider": "github",
        "type": "webhook",
        "enabled": True,
        "ingressUrl": "https://hub.example/hooks/acme/gh-acme",
        "routes": [
            {"name": "deploys", "target": {"subject": "svc.deployer.requests"}},
            {"name": "audit", "target": {"http": {"url": "https://audit.example/in", "method": "PUT"}}},
        ],
        "status": "ok",
        "certification": "pending",
    }
    assert b"s3cr3t" not in orjson.dumps(signed())


@pytest.mark.parametrize(
    "target",
    [
        {"subject": "svc.a", "http": {"url": "https://b.example/"}},
        {},
        {"subject": 7},
        {"http": {"method": "POST"}},
        {"http": {"url": "https://b.example/", "method": None}},
    ],
)
def test_a_route_needs_exactly_one_well_formed_target(target: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        ServiceEntry("c", "github", "webhook", True, None, ({"name": "r", "target": target},), "ok")


def test_entries_refuse_unknown_types_and_nameless_routes() -> None:
    with pytest.raises(ValueError, match="type must be webhook or poll"):
        ServiceEntry("c", "github", "push", True, None, (), "ok")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a name and a target"):
        ServiceEntry("c", "github", "webhook", True, None, ({"target": {"subject": "svc.a"}},), "ok")


def test_reordered_and_reindented_json_still_verifies() -> None:
    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(item) for item in value]
        return value

    document = signed()
    reordered = reversed_keys(document)

    assert orjson.dumps(reordered) != orjson.dumps(document)
    assert verify_service_map(reordered, KEY, now=NOW) == document
    assert verify_service_map(orjson.dumps(reordered, option=orjson.OPT_INDENT_2), KEY, now=NOW) == document


def test_no_single_changed_byte_ever_verifies() -> None:
    serialized = orjson.dumps(signed())

    for position, original in enumerate(serialized):
        for replacement in range(256):
            if replacement == original:
                continue
            tampered = serialized[:position] + bytes([replacement]) + serialized[position + 1 :]
            with pytest.raises(ServiceMapError) as failure:
                verify_service_map(tampered, KEY, now=NOW)
            assert failure.value.reason in {"malformed", "bad_signature"}, (position, replacement)


def test_another_spelling_of_the_same_signature_bytes_is_refused() -> None:
    document = signed()
    signature = document["signature"]

    # The last of 43 base64 characters carries 4 signature bits and 2 spare bits that decoding ignores.
    for last in BASE64URL.replace(signature[-1], ""):
        assert reason({**document, "signature": signature[:-1] + last}) == "bad_signature"
    assert reason({**document, "signature": signature + "="}) == "bad_signature"


def test_another_key_is_a_bad_signature() -> None:
    assert reason(signed(), key="another-key") == "bad_signature"
    assert reason(signed(signing_key="another-key")) == "bad_signature"


def test_a_map_holds_for_its_ttl_and_no_longer() -> None:
    document = signed(ttl_s=60)

    assert verify_service_map(document, KEY, now=NOW + 60) == document
    assert reason(document, now=NOW + 61) == "expired"


def test_a_map_from_the_future_is_not_yet_valid_beyond_the_leeway() -> None:
    document = signed()

    assert verify_service_map(document, KEY, now=NOW - 5) == document
    assert reason(document, now=NOW - 6) == "not_yet_valid"
    assert verify_service_map(document, KEY, now=NOW - 30, leeway_s=30) == document


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not json",
        "[]",
        b"null",
        b"\xff\xfe",
        {"tenant": "acme"},
    ],
)
def test_unparsable_or_incomplete_documents_are_malformed(document: Any) -> None:
    assert reason(document) == "malformed"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant", 7),
        ("generatedAt", "yesterday"),
        ("generatedAt", "2023-11-14T22:13:20"),
        ("ttlSeconds", "300"),
        ("ttlSeconds", 300.0),
        ("ttlSeconds", True),
        ("connectors", {"gh-acme": {}}),
        ("connectors", ["gh-acme"]),
    ],
)
def test_ill_typed_fields_are_malformed_even_when_signed(field: str, value: Any) -> None:
    assert reason(resigned({**signed(), field: value})) == "malformed"


def test_a_missing_or_ill_typed_signature_is_malformed() -> None:
    document = signed()

    assert reason({field: value for field, value in document.items() if field != "signature"}) == "malformed"
    assert reason({**document, "signature": None}) == "malformed"


def test_a_mapping_that_is_not_json_is_malformed() -> None:
    assert reason({**signed(), "connectors": [{"name": object()}]}) == "malformed"


def test_building_needs_a_key_and_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="signing key is empty"):
        build_service_map("acme", [], signing_key="")
    with pytest.raises(ValueError, match="at least 1 second"):
        build_service_map("acme", [], signing_key=KEY, ttl_s=0)


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    """A fresh map of acme (signed now, with KEY)."""
    path = tmp_path / "map.json"
    path.write_bytes(orjson.dumps(build_service_map("acme", entries(), signing_key=KEY)))
    return path


def expiry(path: Path) -> str:
    document = orjson.loads(path.read_bytes())
    return rfc3339(datetime.fromisoformat(document["generatedAt"]).timestamp() + document["ttlSeconds"])


def test_cli_verifies_a_map_file(map_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert service_map_cli(map_file, KEY) == 0

    assert capsys.readouterr() == (
        f"service map of tenant acme verified: 2 connector(s), expires at {expiry(map_file)}\n",
        "",
    )


def test_cli_reads_stdin_without_a_file(
    map_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(map_file.read_bytes())))

    assert service_map_cli(None, KEY) == 0

    assert capsys.readouterr().out.startswith("service map of tenant acme verified: 2 connector(s)")


def test_cli_refuses_a_tampered_map(map_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    map_file.write_bytes(map_file.read_bytes().replace(b"svc.deployer.requests", b"svc.attacker.requests"))

    assert service_map_cli(map_file, KEY) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("connector-hub: service map bad_signature: the signature does not match")


def test_cli_says_which_setting_is_missing(map_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert service_map_cli(map_file, None) == 2
    assert "set HUB_SIGNING_KEY" in capsys.readouterr().err
    assert service_map_cli(map_file, "") == 2
    assert "set HUB_SIGNING_KEY" in capsys.readouterr().err


def test_cli_reports_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.json"

    assert service_map_cli(missing, KEY) == 2

    assert capsys.readouterr().err == f"connector-hub: {missing}: No such file or directory\n"
