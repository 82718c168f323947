"""`spec.poll` as loaded from files: every error names file, document and field; `connector-hub
validate` also checks what the poller itself needs (its kind, `items` for http_json, its options)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import cli
from schemas.loader import SpecError, load_specs, read_specs


def poll(**overrides: Any) -> dict[str, Any]:
    """A valid http_json poll section, with fields replaced (None removes one)."""
    base: dict[str, Any] = {
        "kind": "http_json",
        "interval": "5m",
        "request": {"url": "https://api.example.com/v1/items?after={cursor}"},
        "items": {"path": "items", "id": "id"},
    }
    merged = base | overrides
    return {k: v for k, v in merged.items() if v is not None}


def connector(poll_section: dict[str, Any], name: str = "api", tenant: str = "acme") -> dict[str, Any]:
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": name, "tenant": tenant},
        "spec": {"type": "poll", "provider": "acme-api", "poll": poll_section},
    }


def write(path: Path, *documents: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def errors_of(path: Path) -> list[SpecError]:
    return read_specs(path)[1]


def only_error(path: Path) -> SpecError:
    errors = errors_of(path)
    assert len(errors) == 1, f"expected exactly one error, got {[str(e) for e in errors]}"
    return errors[0]


SECRET = {"source": "env", "name": "API_TOKEN"}

POLL_ERRORS = [
    # The schedule: exactly one of interval or cron, each sane.
    (poll(cron="*/5 * * * *"), "spec.poll", "exactly one of interval or cron"),
    (poll(interval=None), "spec.poll", "exactly one of interval or cron"),
    (poll(interval="500ms"), "spec.poll", "interval must be between 1s and 7d"),
    (poll(interval="8d"), "spec.poll", "interval must be between 1s and 7d"),
    (poll(interval="soon"), "spec.poll.interval", "is not a duration"),
    (poll(interval=None, cron="61 * * * *"), "spec.poll.cron", "is not a cron expression"),
    (poll(interval=None, cron="* * *"), "spec.poll.cron", "is not a cron expression"),
    (poll(interval=None, cron="every day"), "spec.poll.cron", "is not a cron expression"),
    (poll(interval=None, cron="* * * * 8"), "spec.poll.cron", "is not a cron expression"),
    (poll(timeout="50ms"), "spec.poll", "timeout must be between 100ms and 5m"),
    (poll(dedupeWindow="30s"), "spec.poll", "dedupeWindow must be between 1m and 90d"),
    # The request.
    (poll(request={"url": "ftp://api.example.com/"}), "spec.poll.request.url", "should match pattern"),
    (poll(request={"url": "https://api.example.com/", "method": "PUT"}), "spec.poll.request.method", "'GET'"),
    (poll(request={"url": "https://x.example.com/", "verb": "GET"}), "spec.poll.request.verb", "Extra inputs"),
    # Auth: each type with exactly its own fields.
    (poll(auth={"type": "basic", "secretRef": SECRET}), "spec.poll.auth", "`username` is required for basic"),
    (poll(auth={"type": "bearer", "secretRef": SECRET, "username": "u"}), "spec.poll.auth", "only for it"),
    (poll(auth={"type": "header", "secretRef": SECRET}), "spec.poll.auth", "`header` (the header name) is required"),
    (
        poll(auth={"type": "basic", "secretRef": SECRET, "username": "u", "header": "X-Key"}),
        "spec.poll.auth",
        "`header` (the header name) is required for header auth and only for it",
    ),
    (poll(auth={"type": "header", "secretRef": SECRET, "header": "X Key"}), "spec.poll.auth.header", "pattern"),
    (poll(auth={"type": "oauth", "secretRef": SECRET}), "spec.poll.auth.type", "'bearer', 'basic' or 'header'"),
    (poll(auth={"type": "bearer"}), "spec.poll.auth.secretRef", "Field required"),
    # Items and pagination.
    (poll(items={"path": "items"}), "spec.poll.items.id", "Field required"),
    (poll(items={"id": "data.["}), "spec.poll.items.id", "invalid JMESPath"),
    (poll(items={"id": "id", "cursorFrom": "firstItem"}), "spec.poll.items.cursorFrom", "'response' or 'lastItem'"),
    (poll(pagination={"nextLink": "links.next", "linkHeader": True}), "spec.poll.pagination", "not both"),
    (poll(pagination={"maxPages": 0}), "spec.poll.pagination.maxPages", "greater than or equal to 1"),
    # Egress.
    (poll(egress={"allowedNetworks": ["10.0.0.0/33"]}), "spec.poll.egress.allowedNetworks[0]", "not an IP network"),
    (
        poll(egress={"allowedNetworks": ["127.0.0.1/32", "internal"]}),
        "spec.poll.egress.allowedNetworks[1]",
        "'internal' is not an IP network",
    ),
    (poll(egress={"allowedHosts": ["https://api.example.com"]}), "spec.poll.egress.allowedHosts[0]", "pattern"),
    (poll(egress={"allowPrivate": True}), "spec.poll.egress.allowPrivate", "Extra inputs"),
    # Retry shaping.
    (poll(backoff={"initial": "1m", "max": "1s"}), "spec.poll.backoff", "initial <= max"),
    (poll(circuit={"failureThreshold": 0}), "spec.poll.circuit.failureThreshold", "greater than or equal to 1"),
]


@pytest.mark.parametrize(
    ("section", "field", "message"), POLL_ERRORS, ids=[f"{i}:{e[1]}:{e[2][:30]}" for i, e in enumerate(POLL_ERRORS)]
)
def test_poll_errors_name_file_document_and_field(
    tmp_path: Path, section: dict[str, Any], field: str, message: str
) -> None:
    file = write(tmp_path / "specs.yaml", connector(poll()), connector(section, name="bad"))
    error = only_error(file)
    assert (error.file, error.document, error.field) == (file, 2, field)
    assert message in error.message
    assert str(error).startswith(f"{file}: document 2: {field}: ")


@pytest.mark.parametrize(
    "section",
    [
        poll(),
        poll(interval=None, cron="*/5 * * * *"),
        poll(interval=None, cron="0 3 * * mon-fri"),
        poll(interval="1s"),
        poll(interval="7d"),
        poll(auth={"type": "bearer", "secretRef": SECRET}),
        poll(auth={"type": "basic", "secretRef": SECRET, "username": "svc"}),
        poll(auth={"type": "header", "secretRef": SECRET, "header": "X-Api-Key"}),
        poll(pagination={"linkHeader": True, "maxPages": 50}),
        poll(egress={"allowedHosts": ["*.example.com"], "allowedNetworks": ["10.1.0.0/16", "fd00::/8"]}),
        poll(egress={"allowPrivateNetworks": True}),
        poll(kind="rss", items=None),
    ],
)
def test_valid_poll_sections(tmp_path: Path, section: dict[str, Any]) -> None:
    assert errors_of(write(tmp_path / "c.yaml", connector(section))) == []


def test_defaults(tmp_path: Path) -> None:
    (spec,) = load_specs(write(tmp_path / "c.yaml", connector(poll()))).connectors
    settings = spec.connector.spec.poll
    assert settings is not None
    assert settings.interval == timedelta(minutes=5)
    assert settings.timeout == timedelta(seconds=10)
    assert settings.egress.allowPrivateNetworks is False
    assert settings.egress.allowedNetworks == []
    assert settings.pagination.maxPages == 10
    assert settings.dedupeWindow == timedelta(days=30)
    assert (settings.circuit.failureThreshold, settings.circuit.cooldown) == (5, timedelta(minutes=5))


@pytest.mark.parametrize("cron", ["* * * * * *", "0 0 * * * 30"])
def test_cron_has_five_fields(tmp_path: Path, cron: str) -> None:
    """The spec says 5 fields; croniter also reads a sixth (seconds), which would poll every second."""
    error = only_error(write(tmp_path / "c.yaml", connector(poll(interval=None, cron=cron))))
    assert error.field == "spec.poll.cron"
    assert "is not a cron expression" in error.message


def test_cron_that_never_fires_is_refused(tmp_path: Path) -> None:
    """February 31st: the scheduler can compute no next run after the first one."""
    error = only_error(write(tmp_path / "c.yaml", connector(poll(interval=None, cron="0 0 31 2 *"))))
    assert error.field == "spec.poll.cron"


# --- connector-hub validate --------------------------------------------------------------------


@pytest.fixture
def no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


def validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, list[str]]:
    code = cli.main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


@pytest.mark.usefixtures("no_hub_environment")
def test_validate_http_json_without_items_names_spec_poll_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path / "c.yaml", connector(poll()), connector(poll(items=None), name="noitems"))
    code, out, err = validate(capsys, file)
    assert code == 1
    assert err == [
        f"{file}: document 2: spec.poll.items: http_json needs items.id (and items.path unless the "
        "response is the list)"
    ]
    assert "1 connector(s) valid, 1 problem(s)" in out


@pytest.mark.usefixtures("no_hub_environment")
def test_validate_unknown_poller_kind_names_spec_poll_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "c.yaml", connector(poll(kind="graphql")))
    code, out, err = validate(capsys, file)
    assert code == 1
    assert err == [f"{file}: document 1: spec.poll.kind: unknown poller 'graphql'; known: http_json, rss"]
    assert "0 connector(s) valid, 1 problem(s)" in out


@pytest.mark.usefixtures("no_hub_environment")
def test_validate_poller_options_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "c.yaml", connector(poll(kind="rss", items=None, options={"limit": 5})))
    code, _, err = validate(capsys, file)
    assert code == 1
    (line,) = err
    assert line.startswith(f"{file}: document 1: spec.poll.options.limit: ")
    assert "Extra inputs" in line


@pytest.mark.usefixtures("no_hub_environment")
def test_validate_every_problem_of_every_poll_connector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(
        tmp_path / "c.yaml",
        connector(poll(kind="nope"), name="a"),
        connector(poll(items=None), name="b"),
        connector(poll(interval=None), name="c"),
        connector(poll(), name="d"),
    )
    code, out, err = validate(capsys, file)
    assert code == 1
    assert [line.split(": ")[1:3] for line in err] == [
        ["document 3", "spec.poll"],
        ["document 1", "spec.poll.kind"],
        ["document 2", "spec.poll.items"],
    ]
    assert "1 connector(s) valid, 3 problem(s)" in out


@pytest.mark.usefixtures("no_hub_environment")
def test_validate_does_not_need_the_auth_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Secrets are a start-up concern: validating in CI must not need them."""
    section = poll(auth={"type": "bearer", "secretRef": {"source": "env", "name": "NOT_SET_ANYWHERE_X1"}})
    code, out, err = validate(capsys, write(tmp_path / "c.yaml", connector(section)))
    assert (code, err) == (0, [])
    assert "1 connector(s) valid, 0 problem(s)" in out
