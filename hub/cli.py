"""`connector-hub` (also `python -m hub`): run, validate, send-test, verify, url-token, tail, status, providers,
policy explain, schemas; and the control plane's apply, diff, get, delete, list, keys, secrets, service-map.

Every setting is an `HUB_*` environment variable and also a `--flag` here (the flag wins); the
flags are generated from the Settings model so the two can never disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from adapters.keyhosts import allow_key_hosts
from hub import runner, schemagen, workers
from hub.admin.auth import is_loopback_host
from hub.embedded import EmbeddedServerError
from hub.errors import EXIT_USAGE, ConfigError
from hub.logs import configure_logging
from hub.settings import Settings
from hub.validate import validate_paths
from schemas.loader import SpecLoadError, field_path, load_specs

ENVIRONMENT_ONLY = frozenset({"master_key", "signing_key"})
"""Keys are never command-line flags: a flag's value shows in `ps` and in shell history."""


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--master-key` must never be taken for `--master-key-file`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})


def _settings_flags() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("settings (each also HUB_<NAME> in the environment)")
    for name, field in Settings.model_fields.items():
        if name in ENVIRONMENT_ONLY:
            continue
        group.add_argument(
            f"--{name.replace('_', '-')}", dest=f"setting_{name}", metavar="VALUE", help=field.description
        )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    settings = _settings_flags()
    parser = _Parser(prog="connector-hub", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run", parents=[settings], help="run the hub (embedded NATS and Valkey unless URLs are set)"
    )
    run.add_argument(
        "--role",
        default=",".join(runner.ROLES),
        help=f"comma-separated subset of: {', '.join(runner.ROLES)} (default: all)",
    )
    run.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve the admin API without API keys (development only: HUB_ADMIN_HOST must be a loopback "
        "address; warns at start and on /readyz)",
    )
    _control_commands(commands, settings)

    validate = commands.add_parser("validate", help="check connector spec files; lists every error")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    send = commands.add_parser("send-test", parents=[settings], help="sign a sample as the provider would and post it")
    send.add_argument("target", metavar="TENANT/CONNECTOR")
    send.add_argument("--file", type=Path, help="payload to send instead of the provider's sample")
    send.add_argument("--url", help="hub base URL (default: the running hub's, else --http-host/--http-port)")

    tail = commands.add_parser("tail", parents=[settings], help="print envelopes as they arrive")
    tail.add_argument("subject", nargs="?", default="hub.events.>")
    tail.add_argument("--count", type=int, help="exit after this many messages")

    policy = commands.add_parser("policy", help="inspect the gate's policy decisions")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    explain = policy_commands.add_parser(
        "explain", parents=[settings], help="for each route of a connector: matched or not, allowed or denied, and why"
    )
    explain.add_argument("--connector", required=True, metavar="TENANT/CONNECTOR")
    explain.add_argument("--event", required=True, type=Path, metavar="FILE", help="an event envelope (JSON)")
    explain.add_argument("--json", action="store_true", help="print JSON instead of lines")

    url_token = commands.add_parser(
        "url-token", parents=[settings], help="issue the signed ingress URL of a url-token connector"
    )
    url_token.add_argument("target", metavar="TENANT/CONNECTOR")
    url_token.add_argument("--base-url", help="the hub's public base URL (default: the running hub's)")

    verify = commands.add_parser(
        "verify", parents=[settings], help="say why a captured request fails (or passes) verification"
    )
    verify.add_argument("target", metavar="TENANT/CONNECTOR")
    verify.add_argument("--headers", required=True, type=Path, metavar="FILE", help="JSON object or Name: value lines")
    verify.add_argument("--body", required=True, type=Path, metavar="FILE", help="the raw body, byte for byte")
    verify.add_argument("--at", metavar="TIME", help="when it was received: epoch seconds or RFC 3339 (default: now)")
    verify.add_argument(
        "--url", default="http://hub.invalid/hooks", help="the URL the provider signed, if it signs one"
    )
    verify.add_argument("--method", default="POST")

    providers = commands.add_parser("providers", help="the webhook providers and pollers, with their signing facts")
    providers_output = providers.add_mutually_exclusive_group()
    providers_output.add_argument("--json", action="store_true", help="print JSON")
    providers_output.add_argument("--write", action="store_true", help="regenerate docs/providers.md")
    providers_output.add_argument("--check", action="store_true", help="exit 1 if docs/providers.md is out of date")

    status = commands.add_parser("status", parents=[settings], help="the state of poll connectors (from Valkey)")
    status.add_argument("target", nargs="?", metavar="TENANT/CONNECTOR")
    status.add_argument("--json", action="store_true", help="print JSON")

    schemas = commands.add_parser("schemas", help="write schemas/json from the models, or --check for drift")
    schemas.add_argument("--check", action="store_true", help="exit 1 if the checked-in files differ")
    return parser


def _control_commands(commands: Any, settings: _Parser) -> None:
    """apply, diff, get, delete, list, keys, secrets, service-map."""
    for name, text in (
        ("apply", "store spec files in the spec store (created/updated/unchanged)"),
        ("diff", "what apply would change, field by field"),
    ):
        command = commands.add_parser(name, parents=[settings], help=text)
        command.add_argument("-f", "--file", dest="spec_path", required=True, type=Path, metavar="PATH")
    get = commands.add_parser("get", parents=[settings], help="print a stored connector with its revision")
    get.add_argument("target", metavar="TENANT/CONNECTOR")
    get.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    delete = commands.add_parser("delete", parents=[settings], help="delete a stored connector")
    delete.add_argument("target", metavar="TENANT/CONNECTOR")
    delete.add_argument("--revision", type=int, help="refuse unless the stored revision is this one")
    delete.add_argument("--wipe-secrets", action="store_true", help="also wipe the store secrets only it used")
    listing = commands.add_parser("list", parents=[settings], help="the stored connectors and their states")
    listing.add_argument("--tenant")
    listing.add_argument("--json", action="store_true", help="print JSON")

    keys = commands.add_parser("keys", help="admin API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", parents=[settings], help="create a key; its token is printed once")
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--tenant", help="the one tenant the key acts for")
    owner.add_argument("--operator", action="store_true", help="a key for every tenant")
    create.add_argument("--scopes", required=True, help="comma-separated scopes, or `all`")
    create.add_argument("--description", default="")
    keys_list = keys.add_parser("list", parents=[settings], help="keys (never their tokens)")
    keys_list.add_argument("--tenant")
    keys_list.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys.add_parser("revoke", parents=[settings], help="revoke a key")
    revoke.add_argument("key_id", metavar="KEY_ID")

    secrets = commands.add_parser("secrets", help="the write-only secret store").add_subparsers(
        dest="secrets_command", required=True
    )
    put = secrets.add_parser("set", parents=[settings], help="store a new version (value from stdin or --from-file)")
    put.add_argument("target", metavar="TENANT/NAME")
    put.add_argument("--from-file", type=Path, metavar="FILE")
    secrets_list = secrets.add_parser("list", parents=[settings], help="names, versions and times (never values)")
    secrets_list.add_argument("tenant", metavar="TENANT")
    wipe = secrets.add_parser("delete", parents=[settings], help="wipe every version of a secret")
    wipe.add_argument("target", metavar="TENANT/NAME")
    secrets.add_parser("keygen", help="print a new random master key (for HUB_MASTER_KEY)")

    service_map = commands.add_parser("service-map", help="signed service maps").add_subparsers(
        dest="service_map_command", required=True
    )
    verify = service_map.add_parser("verify", parents=[settings], help="check a map's signature and expiry")
    verify.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the map (default: stdin)")


def _control(settings: Settings, args: argparse.Namespace) -> int:
    from hub.control import commands

    command = args.command
    if command in ("apply", "diff"):
        documents = commands.read_documents(args.spec_path)
        if documents is None:
            return 1
        return commands.run(settings, lambda plane: commands.apply(plane, documents, dry_run=command == "diff"))
    if command == "get":
        return commands.run(settings, lambda plane: commands.get(plane, args.target, as_json=args.json))
    if command == "delete":
        return commands.run(
            settings,
            lambda plane: commands.delete(plane, args.target, revision=args.revision, wipe_secrets=args.wipe_secrets),
        )
    if command == "list":
        return commands.run(settings, lambda plane: commands.list_connectors(plane, args.tenant, as_json=args.json))
    if command == "keys":
        if args.keys_command == "create":
            scopes = commands.parse_scopes(args.scopes)
            tenant = None if args.operator else args.tenant
            return commands.run(settings, lambda plane: commands.create_key(plane, tenant, scopes, args.description))
        if args.keys_command == "list":
            return commands.run(
                settings, lambda plane: commands.list_keys(plane, args.tenant, include_revoked=args.all)
            )
        return commands.run(settings, lambda plane: commands.revoke_key(plane, args.key_id))
    if args.secrets_command == "set":
        value = commands.read_secret_value(args.from_file)
        return commands.run(settings, lambda plane: commands.set_secret(plane, args.target, value))
    if args.secrets_command == "list":
        return commands.run(settings, lambda plane: commands.list_secrets(plane, args.tenant))
    return commands.run(settings, lambda plane: commands.wipe_secret(plane, args.target))


CONTROL_COMMANDS = ("apply", "diff", "get", "delete", "list", "keys", "secrets")


def setting_flags(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as `--flag`s, by field name."""
    return {k.removeprefix("setting_"): v for k, v in vars(args).items() if k.startswith("setting_") and v}


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by any `--flag` given."""
    overrides: dict[str, Any] = setting_flags(args)
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"connector-hub: setting {field_path(error['loc'])}: {error['msg']}", file=sys.stderr)
    except ConfigError as exc:
        print("connector-hub: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
    except SpecLoadError as exc:
        for spec_error in exc.errors:
            print(f"connector-hub: {spec_error}", file=sys.stderr)
    except EmbeddedServerError as exc:
        print(f"connector-hub: embedded {exc.server} failed: {exc.reason}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `connector-hub providers | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        return _validate(args.paths)
    if args.command == "schemas":
        return _schemas(check=args.check)
    if args.command == "providers":
        return _providers(args)
    if args.command == "secrets" and args.secrets_command == "keygen":
        from hub.control.sealing import generate_master_key

        print(generate_master_key())
        return 0
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    allow_key_hosts(settings.key_fetch_allowed_hosts)  # apply/diff/verify check connectors as `run` does
    if args.command in CONTROL_COMMANDS:
        return _control(settings, args)
    if args.command == "service-map":
        from hub.control.servicemap import service_map_cli

        return service_map_cli(args.file, settings.signing_key.get_secret_value() if settings.signing_key else None)
    if args.command == "run":
        roles = [role.strip() for role in args.role.split(",") if role.strip()]
        unknown = set(roles) - set(runner.ROLES)
        if unknown or not roles:
            print(f"connector-hub: unknown role(s): {', '.join(sorted(unknown)) or '(none given)'}", file=sys.stderr)
            return EXIT_USAGE
        if args.insecure_no_auth and not is_loopback_host(settings.admin_host):
            print(
                f"connector-hub: --insecure-no-auth needs the admin API on a loopback address: HUB_ADMIN_HOST is "
                f"{settings.admin_host!r} (use 127.0.0.1, ::1 or localhost)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        return workers.run(settings, roles, setting_flags(args), insecure_no_auth=args.insecure_no_auth)
    if args.command == "url-token":
        return _url_token(settings, args.target, args.base_url)
    if args.command == "verify":
        return _verify(settings, args)
    if args.command == "status":
        from hub.poll.status import show_status

        return asyncio.run(show_status(settings, args.target, as_json=args.json))
    if args.command == "policy":
        return _explain(settings, args.connector, args.event, as_json=args.json)
    if args.command == "send-test":
        from hub.sendtest import send_test

        return asyncio.run(send_test(settings, args.target, args.file, args.url))
    from hub.tail import tail

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(settings, args.subject, args.count))
    return 0


