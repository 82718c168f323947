"""The JSON Schemas in `schemas/json/`, generated from the models (`connector-hub schemas`).

Editors and non-Python tools read these files; a test fails when they drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

import schemas
from events.envelope import Envelope
from hub.cli.command import Command, Invocation
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument

SCHEMA_DIR = Path(schemas.__file__).parent / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every published contract."""
    documents = {
        "connector.schema.json": ConnectorDocument.model_json_schema(),
        "envelope.schema.json": TypeAdapter(Envelope).json_schema(),
        "policy.schema.json": PolicyDocument.model_json_schema(),
    }
    return {name: {"$schema": DRAFT, "$id": f"connector-hub/{name}", **doc} for name, doc in documents.items()}


def render(document: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def drifted(directory: Path = SCHEMA_DIR) -> list[str]:
    """The schema files that are missing or differ from the models."""
    return [
        name
        for name, document in schema_documents().items()
        if not (directory / name).is_file() or (directory / name).read_text() != render(document)
    ]


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema file; returns the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in schema_documents().items():
        (directory / name).write_text(render(document))
    return sorted(schema_documents())


def _schemas(run: Invocation) -> int:
    if run.args.check:
        stale = drifted()
        for name in stale:
            print(f"{SCHEMA_DIR / name} is out of date: run `connector-hub schemas`", file=sys.stderr)
        return 1 if stale else 0
    for name in write_schemas():
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


SCHEMAS = Command(
    ("schemas",),
    "write schemas/json from the models, or --check for drift",
    _schemas,
    lambda parser: parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in files differ"),
    takes_settings=False,
)
