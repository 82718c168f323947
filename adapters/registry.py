"""The provider registry: one explicit, read-only mapping from provider name to adapter class.

Registering a provider or a poller is one line here, the dotted path of its class (`module:Class`);
nothing in `hub/` changes. The paths are resolved once, at import, so a typo, a class of the wrong kind
or two classes under one name fail the first import rather than a request. The order of the lines is
the order of `connector-hub providers` and `docs/providers.md`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from types import MappingProxyType
from typing import Any, cast

from adapters.base import WebhookAdapter
from adapters.lifecycle import Kind, TypeInfo
from adapters.pollers.base import Poller
from schemas.suggest import did_you_mean

AnyWebhookAdapter = WebhookAdapter[Any]
"""A webhook adapter class of any options model (what the registry holds)."""

WEBHOOK_ADAPTERS = (
    "adapters.webhooks.github:GitHubAdapter",
    "adapters.webhooks.stripe:StripeAdapter",
    "adapters.webhooks.standard_webhooks:StandardWebhooksAdapter",
    "adapters.webhooks.generic_hmac:HmacAdapter",
    "adapters.webhooks.basic_auth:BasicAuthAdapter",
    "adapters.webhooks.token:TokenAdapter",
    "adapters.webhooks.url_token:UrlTokenAdapter",
    "adapters.webhooks.paddle:PaddleAdapter",
    "adapters.webhooks.lemonsqueezy:LemonSqueezyAdapter",
    "adapters.webhooks.calendly:CalendlyAdapter",
    "adapters.webhooks.jira:JiraAdapter",
    "adapters.webhooks.slack:SlackAdapter",
    "adapters.webhooks.svix:SvixAdapter",
    "adapters.webhooks.clerk:ClerkAdapter",
    "adapters.webhooks.resend:ResendAdapter",
    "adapters.webhooks.discord:DiscordAdapter",
    "adapters.webhooks.zoom:ZoomAdapter",
    "adapters.webhooks.linear:LinearAdapter",
    "adapters.webhooks.pagerduty:PagerDutyAdapter",
    "adapters.webhooks.hubspot:HubSpotAdapter",
    "adapters.webhooks.square:SquareAdapter",
    "adapters.webhooks.mailgun:MailgunAdapter",
    "adapters.webhooks.typeform:TypeformAdapter",
    "adapters.webhooks.intercom:IntercomAdapter",
    "adapters.webhooks.shopify:ShopifyAdapter",
    "adapters.webhooks.twilio:TwilioAdapter",
    "adapters.webhooks.sendgrid:SendGridAdapter",
    "adapters.webhooks.gitlab:GitLabAdapter",
    "adapters.webhooks.bitbucket:BitbucketAdapter",
    "adapters.webhooks.twitch:TwitchAdapter",
    "adapters.webhooks.msgraph:MicrosoftGraphAdapter",
    "adapters.webhooks.x:XAdapter",
    "adapters.webhooks.aws_sns:AwsSnsAdapter",
    "adapters.webhooks.google_pubsub:GooglePubSubAdapter",
)
"""Every webhook provider, one line each: its adapter class as `module:Class`."""

POLLER_CLASSES = (
    "adapters.pollers.http_json:HttpJsonPoller",
    "adapters.pollers.rss:RssPoller",
)
"""Every poller, one line each: its class as `module:Class`."""


def _by_name(paths: tuple[str, ...], kind: type) -> Mapping[str, Any]:
    """The classes at `paths` by their `name`, each checked to be a subclass of `kind`, names unique."""
    classes: dict[str, Any] = {}
    for path in paths:
        module, _, attribute = path.partition(":")
        found = getattr(import_module(module), attribute)
        if not (isinstance(found, type) and issubclass(found, kind)):
            raise TypeError(f"{path} is not a {kind.__name__}")
        name: str = cast("Any", found).name
        if name in classes:
            raise ValueError(f"{path}: the name {name!r} is registered twice")
        classes[name] = found
    return MappingProxyType(classes)


WEBHOOK_PROVIDERS: Mapping[str, type[AnyWebhookAdapter]] = _by_name(WEBHOOK_ADAPTERS, WebhookAdapter)
POLLERS: Mapping[str, type[Poller]] = _by_name(POLLER_CLASSES, Poller)


class UnknownProviderError(LookupError):
    """No adapter is registered under that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        hint = did_you_mean(name, WEBHOOK_PROVIDERS)
        super().__init__(f"unknown provider {name!r}{hint}; known: {', '.join(sorted(WEBHOOK_PROVIDERS))}")


def webhook_adapter(name: str) -> type[AnyWebhookAdapter]:
    """The adapter class registered under `name`."""
    try:
        return WEBHOOK_PROVIDERS[name]
    except KeyError:
        raise UnknownProviderError(name) from None


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


def type_info(kind: Kind, cls: type[AnyWebhookAdapter] | type[Poller]) -> TypeInfo:
    """The catalog entry of a provider or poller class: its version, options version and lifecycle."""
    return TypeInfo(kind, cls.name, cls.type_version, cls.options_version, cls.lifecycle)


def catalog() -> list[TypeInfo]:
    """Every registered provider, then every poller, each sorted by name."""
    return [type_info("provider", cls) for _, cls in sorted(WEBHOOK_PROVIDERS.items())] + [
        type_info("poller", cls) for _, cls in sorted(POLLERS.items())
    ]


def known_types() -> frozenset[str]:
    """The names of every registered provider and poller (what HUB_DISABLED_PROVIDERS may name)."""
    return frozenset(WEBHOOK_PROVIDERS) | frozenset(POLLERS)
