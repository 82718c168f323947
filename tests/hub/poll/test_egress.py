"""The egress guard's decisions: allowed hosts, address classes, and the resolver's checked answers."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from adapters.pollers.base import EgressRefused
from hub.poll.egress import ADDRESS_REMEDY, HOST_REMEDY, EgressPolicy, GuardedResolver
from schemas.poll import Egress, PollSettings
from tests.netdoubles import Answers

URL = "https://api.example.com/v1/items?page={cursor}"


def policy(url: str = URL, **egress: Any) -> EgressPolicy:
    return EgressPolicy(Egress.model_validate(egress), url)


def refusal(call: Any, *args: Any) -> str:
    with pytest.raises(EgressRefused) as caught:
        call(*args)
    return caught.value.reason


def test_default_allows_the_request_url_host_only() -> None:
    guard = policy()
    guard.check_host("api.example.com")
    guard.check_host("API.Example.COM.")  # case and the root dot do not matter
    for host in ("example.com", "evil.api.example.com", "api.example.com.evil.test", "other.test", ""):
        assert not guard.host_allowed(host), host
    assert refusal(guard.check_host, "other.test") == f"host not allowed: other.test; {HOST_REMEDY}"


def test_allowed_hosts_replace_the_default_and_wildcards_match_subdomains_only() -> None:
    guard = policy(allowedHosts=["*.Example.com", "feeds.test"])
    for host in ("a.example.com", "x.y.example.com", "A.EXAMPLE.COM", "feeds.test"):
        assert guard.host_allowed(host), host
    for host in ("example.com", "api.example.com.test", "badexample.com", "api.example.org", "sub.feeds.test"):
        assert not guard.host_allowed(host), host
    assert not policy("https://elsewhere.test/", allowedHosts=["feeds.test"]).host_allowed("elsewhere.test")


def test_policy_from_settings() -> None:
    settings = PollSettings.model_validate(
        {"kind": "http_json", "interval": "1m", "request": {"url": "https://feed.example.org/{cursor}"}}
    )
    guard = EgressPolicy.for_settings(settings)
    assert guard.host_allowed("feed.example.org")
    assert not guard.host_allowed("example.org")


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.10", "non-public"),  # documentation
        ("2001:db8::1", "non-public"),
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str, why: str) -> None:
    guard = policy()
    reason = refusal(guard.check_address, address, "api.example.com")
    refused = f"address not allowed: {address} ({why}) for api.example.com"
    never = why in ("unspecified", "multicast")  # no option allows these: none is named
    assert reason == (refused if never else f"{refused}; {ADDRESS_REMEDY}")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "172.32.0.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    policy().check_address(address, "api.example.com")


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "127.0.0.1", "::1", "169.254.169.254", "fe80::1", "100.64.0.1", "fc00::1", "192.0.2.1"]
)
def test_allow_private_networks_allows_non_public(address: str) -> None:
    policy(allowPrivateNetworks=True).check_address(address)
    assert refusal(policy().check_address, address).startswith(f"address not allowed: {address} (")


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1"])  # noqa: S104
def test_unspecified_and_multicast_are_never_allowed(address: str) -> None:
    guard = policy(allowPrivateNetworks=True, allowedNetworks=["0.0.0.0/0", "::/0"])
    assert refusal(guard.check_address, address).startswith(f"address not allowed: {address} (")


def test_allowed_networks_allow_just_those_networks() -> None:
    guard = policy(allowedNetworks=["10.20.0.0/16", "127.0.0.1/32", "fd00:1::/32"])
    for address in ("10.20.1.2", "127.0.0.1", "::ffff:127.0.0.1", "fd00:1::5", "8.8.8.8"):
        guard.check_address(address)
    for address in ("10.21.0.1", "127.0.0.2", "169.254.169.254", "fd00:2::5"):
        assert refusal(guard.check_address, address).startswith(f"address not allowed: {address} (")


def test_not_an_address_is_refused() -> None:
    assert (
        refusal(policy().check_address, "api.example.com") == "address not allowed: api.example.com (not an IP address)"
    )


def test_check_target_checks_ip_literals_and_refuses_legacy_numeric_forms() -> None:
    policy().check_target("api.example.com")  # a name: its addresses are the resolver's to check
    literal = policy("http://169.254.169.254/latest/meta-data/")
    assert (
        refusal(literal.check_target, "169.254.169.254")
        == f"address not allowed: 169.254.169.254 (link-local); {ADDRESS_REMEDY}"
    )
    assert (
        refusal(policy("http://[::1]:8080/").check_target, "::1")
        == f"address not allowed: ::1 (loopback); {ADDRESS_REMEDY}"
    )
    policy("http://127.0.0.1/", allowedNetworks=["127.0.0.1/32"]).check_target("127.0.0.1")
    for legacy in ("2130706433", "127.1", "0x7f.0.0.1"):
        reason = refusal(policy(f"http://{legacy}/").check_target, legacy)
        assert reason == f"address not allowed: {legacy} (not a canonical IP address)"
    assert refusal(literal.check_target, "10.0.0.1") == f"host not allowed: 10.0.0.1; {HOST_REMEDY}"


async def test_resolver_returns_exactly_the_checked_addresses() -> None:
    lookup = Answers({"api.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})
    resolver = GuardedResolver(policy(), lookup)
    results = await resolver.resolve("api.example.com", 443, socket.AF_UNSPEC)
    assert [(r["host"], r["port"], r["family"]) for r in results] == [
        ("93.184.216.34", 443, socket.AF_INET),
        ("2606:2800:220:1::1", 443, socket.AF_INET6),
    ]
    assert all(r["hostname"] == "api.example.com" for r in results)
    await resolver.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            ["169.254.169.254"],
            f"address not allowed: 169.254.169.254 (link-local) for api.example.com; {ADDRESS_REMEDY}",
        ),
        (
            ["10.0.0.1"],
            f"address not allowed: 10.0.0.1 (private) for api.example.com; {ADDRESS_REMEDY}",
        ),
        (
            ["93.184.216.34", "10.0.0.1"],
            f"address not allowed: 10.0.0.1 (private) for api.example.com; {ADDRESS_REMEDY}",
        ),
    ],
)
async def test_resolver_refuses_a_name_with_any_address_not_allowed(answer: list[str], reason: str) -> None:
    resolver = GuardedResolver(policy(), Answers({"api.example.com": answer}))
    with pytest.raises(EgressRefused) as caught:
        await resolver.resolve("api.example.com", 443)
    assert caught.value.reason == reason


async def test_resolver_refuses_hosts_not_allowed_without_looking_them_up() -> None:
    lookup = Answers({"other.test": ["93.184.216.34"]})
    with pytest.raises(
        EgressRefused, match=r"^host not allowed: other\.test;\ spec\.poll\.egress\.allowedHosts\ allows\ it$"
    ):
        await GuardedResolver(policy(), lookup).resolve("other.test", 443)
    assert lookup.asked == []


async def test_resolver_without_an_answer_is_a_lookup_failure() -> None:
    with pytest.raises(OSError, match=r"^no address for api\.example\.com$"):
        await GuardedResolver(policy(), Answers({})).resolve("api.example.com", 443)
