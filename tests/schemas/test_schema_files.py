"""The checked-in JSON Schemas (`schemas/json/`) match the models; CI relies on the drift test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hub import cli
from hub.cli import schemagen

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["connector.schema.json", "envelope.schema.json", "policy.schema.json"]


def test_checked_in_schemas_have_not_drifted() -> None:
    """If this fails, run `connector-hub schemas` and commit the result."""
    assert schemagen.drifted() == []


def test_the_schema_directory_is_the_package_one() -> None:
    assert schemagen.SCHEMA_DIR == ROOT / "schemas" / "json"
    assert sorted(p.name for p in schemagen.SCHEMA_DIR.glob("*.schema.json")) == NAMES


def test_drift_check_can_fail(tmp_path: Path) -> None:
    assert schemagen.write_schemas(tmp_path) == NAMES
    assert schemagen.drifted(tmp_path) == []
    edited = tmp_path / "envelope.schema.json"
    edited.write_text(edited.read_text().replace('"Hubtenant"', '"HubTenant"', 1))
    assert schemagen.drifted(tmp_path) == ["envelope.schema.json"]


def test_missing_schema_file_counts_as_drift(tmp_path: Path) -> None:
    schemagen.write_schemas(tmp_path)
    (tmp_path / "connector.schema.json").unlink()
    assert schemagen.drifted(tmp_path) == ["connector.schema.json"]


def test_schemas_check_command_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schemas", "--check"]) == 0
    assert capsys.readouterr().err == ""


def test_rendering_is_stable() -> None:
    for name, document in schemagen.schema_documents().items():
        text = schemagen.render(document)
        assert text.endswith("}\n")
        assert json.loads(text) == document
        assert schemagen.render(json.loads(text)) == text, name


@pytest.mark.parametrize("name", NAMES)
def test_schema_headers(name: str) -> None:
    document = json.loads((schemagen.SCHEMA_DIR / name).read_text())
    assert document["$schema"] == schemagen.DRAFT
    assert document["$id"] == f"connector-hub/{name}"


def test_envelope_schema_lists_the_contract() -> None:
    document = json.loads((schemagen.SCHEMA_DIR / "envelope.schema.json").read_text())
    for attribute in ("specversion", "id", "source", "type", "time", "hubtenant", "hubbodysha256", "traceparent"):
        assert attribute in document["properties"]
    assert {"id", "source", "type", "time", "hubverified"} <= set(document["required"])


def test_examples_match_their_schemas() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validators = {
        kind: jsonschema.Draft202012Validator(json.loads((schemagen.SCHEMA_DIR / name).read_text()))
        for kind, name in (("Connector", "connector.schema.json"), ("Policy", "policy.schema.json"))
    }
    documents = [d for d in yaml.safe_load_all((ROOT / "examples" / "connectors.yaml").read_text()) if d]
    assert [d["kind"] for d in documents] == ["Connector"] * 4 + ["Policy"] + ["Connector"] * 3
    for document in documents:
        errors = list(validators[document["kind"]].iter_errors(json.loads(json.dumps(document))))
        assert errors == [], [e.message for e in errors]
    validator = validators["Connector"]
    broken = {**documents[0], "metadata": {"name": "Not Valid", "tenant": "demo"}}
    assert list(validator.iter_errors(broken))
