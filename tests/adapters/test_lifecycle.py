"""Type versions, version pins and lifecycle states (adapters/lifecycle.py), and the test-only types
the catalog tests register: no real provider is deprecated or retired, so these stand in for one."""

from __future__ import annotations

import re
from datetime import date
from types import MappingProxyType

import pytest
from pydantic import ValidationError

from adapters import registry
from adapters.lifecycle import Lifecycle, TypeInfo, TypeVersion, VersionPin
from adapters.pollers.rss import RssPoller
from adapters.webhooks.github import GitHubAdapter
from hub.settings import Settings
from schemas.connector import TYPE_VERSION_PIN


class LegacyHooks(GitHubAdapter):
    """A deprecated provider at 1.2.0 whose replacement is `github` (test only)."""

    name = "legacy-hooks"
    type_version = TypeVersion(1, 2, 0)
    lifecycle = Lifecycle.deprecated(date(2026, 1, 31), "github")


class AncientHooks(GitHubAdapter):
    """A retired provider whose replacement is `github` (test only)."""

    name = "ancient-hooks"
    lifecycle = Lifecycle.retired(date(2025, 6, 30), "github")


class OldFeed(RssPoller):
    """A retired poller whose replacement is `rss` (test only)."""

    name = "old-feed"
    lifecycle = Lifecycle.retired(date(2025, 6, 30), "rss")


def register_test_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add the test-only types to the registry for one test (the registry reads these mappings on
    every lookup)."""
    providers = {**registry.WEBHOOK_PROVIDERS, LegacyHooks.name: LegacyHooks, AncientHooks.name: AncientHooks}
    monkeypatch.setattr(registry, "WEBHOOK_PROVIDERS", MappingProxyType(providers))
    monkeypatch.setattr(registry, "POLLERS", MappingProxyType({**registry.POLLERS, OldFeed.name: OldFeed}))


def test_versions_parse_order_and_print() -> None:
    assert TypeVersion.parse("1.10.0") > TypeVersion.parse("1.9.3") > TypeVersion(1)
    assert str(TypeVersion.parse("2.0.1")) == "2.0.1"
    for text in ("1", "1.2", "v1.0.0", "01.0.0", "1.0.0-rc1", "1.0.0.0", ""):
        with pytest.raises(ValueError, match="semver"):
            TypeVersion.parse(text)


@pytest.mark.parametrize("text", ["1", "1.2", "1.2.0", "0", "10.0.3", "01", "1.", "1.2.3.4", "v1", "1.x", " 1", ""])
def test_the_spec_pattern_and_the_parser_accept_the_same_pins(text: str) -> None:
    in_schema = re.fullmatch(TYPE_VERSION_PIN.strip("^$"), text) is not None
    try:
        VersionPin.parse(text)
        parsed = True
    except ValueError:
        parsed = False
    assert in_schema == parsed


def test_a_pin_is_a_major_or_the_least_version_within_a_major() -> None:
    major = VersionPin.parse("1")
    assert major.accepts(TypeVersion(1, 0, 0))
    assert major.accepts(TypeVersion(1, 7, 2))
    assert not major.accepts(TypeVersion(2, 0, 0))
    least = VersionPin.parse("1.2")
    assert least.accepts(TypeVersion(1, 2, 0))
    assert least.accepts(TypeVersion(1, 3, 0))
    assert not least.accepts(TypeVersion(1, 1, 9))
    assert not least.accepts(TypeVersion(2, 2, 0))
    assert not VersionPin.parse("1.2.1").accepts(TypeVersion(1, 2, 0))


def test_a_lifecycle_state_is_consistent() -> None:
    with pytest.raises(ValueError, match="since when"):
        Lifecycle("deprecated")
    with pytest.raises(ValueError, match="no date"):
        Lifecycle("active", date(2026, 1, 1))


def test_refusals_and_warnings_name_the_replacement_and_the_served_version() -> None:
    legacy = registry.type_info("provider", LegacyHooks)
    assert legacy.refusals(None, ()) == []
    assert legacy.warnings() == [
        "provider legacy-hooks is deprecated since 2026-01-31 and will be retired: use github instead"
    ]
    assert legacy.refusals("1.1", ()) == []
    assert legacy.refusals("2", ()) == [
        (
            "version",
            "typeVersion 2 asks for major version 2: this hub serves provider legacy-hooks 1.2.0 (major 1 only)",
        )
    ]
    assert legacy.refusals("1.3", ()) == [
        ("version", "typeVersion 1.3 needs at least 1.3.0: this hub serves provider legacy-hooks 1.2.0")
    ]
    assert legacy.refusals(None, ("legacy-hooks",)) == [
        ("type", "provider legacy-hooks is disabled on this hub (HUB_DISABLED_PROVIDERS): use github instead")
    ]
    ancient = registry.type_info("provider", AncientHooks)
    assert ancient.refusals(None, ()) == [
        ("type", "provider ancient-hooks was retired on 2025-06-30: use github instead")
    ]
    assert ancient.warnings() == []
    assert not ancient.to_dict(())["enabled"]


def test_every_registered_type_declares_a_version_and_a_lifecycle() -> None:
    listed = registry.catalog()
    assert [(t.kind, t.name) for t in listed] == [("provider", n) for n in sorted(registry.WEBHOOK_PROVIDERS)] + [
        ("poller", n) for n in sorted(registry.POLLERS)
    ]
    for info in listed:
        assert isinstance(info, TypeInfo)
        assert info.version.major >= 1, info.name
        assert info.options_version >= 1, info.name
        if info.lifecycle.replacement is not None:
            assert info.lifecycle.replacement in registry.known_types(), info.name


def test_the_test_only_types_are_listed_only_while_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "legacy-hooks" not in registry.known_types()
    register_test_types(monkeypatch)
    entries = {info.name: info.to_dict(()) for info in registry.catalog()}
    assert entries["legacy-hooks"] == {
        "kind": "provider",
        "name": "legacy-hooks",
        "typeVersion": "1.2.0",
        "optionsVersion": 1,
        "lifecycle": "deprecated",
        "since": "2026-01-31",
        "replacement": "github",
        "enabled": True,
    }
    assert entries["old-feed"]["kind"] == "poller"
    assert entries["old-feed"]["lifecycle"] == "retired"


def test_disabled_providers_come_from_the_environment_and_must_be_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DISABLED_PROVIDERS", "github, rss")
    assert Settings().disabled_providers == ("github", "rss")
    monkeypatch.setenv("HUB_DISABLED_PROVIDERS", "githb")
    with pytest.raises(ValidationError, match="'githb' is no registered provider or poller"):
        Settings()
