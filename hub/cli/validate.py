"""`connector-hub validate PATH...`: every problem in every spec file, each naming file,
document and field. Checks the models (Connector and Policy documents), each provider's and each
poller's own options, and what stops a webhook connector from being served under this process's
settings (no secret, a replay window the duplicate window cannot cover: the apply checks without the
store); the secrets themselves are a start-up concern (they may not exist where specs are validated,
e.g. in CI)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hub.cli.command import Command, Invocation
from hub.control.checks import ServingLimits, check_connector, lifecycle_warnings
from hub.gate.catalog import build_catalog
from hub.ingest.connectors import configure_adapter
from hub.ingest.redaction import unmatched_rules
from hub.settings import Settings
from schemas.loader import LoadedSpec, SpecError, read_specs


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
        report.warnings.extend(lifecycle_warnings(spec.connector))
        report.warnings.extend(_unmatched_redactions(spec))
    report.warnings += [
        f"tenant {tenant} has routes but no Policy document: every one of its routes is denied"
        for tenant in build_catalog(loaded).tenants_without_policy()
    ]
    return report


def _unmatched_redactions(spec: LoadedSpec) -> list[str]:
    """A warning per redaction rule of a webhook connector that matches nothing in its provider's
    sample payload (a typo, or a field this provider does not send)."""
    document = spec.connector
    if document.spec.type != "webhook" or not document.spec.redact:
        return []
    unmatched = unmatched_rules(document, configure_adapter(document), time.time())
    return [
        f"{spec.file}: document {spec.document}: spec.redact[{index}]: {document.spec.redact[index].path} "
        f"matches nothing in the {document.spec.provider} sample payload"
        for index in unmatched
    ]


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
