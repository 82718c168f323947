"""A connector type's version and lifecycle: what the catalog shows and what an apply and a build check.

Every provider and poller declares a type version (semver), the version of its options' schema and
its lifecycle state. Type versions follow semver: a minor version only adds options, so a spec
written for `1.2` works on any `1.x` from `1.2` on; a new major may change what a spec means, and the
hub refuses a spec pinned (`spec.typeVersion`) to a major it does not serve. A deprecated type is
still served, with a warning naming its replacement; a retired one (or one the operator disabled
with `HUB_DISABLED_PROVIDERS`) is refused at apply and not served by any build.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Literal

State = Literal["active", "deprecated", "retired"]
Kind = Literal["provider", "poller"]

_VERSION = re.compile(r"(0|[1-9][0-9]{0,5})(?:\.(0|[1-9][0-9]{0,5})(?:\.(0|[1-9][0-9]{0,5}))?)?")


@dataclass(frozen=True, slots=True, order=True)
class TypeVersion:
    """A semver version of a connector type (no pre-release or build part: the hub serves releases)."""

    major: int
    minor: int = 0
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TypeVersion:
        """`1.2.3`; ValueError for anything else."""
        found = _VERSION.fullmatch(text)
        if found is None or found.group(3) is None:
            raise ValueError(f"{text!r} is not a semver version such as 1.2.0")
        return cls(int(found.group(1)), int(found.group(2)), int(found.group(3)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True, slots=True)
class VersionPin:
    """`spec.typeVersion`: a major, or the least version wanted within a major (`1.2` is `>=1.2.0, <2`)."""

    text: str
    least: TypeVersion

    @classmethod
    def parse(cls, text: str) -> VersionPin:
        """`1`, `1.2` or `1.2.3`; ValueError for anything else."""
        found = _VERSION.fullmatch(text)
        if found is None:
            raise ValueError(f"{text!r} is not a type version pin such as 1, 1.2 or 1.2.0")
        major, minor, patch = (int(part) if part is not None else 0 for part in found.groups())
        return cls(text, TypeVersion(major, minor, patch))

    def accepts(self, version: TypeVersion) -> bool:
        """Whether a type at `version` serves a spec with this pin: the same major, at least as recent."""
        return version.major == self.least.major and version >= self.least


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a type is in its life: `active`; `deprecated` since a date, still served, with the type to
    move to; `retired` since a date, no longer served."""

    state: State = "active"
    since: date | None = None
    replacement: str | None = None

    def __post_init__(self) -> None:
        if self.state == "active" and (self.since is not None or self.replacement is not None):
            raise ValueError("an active type has no date and no replacement")
        if self.state != "active" and self.since is None:
            raise ValueError(f"a {self.state} type says since when")

    @classmethod
    def deprecated(cls, since: date, replacement: str | None = None) -> Lifecycle:
        """Still served, with a warning (naming `replacement` when there is one)."""
        return cls("deprecated", since, replacement)

    @classmethod
    def retired(cls, since: date, replacement: str | None = None) -> Lifecycle:
        """No longer served."""
        return cls("retired", since, replacement)

    def instead(self) -> str:
        """`: use <replacement> instead`, or nothing when there is none."""
        return f": use {self.replacement} instead" if self.replacement else ""


ACTIVE = Lifecycle()
FIRST_VERSION = TypeVersion(1, 0, 0)
FIRST_OPTIONS_VERSION = 1


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """One connector type as the catalog lists it."""

    kind: Kind
    name: str
    version: TypeVersion
    options_version: int
    lifecycle: Lifecycle

    def to_dict(self, disabled: Collection[str]) -> dict[str, object]:
        """Its catalog entry on a hub that disables the types in `disabled`."""
        return {
            "kind": self.kind,
            "name": self.name,
            "typeVersion": str(self.version),
            "optionsVersion": self.options_version,
            "lifecycle": self.lifecycle.state,
            "since": self.lifecycle.since.isoformat() if self.lifecycle.since else None,
            "replacement": self.lifecycle.replacement,
            "enabled": self.name not in disabled and self.lifecycle.state != "retired",
        }

    def refusals(self, pin: str | None, disabled: Collection[str]) -> list[tuple[str, str]]:
        """Why a spec of this type (pinned to `pin`) is not served here: (what, message) pairs, `what`
        being `type` (the type itself) or `version` (the pin)."""
        refused: list[tuple[str, str]] = []
        if self.lifecycle.state == "retired":
            when = self.lifecycle.since.isoformat() if self.lifecycle.since else ""
            refused.append(("type", f"{self.kind} {self.name} was retired on {when}{self.lifecycle.instead()}"))
        elif self.name in disabled:
            refused.append(
                (
                    "type",
                    f"{self.kind} {self.name} is disabled on this hub (HUB_DISABLED_PROVIDERS)"
                    f"{self.lifecycle.instead()}",
                )
            )
        if pin is not None:
            wanted = VersionPin.parse(pin)
            if not wanted.accepts(self.version):
                refused.append(("version", self._pin_message(wanted)))
        return refused

    def _pin_message(self, wanted: VersionPin) -> str:
        served = f"this hub serves {self.kind} {self.name} {self.version}"
        if wanted.least.major != self.version.major:
            major = f"major version {wanted.least.major}"
            return f"typeVersion {wanted.text} asks for {major}: {served} (major {self.version.major} only)"
        return f"typeVersion {wanted.text} needs at least {wanted.least}: {served}"

    def warnings(self) -> list[str]:
        """What an apply of a spec of this type should tell the operator (a deprecation)."""
        if self.lifecycle.state != "deprecated":
            return []
        when = self.lifecycle.since.isoformat() if self.lifecycle.since else ""
        return [f"{self.kind} {self.name} is deprecated since {when} and will be retired{self.lifecycle.instead()}"]
