"""Start-up configuration: specs + adapters + secrets -> the registry, or a ConfigError naming everything wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from events.streams import DuplicateWindowError, StreamSettings, check_duplicate_window, stream_configs
from hub.errors import ConfigError, Problem
from hub.ingest.connectors import ConnectorRegistry, build_connector, build_registry
from hub.ingest.secrets import SecretResolver
from schemas.loader import LoadedSpec, load_specs

SECRET_VALUE = "s3cr3t-value-that-must-never-leak"
DEFAULTS = {"publish_timeout_s": 5.0, "claim_ttl_s": 30.0, "duplicate_window_s": 900.0}


def connector(
    name: str = "gh",
    *,
    provider: str = "github",
    secrets: str = "- secretRef: {source: env, name: GH_SECRET}",
    extra: str = "",
    tenant: str = "acme",
    kind: str = "webhook",
) -> str:
    spec = f"""\
    apiVersion: hub/v1
    kind: Connector
    metadata: {{name: {name}, tenant: {tenant}}}
    spec:
      type: {kind}
      provider: {provider}
    """
    text = textwrap.dedent(spec)
    if secrets:
        text += "  secrets:\n" + textwrap.indent(textwrap.dedent(secrets).rstrip("\n") + "\n", "    ")
    return text + textwrap.indent(textwrap.dedent(extra), "  ")


def specs(tmp_path: Path, *documents: str) -> list[LoadedSpec]:
    file = tmp_path / "connectors.yaml"
    file.write_text("---\n".join(documents))
    return load_specs(file).connectors


def build(loaded: list[LoadedSpec], **overrides: float) -> tuple[ConnectorRegistry, list[str]]:
    return build_registry(loaded, **{**DEFAULTS, **overrides})


def problems_of(loaded: list[LoadedSpec], **overrides: float) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        build(loaded, **overrides)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return caught.value.problems


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_SECRET", SECRET_VALUE)
    monkeypatch.delenv("MISSING_SECRET", raising=False)


def test_a_valid_connector(tmp_path: Path) -> None:
    registry, notes = build(specs(tmp_path, connector()))
    assert notes == []
    assert len(registry) == 1
    gh = registry.get("acme", "gh")
    assert gh is not None
    assert (gh.label, gh.provider, gh.adapter.name) == ("acme/gh", "github", "github")
    assert [(s.key_id, s.value) for s in gh.secrets] == [("GH_SECRET", SECRET_VALUE.encode())]
    assert SECRET_VALUE not in repr(gh)
    assert (gh.replay_window_s, gh.dedupe_window_s, gh.max_body_bytes) == (300.0, 72 * 3600.0, 1_048_576)
    assert registry.get("acme", "other") is None
    assert registry.get("other", "gh") is None
    assert list(registry) == [gh]


def test_missing_env_secret_names_connector_field_and_variable_but_no_value(tmp_path: Path) -> None:
    secrets = "- secretRef: {source: env, name: GH_SECRET}\n- secretRef: {source: env, name: MISSING_SECRET}\n"
    (problem,) = problems_of(specs(tmp_path, connector(secrets=secrets)))
    assert (problem.connector, problem.field) == ("acme/gh", "spec.secrets[1]")
    assert "MISSING_SECRET" in problem.message
    assert SECRET_VALUE not in str(problem)


def test_empty_env_secret_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_SECRET", "")
    (problem,) = problems_of(specs(tmp_path, connector()))
    assert (problem.connector, problem.field) == ("acme/gh", "spec.secrets[0]")
    assert "GH_SECRET" in problem.message


def test_malformed_secret_names_the_key_but_never_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "whsec_not!base64!" + SECRET_VALUE
    monkeypatch.setenv("SVIX_SECRET", bad)
    secrets = "- {name: rotated, secretRef: {source: env, name: SVIX_SECRET}}"
    (problem,) = problems_of(specs(tmp_path, connector(provider="standard-webhooks", secrets=secrets)))
    assert (problem.connector, problem.field) == ("acme/gh", "spec.secrets[0]")
    assert "rotated" in problem.message
    assert SECRET_VALUE not in str(problem)
    assert "not!base64" not in str(problem)


@pytest.mark.parametrize("content", [b"file-secret\n", b"file-secret\r\n", b"file-secret"])
def test_file_secret_is_read_without_trailing_newline(tmp_path: Path, content: bytes) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(content)
    secrets = f"- {{name: from-file, secretRef: {{source: file, name: '{secret_file}'}}}}"
    registry, _ = build(specs(tmp_path, connector(secrets=secrets)))
    gh = registry.get("acme", "gh")
    assert gh is not None
    assert [(s.key_id, s.value) for s in gh.secrets] == [("from-file", b"file-secret")]


@pytest.mark.parametrize(("content", "message"), [(None, "cannot be read"), (b"\n", "is empty")])
def test_unusable_file_secret(tmp_path: Path, content: bytes | None, message: str) -> None:
    secret_file = tmp_path / "secret"
    if content is not None:
        secret_file.write_bytes(content)
    secrets = f"- secretRef: {{source: file, name: '{secret_file}'}}"
    (problem,) = problems_of(specs(tmp_path, connector(secrets=secrets)))
    assert problem.field == "spec.secrets[0]"
    assert str(secret_file) in problem.message
    assert message in problem.message


class _Store:
    """A secret store that has `gh` v2 of tenant acme and nothing else."""

    def resolve(self, tenant: str, name: str, version: int | None = None) -> bytes:
        if (tenant, name) == ("acme", "gh") and version in (None, 2):
            return b"stored-value"
        raise LookupError(f"secret {name} of tenant {tenant} version {version} is not in the store")


def test_store_secrets_are_left_to_the_running_hub_before_it_has_connected(tmp_path: Path) -> None:
    registry, _ = build(specs(tmp_path, connector(secrets="- secretRef: {source: store, name: gh}")))
    assert registry.get("acme", "gh") is not None


def test_store_secrets_resolve_from_the_tenants_store(tmp_path: Path) -> None:
    (loaded,) = specs(tmp_path, connector(secrets="- secretRef: {source: store, name: gh}"))
    built = build_connector(loaded.connector, **DEFAULTS, resolver=SecretResolver(_Store()))
    assert [(s.key_id, s.value) for s in built.secrets] == [("gh", b"stored-value")]


def test_a_missing_store_secret_names_the_reference_and_version(tmp_path: Path) -> None:
    refs = "- secretRef: {source: store, name: gh, version: 1}\n- secretRef: {source: store, name: gh, version: 2}"
    (loaded,) = specs(tmp_path, connector(secrets=refs))
    with pytest.raises(ConfigError) as caught:
        build_connector(loaded.connector, **DEFAULTS, resolver=SecretResolver(_Store()))
    (problem,) = caught.value.problems
    assert problem.field == "spec.secrets[0]"
    assert "gh@1" in problem.message
    assert "version 1 is not in the store" in problem.message


def test_webhook_connector_without_secrets_is_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(specs(tmp_path, connector(secrets="")))
    assert (problem.connector, problem.field) == ("acme/gh", "spec.secrets")
    assert "at least one secret" in problem.message


POLL = """\
poll:
  kind: http_json
  interval: 5m
  request: {url: "https://api.example.com/items"}
