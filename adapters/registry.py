"""The provider registry: one explicit, read-only mapping from provider name to adapter class.

Registering a provider is one line here; nothing in `hub/` changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from adapters.base import WebhookAdapter
from adapters.pollers.base import Poller
from adapters.pollers.http_json import HttpJsonPoller
from adapters.pollers.rss import RssPoller
from adapters.webhooks.aws_sns import AwsSnsAdapter
from adapters.webhooks.basic_auth import BasicAuthAdapter
from adapters.webhooks.bitbucket import BitbucketAdapter
from adapters.webhooks.calendly import CalendlyAdapter
from adapters.webhooks.clerk import ClerkAdapter
from adapters.webhooks.discord import DiscordAdapter
from adapters.webhooks.generic_hmac import HmacAdapter
from adapters.webhooks.github import GitHubAdapter
from adapters.webhooks.gitlab import GitLabAdapter
from adapters.webhooks.google_pubsub import GooglePubSubAdapter
from adapters.webhooks.hubspot import HubSpotAdapter
from adapters.webhooks.intercom import IntercomAdapter
from adapters.webhooks.jira import JiraAdapter
from adapters.webhooks.lemonsqueezy import LemonSqueezyAdapter
from adapters.webhooks.linear import LinearAdapter
from adapters.webhooks.mailgun import MailgunAdapter
from adapters.webhooks.msgraph import MicrosoftGraphAdapter
from adapters.webhooks.paddle import PaddleAdapter
from adapters.webhooks.pagerduty import PagerDutyAdapter
from adapters.webhooks.resend import ResendAdapter
from adapters.webhooks.sendgrid import SendGridAdapter
from adapters.webhooks.shopify import ShopifyAdapter
from adapters.webhooks.slack import SlackAdapter
from adapters.webhooks.square import SquareAdapter
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from adapters.webhooks.stripe import StripeAdapter
from adapters.webhooks.svix import SvixAdapter
from adapters.webhooks.token import TokenAdapter
from adapters.webhooks.twilio import TwilioAdapter
from adapters.webhooks.twitch import TwitchAdapter
from adapters.webhooks.typeform import TypeformAdapter
from adapters.webhooks.url_token import UrlTokenAdapter
from adapters.webhooks.x import XAdapter
from adapters.webhooks.zoom import ZoomAdapter

_ADAPTERS: tuple[type[WebhookAdapter], ...] = (  # type: ignore[type-arg]
    GitHubAdapter,
    StripeAdapter,
    StandardWebhooksAdapter,
    HmacAdapter,
    BasicAuthAdapter,
    TokenAdapter,
    UrlTokenAdapter,
    PaddleAdapter,
    LemonSqueezyAdapter,
    CalendlyAdapter,
    JiraAdapter,
    SlackAdapter,
    SvixAdapter,
    ClerkAdapter,
    ResendAdapter,
    DiscordAdapter,
    ZoomAdapter,
    LinearAdapter,
    PagerDutyAdapter,
    HubSpotAdapter,
    SquareAdapter,
    MailgunAdapter,
    TypeformAdapter,
    IntercomAdapter,
    ShopifyAdapter,
    TwilioAdapter,
    SendGridAdapter,
    GitLabAdapter,
    BitbucketAdapter,
    TwitchAdapter,
    MicrosoftGraphAdapter,
    XAdapter,
    AwsSnsAdapter,
    GooglePubSubAdapter,
)
WEBHOOK_PROVIDERS: Mapping[str, type[WebhookAdapter]] = MappingProxyType(  # type: ignore[type-arg]
    {adapter.name: adapter for adapter in _ADAPTERS}
)


class UnknownProviderError(LookupError):
    """No adapter is registered under that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown provider {name!r}; known: {', '.join(sorted(WEBHOOK_PROVIDERS))}")


def webhook_adapter(name: str) -> type[WebhookAdapter]:  # type: ignore[type-arg]
    """The adapter class registered under `name`."""
    try:
        return WEBHOOK_PROVIDERS[name]
    except KeyError:
        raise UnknownProviderError(name) from None


POLLERS: Mapping[str, type[Poller]] = MappingProxyType({poller.name: poller for poller in (HttpJsonPoller, RssPoller)})


class UnknownPollerError(LookupError):
    """No poller is registered under that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown poller {name!r}; known: {', '.join(sorted(POLLERS))}")


def poller(name: str) -> type[Poller]:
    """The poller class registered under `name`."""
    try:
        return POLLERS[name]
    except KeyError:
        raise UnknownPollerError(name) from None
