"""`connector-hub validate PATH...`: every problem in every spec file, each naming file,
document and field. Checks the models and each provider's own options; secrets are a start-up
concern (they may not exist where specs are validated, e.g. in CI)."""

from __future__ import annotations

from pathlib import Path

from hub.errors import ConfigError
from hub.registry import configure_adapter
from schemas.loader import SpecError, read_specs


def validate_paths(paths: list[Path]) -> tuple[int, list[str]]:
    """(connectors found valid, problems) over all the paths together."""
    loaded, errors = read_specs(paths)
    problems = [str(e) for e in errors]
    valid = 0
    for spec in loaded:
        if spec.connector.spec.type == "webhook":
            try:
                configure_adapter(spec.connector)
            except ConfigError as exc:
                problems.extend(str(SpecError(spec.file, spec.document, p.field, p.message)) for p in exc.problems)
                continue
        valid += 1
    return valid, problems
