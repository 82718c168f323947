"""Load spec documents (Connector and Policy) from a YAML file or a folder, with errors that say where.

Every error names the file, the document's 1-based index within it, and the field path
(`spec.webhook.replayWindow`), so `connector-hub validate` can list them all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from schemas.suggest import error_message

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem in one document."""

    file: Path
    document: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: document {self.document}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """A valid Connector document and where it came from."""

    file: Path
    document: int
    connector: ConnectorDocument


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A valid Policy document and where it came from."""

    file: Path
    document: int
    policy: PolicyDocument


@dataclass(frozen=True, slots=True)
class LoadedSpecs:
    """Every valid document found, by kind."""

    connectors: list[LoadedSpec]
    policies: list[LoadedPolicy]


class _Located(Protocol):
    @property
    def file(self) -> Path: ...
    @property
    def document(self) -> int: ...


class SpecLoadError(Exception):
    """The specs have errors; `errors` lists every one."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def spec_files(path: Path) -> list[Path]:
    """The YAML files at `path` (itself, or every *.yaml / *.yml below it, sorted)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file())
    if path.is_file():
        return [path]
    raise SpecLoadError([SpecError(path, 0, "path", "no such file or folder")])


def read_specs(paths: Path | Iterable[Path]) -> tuple[LoadedSpecs, list[SpecError]]:
    """Every valid document under the path(s), and every error found (none are skipped silently).

    A connector defined twice, or a second Policy for a tenant, is an error, also when the two
    definitions are under different paths.
    """
    loaded = LoadedSpecs([], [])
    errors: list[SpecError] = []
    for path in [paths] if isinstance(paths, Path) else paths:
        try:
            files = spec_files(path)
        except SpecLoadError as exc:
            errors.extend(exc.errors)
            continue
        for file in files:
            for index, document in _documents(file, errors):
                _check_document(file, index, document, loaded, errors)
    errors.extend(_duplicates(loaded.connectors, lambda s: s.connector.key, "connector", "metadata.name"))
    errors.extend(_duplicates(loaded.policies, lambda s: (s.policy.tenant,), "policy for tenant", "metadata.tenant"))
    return loaded, errors


def load_specs(path: Path) -> LoadedSpecs:
    """Every document under `path`, or SpecLoadError listing all the errors."""
    loaded, errors = read_specs(path)
    if errors:
        raise SpecLoadError(errors)
    return loaded


def _documents(file: Path, errors: list[SpecError]) -> Iterator[tuple[int, Any]]:
    index = 0
    try:
        with file.open("rb") as stream:
            for index, document in enumerate(yaml.safe_load_all(stream), start=1):
                if document is not None:
                    yield index, document
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        errors.append(SpecError(file, index + 1, "yaml", f"{getattr(exc, 'problem', exc)}{where}"))
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(SpecError(file, 0, "file", str(exc)))


def _check_document(file: Path, index: int, document: Any, loaded: LoadedSpecs, errors: list[SpecError]) -> None:
    if not isinstance(document, dict):
        errors.append(SpecError(file, index, "(document)", "a spec document is a mapping"))
        return
    kind = document.get("kind")
    if kind not in ("Connector", "Policy"):
        errors.append(SpecError(file, index, "kind", f"unknown kind {kind!r}; expected Connector or Policy"))
        return
    model: type[ConnectorDocument] | type[PolicyDocument] = ConnectorDocument if kind == "Connector" else PolicyDocument
    try:
        if kind == "Connector":
            loaded.connectors.append(LoadedSpec(file, index, ConnectorDocument.model_validate(document)))
        else:
            loaded.policies.append(LoadedPolicy(file, index, PolicyDocument.model_validate(document)))
    except ValidationError as exc:
        errors.extend(SpecError(file, index, field_path(e["loc"]), error_message(model, e)) for e in exc.errors())


def field_path(loc: tuple[int | str, ...]) -> str:
    """`('spec', 'secrets', 0, 'secretRef')` -> `spec.secrets[0].secretRef`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def _duplicates(
    loaded: Sequence[_Located], identity: Callable[[Any], tuple[str, ...]], what: str, field: str
) -> list[SpecError]:
    first: dict[tuple[str, ...], _Located] = {}
    errors = []
    for spec in loaded:
        earlier = first.setdefault(identity(spec), spec)
        if earlier is not spec:
            where = f"{earlier.file} document {earlier.document}"
            message = f"{what} {'/'.join(identity(spec))} is already defined in {where}"
            errors.append(SpecError(spec.file, spec.document, field, message))
    return errors
