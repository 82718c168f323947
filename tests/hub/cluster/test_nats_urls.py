"""HUB_NATS_URL: one URL or a cluster's comma-separated list, each checked, with errors naming the
setting and the URL's position, never its password."""

from __future__ import annotations

import asyncio
import os

import pytest
from pydantic import ValidationError

from hub.app.embedded import free_port
from hub.cli.client import connect
from hub.cli.parser import main
from hub.settings import Settings, nats_servers, nats_shown


def test_a_list_is_kept_in_order_without_blanks() -> None:
    settings = Settings(nats_url=" nats://n1:4222, tls://user:pw@n2:4223 ,,nats://10.0.0.3")
    assert settings.nats_url == "nats://n1:4222,tls://user:pw@n2:4223,nats://10.0.0.3"
    assert nats_servers(settings.nats_url) == ["nats://n1:4222", "tls://user:pw@n2:4223", "nats://10.0.0.3"]


def test_one_url_stays_one() -> None:
    assert nats_servers(Settings(nats_url="nats://127.0.0.1:4222").nats_url or "") == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("http://n1:4222", "URL 1 of 1: the scheme must be nats:// or tls://"),
        ("nats://n1:4222,n2:4222", "URL 2 of 2: the scheme must be nats:// or tls://"),
        ("nats://:4222", "URL 1 of 1: no host"),
        ("nats://n1:4222,nats://n2:70000", "URL 2 of 2 (host n2): the port is not a number from 1 to 65535"),
        ("nats://n1:0", "URL 1 of 1 (host n1): only scheme://[user:password@]host[:port]"),
        ("nats://n1:4222/x", "URL 1 of 1 (host n1): only scheme://[user:password@]host[:port]"),
        (" , ", "no NATS server URL"),
    ],
)
def test_a_bad_url_is_named_by_its_position(value: str, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(nats_url=value)
    (error,) = raised.value.errors()
    assert error["loc"] == ("nats_url",)
    assert problem in error["msg"]


def test_the_cli_names_the_setting_and_hides_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUB_NATS_URL", "nats://hub:s3cret-pw@n1:4222,nats://hub:s3cret-pw@n2:port")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "HUB_NATS_URL" in err
    assert "URL 2 of 2 (host n2): the port is not a number" in err
    assert "s3cret-pw" not in err


def test_a_failed_connection_names_the_servers_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("HUB_NATS_URL", f"nats://hub:s3cret-pw@127.0.0.1:{port},nats://127.0.0.1:{port}")
    assert nats_shown(os.environ["HUB_NATS_URL"]) == f"nats://127.0.0.1:{port},nats://127.0.0.1:{port}"
    with pytest.raises(SystemExit) as exited:
        asyncio.run(connect(Settings(), "test"))
    message = str(exited.value)
    assert message.startswith(f"connector-hub: cannot connect to NATS at {nats_shown(os.environ['HUB_NATS_URL'])}: ")
    assert "s3cret-pw" not in message
