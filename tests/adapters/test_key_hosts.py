"""Which hosts a connector may name for key material: the provider's own, else only what the operator
allows (`HUB_KEY_FETCH_ALLOWED_HOSTS`), plain http only to an allowed loopback host; and the setting's
own parsing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adapters.keyhosts import key_hosts_allowed
from adapters.webhooks.aws_sns import AwsSnsAdapter
from adapters.webhooks.google_pubsub import GooglePubSubAdapter
from hub.settings import Settings


def pubsub(jwks_url: str) -> dict[str, Any]:
    return {"audience": "https://hooks.example.com/a/pubsub", "jwksUrl": jwks_url}


def refusal(adapter: Any, options: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.configure(options)
    [error] = caught.value.errors()
    return str(error["msg"])


@pytest.mark.parametrize(
    "url",
    ["https://www.googleapis.com/oauth2/v3/certs", "https://googleapis.com/certs", "https://x.y.googleapis.com/c"],
)
def test_googles_own_hosts_need_no_allowance(url: str) -> None:
    GooglePubSubAdapter.configure(pubsub(url))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/certs",
        "http://127.0.0.1:9000/certs",
        "http://localhost/certs",
        "https://169.254.169.254/latest/meta-data/",
        "https://googleapis.com.evil.example/certs",
        "https://mirror.internal/certs",
    ],
)
def test_any_other_host_is_refused_without_the_operators_allowance(url: str) -> None:
    message = refusal(GooglePubSubAdapter, pubsub(url))
    assert message.startswith("Value error, jwksUrl: ")
    assert "HUB_KEY_FETCH_ALLOWED_HOSTS" in message


def test_the_operators_hosts_are_accepted_and_plain_http_only_to_a_loopback_one() -> None:
    with key_hosts_allowed(["127.0.0.1", "Mirror.Internal"]):
        GooglePubSubAdapter.configure(pubsub("http://127.0.0.1:9000/certs"))
        GooglePubSubAdapter.configure(pubsub("https://mirror.internal/certs"))
        assert "must be https" in refusal(GooglePubSubAdapter, pubsub("http://mirror.internal/certs"))
        assert "must be https" in refusal(GooglePubSubAdapter, pubsub("http://www.googleapis.com/oauth2/v3/certs"))
    assert "HUB_KEY_FETCH_ALLOWED_HOSTS" in refusal(GooglePubSubAdapter, pubsub("https://mirror.internal/certs"))


def test_sns_certificate_hosts_are_sns_hosts_or_the_operators() -> None:
    AwsSnsAdapter.configure({"certificateHosts": ["sns.us-east-1.amazonaws.com", "sns.cn-north-1.amazonaws.com.cn"]})
    message = refusal(AwsSnsAdapter, {"certificateHosts": ["sns.us-east-1.amazonaws.com", "[::1]:8443"]})
    assert message.startswith("Value error, certificateHosts[1]: ::1 ")
    with key_hosts_allowed(["::1"]):
        AwsSnsAdapter.configure({"certificateHosts": ["[::1]:8443"]})


def test_the_settings_take_comma_separated_hosts_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_KEY_FETCH_ALLOWED_HOSTS", "127.0.0.1, Mirror.Internal.,[::1]")
    monkeypatch.setenv("HUB_KEY_FETCH_ALLOWED_NETWORKS", "127.0.0.1/8,::1")
    settings = Settings()
    assert settings.key_fetch_allowed_hosts == ("127.0.0.1", "mirror.internal", "::1")
    assert settings.key_fetch_allowed_networks == ("127.0.0.0/8", "::1/128")
    assert Settings(key_fetch_allowed_hosts="a.test").key_fetch_allowed_hosts == ("a.test",)  # a --flag


def test_the_defaults_allow_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_KEY_FETCH_ALLOWED_HOSTS", raising=False)
    monkeypatch.delenv("HUB_KEY_FETCH_ALLOWED_NETWORKS", raising=False)
    settings = Settings()
    assert (settings.key_fetch_allowed_hosts, settings.key_fetch_allowed_networks) == ((), ())


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("key_fetch_allowed_hosts", "https://mirror.internal", "is not a host name or an IP address"),
        ("key_fetch_allowed_hosts", "mirror.internal:8443", "is not a host name or an IP address"),
        ("key_fetch_allowed_networks", "127.0.0.1/33", "is not a network"),
        ("key_fetch_allowed_networks", "mirror.internal", "is not a network"),
    ],
)
def test_malformed_settings_are_refused(name: str, value: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{name: value})
    [error] = caught.value.errors()
    assert error["loc"] == (name, 0)
    assert f"{value!r} {why}" in error["msg"]
