"""Connector specs (docs/design.md §8): durations, models, and loading files with errors that say where."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.connector import ConnectorDocument
from schemas.durations import format_duration, parse_duration
from schemas.loader import SpecError, SpecLoadError, field_path, load_specs, read_specs, spec_files

# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("300s", timedelta(seconds=300)),
        ("72h", timedelta(hours=72)),
        ("1h30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("2d", timedelta(days=2)),
        ("1m1s", timedelta(seconds=61)),
        (30, timedelta(seconds=30)),
        (0.25, timedelta(milliseconds=250)),
        (0, timedelta(0)),
        (timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_parse_duration(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "value", ["5 minutes", "-1s", "", " ", "s", "5", "1h 30m", "5x", "1.s", ".5s", "5S", True, False, None, [], {}]
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.5])
def test_parse_duration_rejects_negative_numbers(value: float) -> None:
    """The published schema says `minimum: 0`; a negative number is no duration either."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e20, "99999999999999d", "9" * 30 + "s"])
def test_parse_duration_out_of_range_is_a_value_error(value: Any) -> None:
    """Huge or infinite durations are a ValueError (a validation error), never an OverflowError crash."""
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError; the point is not OverflowError
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=72), "3d"),
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(0), "0ms"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@settings(max_examples=500, database=None)
@given(st.integers(min_value=0, max_value=10**12).map(lambda ms: timedelta(milliseconds=ms)))
def test_format_duration_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


# --- loading spec files ----------------------------------------------------------------------

GOOD = """\
apiVersion: hub/v1
kind: Connector
metadata: {{name: {name}, tenant: {tenant}}}
spec:
  type: webhook
  provider: github
  secrets:
    - secretRef: {{source: env, name: GH_SECRET}}
"""


def good(name: str = "gh", tenant: str = "acme") -> str:
    return GOOD.format(name=name, tenant=tenant)