"""


def test_disabled_connectors_are_left_out_with_a_note_and_poll_ones_left_to_the_poller(tmp_path: Path) -> None:
    loaded = specs(
        tmp_path,
        connector("live"),
        connector("paused", extra="enabled: false\n", secrets=""),
        connector("poller", kind="poll", extra=POLL, secrets=""),
    )
    registry, notes = build(loaded)
    assert [c.label for c in registry] == ["acme/live"]
    assert registry.get("acme", "paused") is None
    assert registry.get("acme", "poller") is None
    (note,) = notes
    assert "acme/paused" in note
    assert "disabled" in note


def test_unknown_provider_and_bad_options(tmp_path: Path) -> None:
    loaded = specs(
        tmp_path,
        connector("a", provider="nope"),
        connector("b", provider="hmac", extra="webhook: {options: {header: X-Sig, algorithm: md5}}\n"),
    )
    problems = problems_of(loaded)
    assert [(p.connector, p.field) for p in problems] == [
        ("acme/a", "spec.provider"),
        ("acme/b", "spec.webhook.options.algorithm"),
    ]
    assert "nope" in problems[0].message


def test_every_problem_of_every_connector_is_reported(tmp_path: Path) -> None:
    loaded = specs(
        tmp_path,
        connector(
            "a", secrets="- secretRef: {source: env, name: MISSING_SECRET}", extra="webhook: {replayWindow: 1h}\n"
        ),
        connector("b", secrets=""),
        connector("c"),
    )
    problems = problems_of(loaded)
    assert [(p.connector, p.field) for p in problems] == [
        ("acme/a", "spec.secrets[0]"),
        ("acme/a", "spec.webhook.replayWindow"),
        ("acme/b", "spec.secrets"),
    ]


@pytest.mark.parametrize(("replay", "ok"), [("449s", True), ("450s", False), ("10m", False), ("1s", True)])
def test_replay_window_must_fit_twice_in_the_duplicate_window(tmp_path: Path, replay: str, ok: bool) -> None:
    loaded = specs(tmp_path, connector(extra=f"webhook: {{replayWindow: {replay}}}\n"))
    if ok:
        registry, _ = build(loaded, duplicate_window_s=900.0)
        assert len(registry) == 1
        return
    (problem,) = problems_of(loaded, duplicate_window_s=900.0)
    assert (problem.connector, problem.field) == ("acme/gh", "spec.webhook.replayWindow")
    assert "duplicate window" in problem.message


def test_default_replay_window_is_checked_too(tmp_path: Path) -> None:
    """No replayWindow in the spec: the default 300s still needs a duplicate window over 600s."""
    (problem,) = problems_of(specs(tmp_path, connector()), duplicate_window_s=600.0)
    assert problem.field == "spec.webhook.replayWindow"
    registry, _ = build(specs(tmp_path, connector()), duplicate_window_s=601.0)
    gh = registry.get("acme", "gh")
    assert gh is not None
    assert gh.replay_window_s == 300.0


def test_claim_ttl_must_fit_in_the_duplicate_window(tmp_path: Path) -> None:
    (problem,) = problems_of(specs(tmp_path, connector()), claim_ttl_s=900.0)
    assert "claim TTL" in problem.message


@pytest.mark.parametrize(
    ("window", "claim_ttl", "replay", "ok"),
    [(900, 30, 300, True), (900, 30, 450, False), (900, 900, 1, False), (900, 899, 1, True), (601, 0, 300, True)],
)
def test_check_duplicate_window(window: float, claim_ttl: float, replay: float, ok: bool) -> None:
    if ok:
        check_duplicate_window(window, claim_ttl, replay)
    else:
        with pytest.raises(DuplicateWindowError, match="duplicate window"):
            check_duplicate_window(window, claim_ttl, replay)


def test_stream_configs() -> None:
    configs = {c.name: c for c in stream_configs(StreamSettings(replicas=3, duplicate_window_s=1200.0))}
    assert {name: c.subjects for name, c in configs.items()} == {
        "HUB_EVENTS": ["hub.events.>"],
        "HUB_INVOCATIONS": ["hub.invocations.>"],
        "HUB_DLQ": ["hub.dlq.>"],
        "HUB_AUDIT": ["hub.audit.>"],
        "HUB_JOURNEYS": ["hub.journey.>"],
        "HUB_REJECTED": ["hub.rejected.>"],
        "HUB_REPLAY": ["hub.replay.>"],
    }
    assert all(c.num_replicas == 3 and c.duplicate_window == 1200.0 for c in configs.values())


@pytest.mark.parametrize(
    ("provider", "secret_env", "publish_timeout", "deadline"),
    [
        ("github", "GH_SECRET", 20.0, 8.0),  # GitHub waits 10s: less 2s (a fifth) is 8s
        ("github", "GH_SECRET", 5.0, 5.0),
        ("github", "GH_SECRET", 2.0, 2.0),
        ("stripe", "GH_SECRET", 8.0, 8.0),  # Stripe waits 20s: less 4s is 16s
        ("stripe", "GH_SECRET", 30.0, 16.0),
        ("standard-webhooks", "GH_SECRET", 30.0, 12.0),  # 15s: less 3s is 12s
        ("slack", "GH_SECRET", 20.0, 2.0),  # Slack waits 3s: less 1s (the least margin) is 2s
    ],
)
def test_publish_deadline(
    tmp_path: Path, provider: str, secret_env: str, publish_timeout: float, deadline: float
) -> None:
    """min(publish_timeout, the provider's delivery timeout less max(1s, a fifth of it))."""
    secrets = f"- secretRef: {{source: env, name: {secret_env}}}"
    registry, _ = build(
        specs(tmp_path, connector(provider=provider, secrets=secrets)), publish_timeout_s=publish_timeout
    )
    (built,) = registry
    assert built.publish_deadline_s == deadline
    assert built.publish_deadline_s < built.adapter.scheme.delivery_timeout_s


def test_connector_verifies_only_with_its_own_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHER_SECRET", "other-value")
    loaded = specs(tmp_path, connector("a"), connector("b", secrets="- secretRef: {source: env, name: OTHER_SECRET}"))
    registry, _ = build(loaded)
    a, b = registry.get("acme", "a"), registry.get("acme", "b")
    assert a is not None
    assert b is not None
    assert [s.value for s in a.secrets] == [SECRET_VALUE.encode()]
    assert [s.value for s in b.secrets] == [b"other-value"]


SNS_TOPIC = "arn:aws:sns:eu-west-1:123456789012:orders"


def test_sns_retries_for_an_hour_with_their_original_timestamp_and_its_window_covers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SNS keeps `Timestamp` on retries for up to an hour: its default window covers that, and the default
    15-minute duplicate window serves it, as its signed MessageId is the dedupe key (Valkey's done mark
    outlives the window, so a replay inside it is a duplicate)."""
    monkeypatch.setenv("SNS_TOPIC", SNS_TOPIC)
    sns = connector("sns", provider="aws-sns", secrets="- secretRef: {source: env, name: SNS_TOPIC}")
    registry, _ = build(specs(tmp_path, sns))

    assert registry.get("acme", "sns").replay_window_s >= 3600.0


def test_a_signed_dedupe_key_needs_a_dedupe_window_longer_than_its_replay_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNS_TOPIC", SNS_TOPIC)
    secrets = "- secretRef: {source: env, name: SNS_TOPIC}"
    short = connector("sns", provider="aws-sns", secrets=secrets, extra="webhook: {dedupeWindow: 30m}\n")
    [problem] = problems_of(specs(tmp_path, short))
    assert (problem.field, "dedupe window (1800s)" in problem.message) == ("spec.webhook.dedupeWindow", True)


def test_an_unsigned_dedupe_key_still_needs_twice_its_replay_window_in_the_duplicate_window(tmp_path: Path) -> None:
    """GitHub's delivery id is not signed: a long window still needs JetStream's window to cover it."""
    [problem] = problems_of(specs(tmp_path, connector(extra="webhook: {replayWindow: 65m}\n")))
    assert problem.field == "spec.webhook.replayWindow"


def test_a_connector_sets_its_own_answer_budget_below_its_providers_timeout(tmp_path: Path) -> None:
    registry, _ = build(specs(tmp_path, connector(extra="webhook: {answerBudget: 6s}\n")), publish_timeout_s=20.0)
    (built,) = registry
    assert built.publish_deadline_s == 6.0  # GitHub's default would be 8s
    capped, _ = build(specs(tmp_path, connector(extra="webhook: {answerBudget: 6s}\n")), publish_timeout_s=3.0)
    assert next(iter(capped)).publish_deadline_s == 3.0  # HUB_PUBLISH_TIMEOUT caps it
    [problem] = problems_of(specs(tmp_path, connector(extra="webhook: {answerBudget: 10s}\n")))
    assert problem.field == "spec.webhook.answerBudget"
    assert "github's own timeout (10s)" in problem.message
