"""Simulated providers: each signs its deliveries as the provider does and retries (or not) as it does.

The hub only sees correctly signed requests over loopback; what differs between senders is what a
real provider does when it gets no 2xx, scaled down from hours to seconds so that a scenario ends in
tens of seconds:

- Stripe-like: 20 s per attempt, then retries with exponential backoff for a long time (Stripe: up to
  three days; here up to `STRIPE.give_up_s`). A new `Stripe-Signature` timestamp on every attempt.
- GitHub-like: one attempt with a 10 s timeout, never retried (GitHub redelivers only by hand).
- Slack-like: gives up on an attempt after 3 s and retries three times (Slack: at once, after 1 min and
  after 5 min; here after 0.5, 1 and 2 s), with `X-Slack-Retry-Num` and a fresh timestamp.

Every attempt and its answer (status, or the error when there was none) goes into the ledger. The
retry schedule is the simulation itself, so a sender sleeps between its attempts; nothing here waits
for the hub's asynchronous work.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from tests.hub.ingress.signing import github_headers, stripe_headers
from tests.reliability.ledger import Attempt, Delivery, Ledger

TENANT = "acme"
Signed = tuple[bytes, dict[str, str]]


@dataclass(frozen=True)
class Profile:
    """How a provider sends: its connector, its per-attempt timeout and its retry schedule."""

    name: str
    provider: str
    connector: str
    timeout_s: float
    attempts: int
    first_backoff_s: float = 0.0
    max_backoff_s: float = 0.0
    give_up_s: float = float("inf")
    """No attempt starts this long after the first one."""

    def backoff(self, retry: int) -> float:
        """The pause before retry number `retry` (1 for the first retry)."""
        return float(min(self.max_backoff_s, self.first_backoff_s * 2 ** (retry - 1)))


STRIPE = Profile("stripe-like", "stripe", "st", 20.0, 40, 0.25, 4.0, 120.0)
GITHUB = Profile("github-like", "github", "gh", 10.0, 1)
SLACK = Profile("slack-like", "slack", "sl", 3.0, 4, 0.5, 2.0)
PROFILES = (STRIPE, GITHUB, SLACK)


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(16)


def _stripe(event_id: str, attempt: int, secret: str) -> Signed:
    body = orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "type": "invoice.paid",
            "data": {"object": {"id": "in_" + event_id[-12:], "object": "invoice"}},
        }
    )
    return body, stripe_headers(body, secret)


def _github(event_id: str, attempt: int, secret: str) -> Signed:
    body = orjson.dumps({"action": "opened", "number": 7, "pull_request": {"head": {"sha": event_id}}})
    return body, github_headers(body, secret, event="pull_request", delivery=event_id)


def _slack(event_id: str, attempt: int, secret: str) -> Signed:
    now = int(time.time())
    body = orjson.dumps(
        {
            "type": "event_callback",
            "event_id": event_id,
            "event_time": now,
            "team_id": "T0001ABCD",
            "event": {"type": "app_mention", "channel": "C0LAN2Q65", "text": "hi", "ts": f"{now}.000100"},
        }
    )
    mac = hmac.new(secret.encode(), f"v0:{now}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": "v0=" + mac,
    }
    if attempt > 1:
        headers |= {"X-Slack-Retry-Num": str(attempt - 1), "X-Slack-Retry-Reason": "http_error"}
    return body, headers


SIGNERS: dict[str, Callable[[str, int, str], Signed]] = {"stripe": _stripe, "github": _github, "slack": _slack}
ID_PREFIX = {"stripe": "evt_", "github": "", "slack": "Ev"}


def _error_kind(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientConnectionError):
        return "connection"
    return type(error).__name__


class Sender:
    """One simulated provider posting to one hub URL and writing every attempt to the ledger."""

    def __init__(
        self, profile: Profile, base_url: str, secret: str, ledger: Ledger, session: aiohttp.ClientSession
    ) -> None:
        self.profile = profile
        self.url = f"{base_url}/hooks/{TENANT}/{profile.connector}"
        self._secret = secret
        self._ledger = ledger
        self._session = session
        self._sign = SIGNERS[profile.provider]

    def new_delivery(self) -> Delivery:
        event_id = ID_PREFIX[self.profile.provider] + secrets.token_hex(12)
        delivery = Delivery(event_id, self.profile.name, f"{TENANT}:{self.profile.connector}:{event_id}")
        self._ledger.expect(delivery)
        return delivery

    async def attempt(self, delivery: Delivery, number: int) -> Attempt:
        """One request of `delivery`, signed anew, recorded whatever happens."""
        body, headers = self._sign(delivery.delivery_id, number, self._secret)
        started, at = time.monotonic(), time.time()
        status: int | None = None
        error: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=self.profile.timeout_s)
            async with self._session.post(self.url, data=body, headers=headers, timeout=timeout) as reply:
                await reply.read()
                status = reply.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = _error_kind(exc)
        attempt = Attempt(
            delivery.delivery_id, self.profile.name, number, at, time.monotonic() - started, status, error
        )
        self._ledger.record(attempt)
        return attempt

    async def deliver(self, delivery: Delivery) -> bool:
        """Attempt until a 2xx, a permanent refusal (4xx), or the profile gives up; True when accepted."""
        first = time.monotonic()
        for number in range(1, self.profile.attempts + 1):
            if number > 1:
                await asyncio.sleep(self.profile.backoff(number - 1))  # the provider's own retry schedule
                if time.monotonic() - first > self.profile.give_up_s:
                    return False
            attempt = await self.attempt(delivery, number)
            if attempt.accepted:
                return True
            if attempt.status is not None and 400 <= attempt.status < 500 and attempt.status not in (408, 409, 429):
                return False
        return False

    async def redeliver(self, delivery: Delivery) -> Attempt:
        """The provider sends an already answered delivery once more (Stripe does, GitHub by hand)."""
        done = len(self._ledger.by_delivery().get(delivery.delivery_id, []))
        return await self.attempt(delivery, done + 1)


async def burst(senders: list[Sender], count: int, interval_s: float) -> list[bool]:
    """`count` new deliveries, round-robin over `senders`, one started every `interval_s` (an open-loop
    offered load, like providers' traffic), each then retried by its own sender; waits for them all."""
    tasks: list[asyncio.Task[bool]] = []
    try:
        for n in range(count):
            sender = senders[n % len(senders)]
            tasks.append(asyncio.create_task(sender.deliver(sender.new_delivery())))
            await asyncio.sleep(interval_s)  # the offered load's pace
        return list(await asyncio.gather(*tasks))
    finally:  # cancelled (a scenario failed): no sender outlives the burst
        for task in tasks:
            task.cancel()