def _explain(settings: Settings, target: str, event_file: Path, *, as_json: bool) -> int:
    from hub.gate.catalog import build_catalog
    from hub.gate.explain import ExplainError, explain, read_event

    if settings.connectors is None:
        print("connector-hub: set HUB_CONNECTORS (or --connectors) to the spec files", file=sys.stderr)
        return EXIT_USAGE
    tenant, _, name = target.partition("/")
    try:
        explanations = explain(build_catalog(load_specs(settings.connectors)), tenant, name, read_event(event_file))
    except ExplainError as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(orjson.dumps([e.to_dict() for e in explanations], option=orjson.OPT_INDENT_2).decode())
    elif not explanations:
        print(f"{target} has no routes")
    for explanation in [] if as_json else explanations:
        print(explanation.line())
    return 0


def _validate(paths: list[Path]) -> int:
    report = validate_paths(paths)
    for problem in report.problems:
        print(problem, file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{report.connectors} connector(s) valid, {len(report.problems)} problem(s); "
        f"{report.policies} policy document(s)"
    )
    return 1 if report.problems else 0


def _url_token(settings: Settings, target: str, base_url: str | None) -> int:
    """From the spec files when they define the connector, else as the running hub serves it."""
    from adapters.webhooks.url_token import UrlTokenAdapter
    from hub.deployed import deployed_connector
    from hub.registry import connector_from_specs, defined_in_files
    from hub.sendtest import hook_url

    if defined_in_files(settings, target):
        connector = connector_from_specs(settings, target)
    else:
        connector = asyncio.run(deployed_connector(settings, target))
    if connector.provider != UrlTokenAdapter.name:
        print(f"connector-hub: {target} is not a url-token connector", file=sys.stderr)
        return EXIT_USAGE
    print(hook_url(settings, connector, base_url))
    return 0


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from hub.debugger import Captured, explain_verification, parse_at, read_headers

    try:
        captured = Captured(read_headers(args.headers), args.body.read_bytes(), args.url, args.method.upper())
    except OSError as exc:
        print(f"connector-hub: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    verified, lines = explain_verification(settings, args.target, captured, parse_at(args.at))
    for line in lines:
        print(line)
    return 0 if verified else 1


def _providers(args: argparse.Namespace) -> int:
    from hub import providerdocs

    if args.check:
        if providerdocs.drifted():
            print(f"{providerdocs.DOC_PATH} is out of date: run `connector-hub providers --write`", file=sys.stderr)
            return 1
        return 0
    if args.write:
        providerdocs.DOC_PATH.write_text(providerdocs.render_markdown())
        print(f"wrote {providerdocs.DOC_PATH}")
    elif args.json:
        print(orjson.dumps(providerdocs.provider_facts(), option=orjson.OPT_INDENT_2).decode())
    else:
        for facts in providerdocs.provider_facts():
            print(f"{facts['provider']:<18} {facts['signatureHeader']}")
            print(f"{'':<18} timestamp: {facts['timestamp'] or 'none'}; replay: {facts['replayProtection']}")
    return 0


def _schemas(*, check: bool) -> int:
    if check:
        drifted = schemagen.drifted()
        for name in drifted:
            print(f"{schemagen.SCHEMA_DIR / name} is out of date: run `connector-hub schemas`", file=sys.stderr)
        return 1 if drifted else 0
    for name in schemagen.write_schemas():
        print(f"wrote {schemagen.SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