def write(path: Path, *documents: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n".join(textwrap.dedent(d) for d in documents))
    return path


def errors_of(path: Path) -> list[SpecError]:
    _, errors = read_specs(path)
    with pytest.raises(SpecLoadError) as caught:
        load_specs(path)
    assert caught.value.errors == errors
    return errors


def fields_of(errors: list[SpecError]) -> list[tuple[int, str]]:
    return [(e.document, e.field) for e in errors]


def with_spec(extra: str, name: str = "gh") -> str:
    """A good connector document with `extra` lines appended to its spec (two-space indented)."""
    return good(name) + textwrap.indent(textwrap.dedent(extra), "  ")


def test_several_documents_in_one_file(tmp_path: Path) -> None:
    file = write(tmp_path / "c.yaml", good("a"), good("b"), good("c", tenant="other"))
    specs = load_specs(file).connectors
    assert [(s.document, s.connector.key) for s in specs] == [
        (1, ("acme", "a")),
        (2, ("acme", "b")),
        (3, ("other", "c")),
    ]
    assert all(s.file == file for s in specs)


def test_defaults_are_filled_in(tmp_path: Path) -> None:
    (spec,) = load_specs(write(tmp_path / "c.yaml", good())).connectors
    assert spec.connector.spec.enabled is True
    assert spec.connector.spec.webhook_settings.dedupeWindow == timedelta(hours=72)
    assert spec.connector.spec.webhook_settings.maxBodyBytes == 1_048_576
    assert spec.connector.spec.secrets[0].key_id == "GH_SECRET"


def test_empty_documents_are_skipped_but_counted(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text(good("a") + "---\n# nothing here\n---\n" + good("b"))
    assert [s.document for s in load_specs(file).connectors] == [1, 3]


def test_folder_with_nested_files(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", good("b"))
    write(tmp_path / "team" / "deep" / "a.yml", good("a"))
    write(tmp_path / "team" / "c.yaml", good("c"))
    (tmp_path / "notes.txt").write_text("not: [yaml")
    (tmp_path / "team" / "README.md").write_text("# nope")
    specs = load_specs(tmp_path).connectors
    assert sorted(s.connector.metadata.name for s in specs) == ["a", "b", "c"]
    assert {s.file.name for s in specs} == {"a.yml", "b.yaml", "c.yaml"}
    assert spec_files(tmp_path) == sorted(spec_files(tmp_path))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SpecLoadError, match="no such file"):
        load_specs(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ("webhook: {replayWindow: 5 minutes}\n", "spec.webhook.replayWindow", "not a duration"),
        ("webhook: {replayWindow: 2d}\n", "spec.webhook", "replayWindow must be between"),
        ("webhook: {dedupeWindow: 10s}\n", "spec.webhook", "dedupeWindow must be between"),
        ("webhook: {maxBodyBytes: 0}\n", "spec.webhook.maxBodyBytes", "greater than or equal"),
        ("webhook: {maxBodyBytes: 1000000000}\n", "spec.webhook.maxBodyBytes", "less than or equal"),
        ("webhook: {surprise: 1}\n", "spec.webhook.surprise", "Extra inputs"),
        ("colour: blue\n", "spec.colour", "Extra inputs"),
        ("enabled: maybe\n", "spec.enabled", "boolean"),
    ],
)
def test_field_errors_name_the_field(tmp_path: Path, extra: str, field: str, message: str) -> None:
    file = write(tmp_path / "c.yaml", with_spec(extra))
    (error,) = errors_of(file)
    assert (error.file, error.document, error.field) == (file, 1, field)
    assert message in error.message


def test_error_in_document_two_names_file_document_and_field(tmp_path: Path) -> None:
    file = write(tmp_path / "c.yaml", good("a"), with_spec("webhook: {replayWindow: soon}\n", name="b"), good("c"))
    loaded, errors = read_specs(file)
    assert [s.connector.metadata.name for s in loaded.connectors] == ["a", "c"]
    (error,) = errors
    assert str(error).startswith(f"{file}: document 2: spec.webhook.replayWindow: ")


def test_secret_ref_errors_name_the_list_index(tmp_path: Path) -> None:
    doc = good().replace(
        "- secretRef: {source: env, name: GH_SECRET}",
        "- secretRef: {source: env, name: A}\n    - secretRef: {source: vault, name: B}",
    )
    (error,) = errors_of(write(tmp_path / "c.yaml", doc))
    assert error.field == "spec.secrets[1].secretRef.source"
    assert "vault" in error.message or "env" in error.message


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ("{name: GH, tenant: acme}", "metadata.name"),
        ("{name: gh-, tenant: acme}", "metadata.name"),
        ("{name: gh, tenant: a.b}", "metadata.tenant"),
        ("{name: gh}", "metadata.tenant"),
        ("{name: gh, tenant: acme, owner: me}", "metadata.owner"),
    ],
)
def test_metadata_errors(tmp_path: Path, metadata: str, field: str) -> None:
    doc = good().replace("metadata: {name: gh, tenant: acme}", f"metadata: {metadata}")
    assert fields_of(errors_of(write(tmp_path / "c.yaml", doc))) == [(1, field)]


def test_all_errors_are_reported_not_just_the_first(tmp_path: Path) -> None:
    first = write(
        tmp_path / "a.yaml",
        good().replace("name: gh,", "name: BAD,") + "  webhook: {replayWindow: 5 minutes, maxBodyBytes: -1}\n",
        good("fine"),
        "apiVersion: hub/v1\nkind: Route\n",
    )
    second = write(tmp_path / "b.yaml", with_spec("routes: [{name: r}]\n", name="two"))
    errors = errors_of(tmp_path)
    assert {(e.file, e.document, e.field) for e in errors} == {
        (first, 1, "metadata.name"),
        (first, 1, "spec.webhook.replayWindow"),
        (first, 1, "spec.webhook.maxBodyBytes"),
        (first, 3, "kind"),
        (second, 1, "spec.routes[0].match"),
        (second, 1, "spec.routes[0].target"),
    }


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    file = write(
        tmp_path / "c.yaml", good("a"), "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: b\n  tenant: t\n"
    )
    loaded, errors = read_specs(file)
    assert [s.connector.metadata.name for s in loaded.connectors] == ["a"]
    (error,) = errors
    assert (error.document, error.field) == (2, "yaml")
    assert "line 13" in error.message  # `tenant: t` of document 2


