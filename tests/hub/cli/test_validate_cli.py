"""`connector-hub validate` and the settings side of the CLI (docs/design.md §8, §9)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from hub import cli
from hub.cli.command import ENVIRONMENT_ONLY
from hub.errors import EXIT_USAGE
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "connectors.yaml"
CONSOLE_SCRIPT = Path(sys.executable).parent / "connector-hub"


def connector(name: str, provider: str = "github", webhook: str = "") -> str:
    doc = f"""\
    apiVersion: hub/v1
    kind: Connector
    metadata: {{name: {name}, tenant: acme}}
    spec:
      type: webhook
      provider: {provider}
      secrets:
        - secretRef: {{source: env, name: NOT_NEEDED_TO_VALIDATE}}
    """
    text = textwrap.dedent(doc)
    if webhook:
        text += "  webhook:\n" + textwrap.indent(textwrap.dedent(webhook), "    ")
    return text


def write(path: Path, *documents: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n".join(documents))
    return path


def validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, list[str]]:
    status = cli.main(["validate", *map(str, paths)])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come only from what each test sets."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


def test_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = validate(capsys, EXAMPLES)
    assert (status, err) == (0, [])
    assert "7 connector(s) valid, 0 problem(s)" in out


def test_valid_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "a.yaml", connector("a"), connector("b", "stripe"))
    write(tmp_path / "sub" / "c.yml", connector("c", "hmac", "options: {header: X-Signature}\n"))
    status, out, err = validate(capsys, tmp_path)
    assert (status, err) == (0, [])
    assert "3 connector(s) valid" in out


@pytest.mark.parametrize(
    ("provider", "webhook", "field", "message"),
    [
        ("hmac", "options: {header: X-Sig, algorithm: md5}\n", "spec.webhook.options.algorithm", "'sha256'"),
        ("hmac", "options: {}\n", "spec.webhook.options.header", "Field required"),
        ("hmac", "options: {header: X-Sig, colour: red}\n", "spec.webhook.options.colour", "Extra inputs"),
        ("github", "options: {anything: 1}\n", "spec.webhook.options.anything", "Extra inputs"),
        ("nope", "", "spec.provider", "unknown provider 'nope'"),
    ],
)
def test_provider_errors_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider: str, webhook: str, field: str, message: str
) -> None:
    file = write(tmp_path / "c.yaml", connector("ok"), connector("bad", provider, webhook))
    status, out, err = validate(capsys, file)
    assert status == 1
    (line,) = err
    assert line.startswith(f"{file}: document 2: {field}: ")
    assert message in line
    assert "1 connector(s) valid, 1 problem(s)" in out


def test_provider_option_combination_errors_name_the_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole-options rule (set at most one of idHeader, idPath) names `spec.webhook.options`, not `(document)`."""
    file = write(
        tmp_path / "c.yaml", connector("bad", "hmac", "options: {header: X-Sig, idHeader: X-Id, idPath: id}\n")
    )
    status, _, err = validate(capsys, file)
    assert status == 1
    (line,) = err
    assert line.startswith(f"{file}: document 1: spec.webhook.options: ")
    assert "idHeader, idPath" in line


def test_every_error_of_every_file_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write(
        tmp_path / "a.yaml",
        connector("one", webhook="replayWindow: 5 minutes\n"),
        connector("two", "hmac", "options: {header: X-Sig, algorithm: md5}\n"),
        connector("three"),
    )
    second = write(tmp_path / "b.yaml", connector("four", "unknown-provider"), "kind: Route\n", "key: [broken\n")
    status, out, err = validate(capsys, tmp_path)
    assert status == 1
    assert sorted(line.split(": ", 3)[:3] for line in err) == sorted(
        [
            [str(first), "document 1", "spec.webhook.replayWindow"],
            [str(first), "document 2", "spec.webhook.options.algorithm"],
            [str(second), "document 1", "spec.provider"],
            [str(second), "document 2", "kind"],
            [str(second), "document 3", "yaml"],
        ]
    )
    assert "1 connector(s) valid, 5 problem(s)" in out


def test_several_paths_and_a_missing_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "a.yaml", connector("a"))
    status, out, err = validate(capsys, good, tmp_path / "absent.yaml", EXAMPLES)
    assert status == 1
    (line,) = err
    assert "absent.yaml" in line
    assert "no such file" in line
    assert "8 connector(s) valid, 1 problem(s)" in out


def test_huge_duration_is_reported_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path / "c.yaml", connector("a", webhook="replayWindow: 99999999999999d\n"))
    status, _, err = validate(capsys, file)
    assert status == 1
    assert err[0].startswith(f"{file}: document 1: spec.webhook.replayWindow: ")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False
    )


