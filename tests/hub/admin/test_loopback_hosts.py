"""What counts as loopback for `--insecure-no-auth`: the admin API's bind address, and the `Host` of
each admin request (an attacker's page rebound to 127.0.0.1 is sent with the attacker's own name)."""

from __future__ import annotations

import pytest

from hub.admin.auth import addressed_to_loopback, is_loopback_host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_bind_addresses(host: str) -> None:
    assert is_loopback_host(host)


ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the address refused here


@pytest.mark.parametrize(
    "host", [ALL_INTERFACES, "::", "", "192.0.2.1", "10.0.0.1", "hub.example", "localhost.x.example"]
)
def test_other_bind_addresses(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8081", "localhost", "localhost:8081", "Localhost:1", "[::1]", "[::1]:8081"]
)
def test_loopback_host_headers(host: str) -> None:
    assert addressed_to_loopback([host])


@pytest.mark.parametrize(
    "hosts",
    [
        [],
        [""],
        ["evil.example"],
        ["evil.example:8081"],
        ["127.0.0.1.evil.example"],
        ["localhost.evil.example:8081"],
        ["::1"],  # an IPv6 Host must be bracketed
        ["[::1"],
        ["127.0.0.1:"],
        ["127.0.0.1:80:80"],
        ["127.0.0.1:port"],
        ["127.0.0.1@evil.example"],
        ["[::2]:8081"],
        [f"{ALL_INTERFACES}:8081"],
        ["127.0.0.1", "evil.example"],  # two Host headers: which one a proxy used is anyone's guess
    ],
)
def test_other_host_headers(hosts: list[str]) -> None:
    assert not addressed_to_loopback(hosts)