def test_yaml_syntax_error_in_first_document(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("a: b\n  c: d\n")
    (error,) = errors_of(file)
    assert (error.document, error.field) == (1, "yaml")
    assert "line 2" in error.message


def test_yaml_error_in_one_file_does_not_hide_other_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "key: [unclosed\n")
    write(tmp_path / "b.yaml", with_spec("webhook: {maxBodyBytes: 0}\n"))
    assert [(e.file.name, e.field) for e in errors_of(tmp_path)] == [
        ("a.yaml", "yaml"),
        ("b.yaml", "spec.webhook.maxBodyBytes"),
    ]


def test_undecodable_file(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    (error,) = errors_of(file)
    assert error.file == file


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ("apiVersion: hub/v1\nkind: Route\n", "kind", "unknown kind 'Route'"),
        ("apiVersion: hub/v1\nmetadata: {name: a, tenant: b}\n", "kind", "unknown kind None"),
        ("- a\n- b\n", "(document)", "mapping"),
        ("just text\n", "(document)", "mapping"),
    ],
)
def test_unknown_kinds_and_non_mappings(tmp_path: Path, document: str, field: str, message: str) -> None:
    (error,) = errors_of(write(tmp_path / "c.yaml", document))
    assert error.field == field
    assert message in error.message


def test_wrong_api_version(tmp_path: Path) -> None:
    doc = good().replace("hub/v1", "hub/v2")
    assert fields_of(errors_of(write(tmp_path / "c.yaml", doc))) == [(1, "apiVersion")]


def test_extra_top_level_field_is_forbidden(tmp_path: Path) -> None:
    doc = good() + "status: {ready: true}\n"
    (error,) = errors_of(write(tmp_path / "c.yaml", doc))
    assert error.field == "status"
    assert "Extra inputs are not permitted" in error.message


def test_duplicate_connector_across_files(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", good("x"), good("gh"))
    second = write(tmp_path / "b" / "b.yaml", good("gh"))
    write(tmp_path / "c.yaml", good("gh", tenant="other"))  # same name, other tenant: fine
    (error,) = errors_of(tmp_path)
    assert (error.file, error.document, error.field) == (second, 1, "metadata.name")
    assert "acme/gh" in error.message
    assert f"{first} document 2" in error.message


def test_duplicate_connector_within_a_file(tmp_path: Path) -> None:
    file = write(tmp_path / "a.yaml", good(), good())
    assert fields_of(errors_of(file)) == [(2, "metadata.name")]


POLL = """\
poll:
  kind: http_json
  interval: 5m
  request: {url: "https://api.example.com/items"}
"""


def test_webhook_connector_with_a_poll_section(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path / "c.yaml", with_spec(POLL)))
    assert error.field == "spec"
    assert "no `poll` section" in error.message


def test_poll_connector_with_a_webhook_section(tmp_path: Path) -> None:
    doc = with_spec(POLL + "webhook: {}\n").replace("type: webhook", "type: poll")
    (error,) = errors_of(write(tmp_path / "c.yaml", doc))
    assert error.field == "spec"
    assert "poll connector" in error.message


def test_poll_connector_without_a_poll_section(tmp_path: Path) -> None:
    doc = good().replace("type: webhook", "type: poll")
    assert fields_of(errors_of(write(tmp_path / "c.yaml", doc))) == [(1, "spec")]


def test_valid_poll_connector(tmp_path: Path) -> None:
    (spec,) = load_specs(write(tmp_path / "c.yaml", with_spec(POLL).replace("type: webhook", "type: poll"))).connectors
    assert spec.connector.spec.poll is not None
    assert spec.connector.spec.poll.interval == timedelta(minutes=5)


def test_poll_schedule_is_exactly_one_of_interval_or_cron(tmp_path: Path) -> None:
    doc = with_spec(POLL.replace("interval: 5m", "interval: 5m\n  cron: '* * * * *'")).replace(
        "type: webhook", "type: poll"
    )
    (error,) = errors_of(write(tmp_path / "c.yaml", doc))
    assert error.field == "spec.poll"
    assert "exactly one of interval or cron" in error.message