@pytest.mark.integration  # starts a `python -m hub` process
def test_validate_as_a_real_process(tmp_path: Path) -> None:
    assert run_cli("validate", str(EXAMPLES)).returncode == 0
    bad = write(tmp_path / "c.yaml", connector("a"), connector("b", "hmac", "options: {header: X, algorithm: md5}\n"))
    result = run_cli("validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}: document 2: spec.webhook.options.algorithm:" in result.stderr
    assert "1 connector(s) valid, 1 problem(s)" in result.stdout


@pytest.mark.integration  # starts a `python -m hub` process
def test_python_dash_m_hub() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub", "validate", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "7 connector(s) valid" in result.stdout


# --- settings ------------------------------------------------------------------------------------


def settings_from(*argv: str) -> Settings:
    return cli.load_settings(cli.build_parser().parse_args(["tail", *argv]))


def test_defaults() -> None:
    settings = settings_from()
    assert (settings.http_host, settings.http_port, settings.data_dir) == ("127.0.0.1", 8080, Path(".hub"))
    assert settings.nats_url is None
    assert settings.redis_url is None


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_HTTP_PORT", "9001")
    monkeypatch.setenv("HUB_PUBLISH_TIMEOUT", "2s")
    monkeypatch.setenv("HUB_NATS_URL", "nats://env:4222")
    settings = settings_from()
    assert settings.http_port == 9001
    assert settings.publish_timeout.total_seconds() == 2
    assert settings.nats_url == "nats://env:4222"


@pytest.mark.parametrize(
    ("env", "env_value", "flag", "flag_value", "attribute", "expected"),
    [
        ("HUB_HTTP_PORT", "1", "--http-port", "9002", "http_port", 9002),
        ("HUB_NATS_URL", "nats://env:4222", "--nats-url", "nats://flag:4222", "nats_url", "nats://flag:4222"),
        ("HUB_LOG_LEVEL", "WARNING", "--log-level", "DEBUG", "log_level", "DEBUG"),
        ("HUB_CONNECTORS", "env.yaml", "--connectors", "flag.yaml", "connectors", Path("flag.yaml")),
        ("HUB_DUPLICATE_WINDOW", "10m", "--duplicate-window", "30m", "duplicate_window", timedelta(minutes=30)),
    ],
)
def test_flag_overrides_environment(
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    env_value: str,
    flag: str,
    flag_value: str,
    attribute: str,
    expected: object,
) -> None:
    monkeypatch.setenv(env, env_value)
    assert getattr(settings_from(flag, flag_value), attribute) == expected
    assert getattr(settings_from(), attribute) != expected  # the environment alone says otherwise


def test_every_setting_but_the_keys_has_a_flag() -> None:
    parser = cli.build_parser()
    for name in Settings.model_fields:
        flag = f"--{name.replace('_', '-')}"
        if name in ENVIRONMENT_ONLY:
            with pytest.raises(SystemExit):
                parser.parse_args(["tail", flag, "x"])
            continue
        args = parser.parse_args(["tail", flag, "x"])
        assert getattr(args, f"setting_{name}") == "x"
    assert {"master_key", "signing_key"} == ENVIRONMENT_ONLY


@pytest.mark.parametrize(
    ("argv", "env", "setting"),
    [
        (["--http-port", "not-a-port"], {}, "http_port"),
        (["--http-port", "70000"], {}, "http_port"),
        (["--log-level", "LOUD"], {}, "log_level"),
        (["--publish-timeout", "5 minutes"], {}, "publish_timeout"),
        ([], {"HUB_LOG_FORMAT": "xml"}, "log_format"),
        ([], {"HUB_STREAM_REPLICAS": "9"}, "stream_replicas"),
    ],
)
def test_invalid_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    setting: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["tail", *argv]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert f"connector-hub: setting {setting}: " in err


def test_version_names_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"connector-hub {importlib.metadata.version('connector-hub')}"


def test_tail_prints_one_compact_json_line_per_envelope_even_when_the_payload_ends_with_a_newline() -> None:
    from hub.cli.tail import json_line

    envelope = b'{"id": "1",\n "data": {"text": "a\\nb"}\n}\n'
    line = json_line(envelope)
    assert "\n" not in line
    assert orjson.loads(line) == {"id": "1", "data": {"text": "a\nb"}}
    assert "\n" not in json_line(b"not json\nat all")


def test_send_test_on_a_poll_connector_says_that_the_hub_polls_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "feed.yaml"
    spec.write_text(
        "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: feed, tenant: acme}\n"
        "spec: {type: poll, provider: blog, poll: {kind: rss, interval: 5m, request: {url: 'https://blog.example/rss'}}}\n"
    )
    assert cli.main(["send-test", "acme/feed", "--connectors", str(spec)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "acme/feed: spec.type: a poll connector: the hub polls its source" in err


def test_a_verbs_usage_line_folds_the_settings_flags_that_its_help_lists_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    text = capsys.readouterr().out
    usage = text.split("\n\n", 1)[0]
    assert "[--SETTING VALUE ...]" in usage
    assert "--claim-ttl" not in usage
    assert "[TENANT/CONNECTOR]" in usage
    assert text.count("--claim-ttl VALUE") == 1  # under the settings heading, once
    assert "settings (each also HUB_<NAME> in the environment)" in text
