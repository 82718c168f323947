"""`connector-hub validate PATH...`: every problem in every spec file, each naming file,
document and field. Checks the models (Connector and Policy documents), each provider's and each
poller's own options, and what stops a webhook connector from being served under this process's
settings (no secret, a replay window the duplicate window cannot cover: the apply checks without the
store); the secrets themselves are a start-up concern (they may not exist where specs are validated,
e.g. in CI)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from hub.cli.command import Command, Invocation
from hub.control.checks import ServingLimits, check_connector
from hub.gate.catalog import build_catalog
from hub.settings import Settings
from schemas.loader import SpecError, read_specs


@dataclass
class ValidationReport:
    """What `validate` found: valid documents, problems (errors) and warnings."""

    connectors: int = 0
    policies: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def validate_paths(paths: list[Path], limits: ServingLimits | None = None) -> ValidationReport:
    """Validate every document under all the paths together, against `limits` (default: this
    process's settings)."""
    limits = limits or ServingLimits.of(Settings())
    loaded, errors = read_specs(paths)
    report = ValidationReport(policies=len(loaded.policies), problems=[str(e) for e in errors])
    for spec in loaded.connectors:
        problems = check_connector(spec.connector, limits, None)
        if problems:
            report.problems.extend(str(SpecError(spec.file, spec.document, p.field, p.message)) for p in problems)
            continue
        report.connectors += 1
    report.warnings = [
        f"tenant {tenant} has routes but no Policy document: every one of its routes is denied"
        for tenant in build_catalog(loaded).tenants_without_policy()
    ]
    return report


def _validate(run: Invocation) -> int:
    report = validate_paths(run.args.paths, ServingLimits.of(run.settings))
    for problem in report.problems:
        print(problem, file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{report.connectors} connector(s) valid, {len(report.problems)} problem(s); "
        f"{report.policies} policy document(s)"
    )
    return 1 if report.problems else 0


VALIDATE = Command(
    ("validate",),
    "check connector spec files; lists every error",
    _validate,
    lambda parser: parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="spec files or folders"),
)