ROUTE = "- name: {name}\n  match: {{types: [github.push]}}\n  target: {target}\n"


def routes(*entries: tuple[str, str]) -> str:
    body = "".join(ROUTE.format(name=name, target=target) for name, target in entries)
    return "routes:\n" + textwrap.indent(body, "  ")


def test_valid_routes(tmp_path: Path) -> None:
    extra = routes(("a", "{subject: svc.a}"), ("b", "{http: {url: 'https://svc.example/x', timeout: 2s}}"))
    (spec,) = load_specs(write(tmp_path / "c.yaml", with_spec(extra))).connectors
    first, second = spec.connector.spec.routes
    assert first.target.subject == "svc.a"
    assert second.target.http is not None
    assert second.target.http.timeout == timedelta(seconds=2)


@pytest.mark.parametrize(
    "target", ["{subject: svc.a, http: {url: 'https://svc.example/x'}}", "{}"], ids=["both", "neither"]
)
def test_target_is_exactly_one_of_subject_or_http(tmp_path: Path, target: str) -> None:
    (error,) = errors_of(write(tmp_path / "c.yaml", with_spec(routes(("a", target)))))
    assert error.field == "spec.routes[0].target"
    assert "exactly one of subject or http" in error.message


@pytest.mark.parametrize("subject", ["svc.*", "svc.>", "svc..a", "svc a", ".svc"])
def test_target_subject_must_be_literal(tmp_path: Path, subject: str) -> None:
    (error,) = errors_of(write(tmp_path / "c.yaml", with_spec(routes(("a", f"{{subject: '{subject}'}}")))))
    assert error.field == "spec.routes[0].target.subject"


def test_duplicate_route_names(tmp_path: Path) -> None:
    extra = routes(("a", "{subject: s.a}"), ("b", "{subject: s.b}"), ("a", "{subject: s.c}"))
    (error,) = errors_of(write(tmp_path / "c.yaml", with_spec(extra)))
    assert error.field == "spec"
    assert "route names must be unique: a" in error.message


def test_duplicate_secret_names(tmp_path: Path) -> None:
    doc = good().replace(
        "- secretRef: {source: env, name: GH_SECRET}",
        "- {name: k, secretRef: {source: env, name: A}}\n    - {name: k, secretRef: {source: env, name: B}}",
    )
    (error,) = errors_of(write(tmp_path / "c.yaml", doc))
    assert "secret names must be unique: k" in error.message


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("spec", "secrets", 0, "secretRef"), "spec.secrets[0].secretRef"),
        (("spec", "routes", 2, "target", "http", "url"), "spec.routes[2].target.http.url"),
        (("metadata",), "metadata"),
        ((), "(document)"),
    ],
)
def test_field_path(loc: tuple[int | str, ...], path: str) -> None:
    assert field_path(loc) == path


def test_connector_document_key() -> None:
    document = ConnectorDocument.model_validate(
        {
            "apiVersion": "hub/v1",
            "kind": "Connector",
            "metadata": {"name": "gh", "tenant": "acme"},
            "spec": {"type": "webhook", "provider": "github"},
        }
    )
    assert document.key == ("acme", "gh")


@pytest.mark.parametrize("value", ["99999999999999d", ".inf", "1.0e+20"])
def test_huge_duration_in_a_spec_is_an_error_not_a_crash(tmp_path: Path, value: str) -> None:
    """read_specs reports every problem; an out-of-range duration must not escape as OverflowError."""
    file = write(tmp_path / "c.yaml", with_spec(f"webhook: {{replayWindow: {value}}}\n"), good("other"))
    loaded, errors = read_specs(file)
    assert [s.connector.metadata.name for s in loaded.connectors] == ["other"]
    assert fields_of(errors) == [(1, "spec.webhook.replayWindow")]


def test_negative_http_timeout_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path / "c.yaml", with_spec(routes(("a", "{http: {url: 'https://svc.example/x', timeout: -5}}"))))
    assert fields_of(errors_of(file)) == [(1, "spec.routes[0].target.http.timeout")]
