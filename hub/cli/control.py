"""The control-plane commands of the CLI: apply, diff, get, delete, list, keys, secrets.

They talk to the spec store on the bus directly (the CLI holds the bus's credentials and acts as an
operator; tenants use the admin API with their keys). Every change is audited with the actor
`cli:<user>`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from events.envelope import rfc3339
from hub.cli.client import on_control_plane
from hub.cli.command import Command, Invocation
from hub.control.apikeys import SCOPES, ApiKeyError
from hub.control.checks import ServingLimits, lifecycle_warnings
from hub.control.plane import Actor, ControlPlane, InvalidSpec
from hub.control.sealing import generate_master_key
from hub.control.secretstore import SecretStoreError
from hub.control.specstore import RevisionConflict, SpecDocument
from hub.errors import EXIT_USAGE
from schemas.connector import ConnectorDocument
from schemas.loader import LoadedSpecs, read_specs

EXIT_FAILED = 1


@dataclass(frozen=True, slots=True)
class FileDocument:
    """A document read from a spec file, and where: a problem found by the apply checks names both."""

    file: Path
    index: int
    document: SpecDocument


def read_documents(path: Path) -> list[FileDocument] | None:
    """The documents under a path (policies first), or None after printing every error."""
    loaded, errors = read_specs(path)
    for error in errors:
        print(f"connector-hub: {error}", file=sys.stderr)
    return None if errors else _documents(loaded)


def _documents(loaded: LoadedSpecs) -> list[FileDocument]:
    return [
        *(FileDocument(p.file, p.document, p.policy) for p in loaded.policies),
        *(FileDocument(c.file, c.document, c.connector) for c in loaded.connectors),
    ]


async def apply(plane: ControlPlane, documents: list[FileDocument], *, dry_run: bool, limits: ServingLimits) -> int:
    """Check every document first (against this CLI's own settings, `limits`), then apply each; print
    created/updated/unchanged (or the changes)."""
    failed = False
    for located in documents:
        for problem in await plane.check(located.document, limits=limits):
            print(f"connector-hub: {located.file}: document {located.index}: {problem}", file=sys.stderr)
            failed = True
    if failed:
        return EXIT_FAILED
    actor = Actor.cli()
    for document in (located.document for located in documents):
        if isinstance(document, ConnectorDocument):
            for warning in lifecycle_warnings(document):
                print(f"connector-hub: warning: {warning}", file=sys.stderr)
        try:
            result = await plane.apply(document, actor, dry_run=dry_run, limits=limits)
        except RevisionConflict as exc:
            print(f"connector-hub: {exc}", file=sys.stderr)
            failed = True
            continue
        except InvalidSpec as exc:
            print(f"connector-hub: {exc}", file=sys.stderr)
            failed = True
            continue
        if dry_run:
            verb = {"created": "would be created", "updated": "would change", "unchanged": "unchanged"}[result.action]
            print(f"{result.label}: {verb}")
            for change in result.changes if result.action == "updated" else []:
                print(f"  {change.line()}")
        else:
            print(f"{result.label}: {result.action} (revision {result.revision})")
    return EXIT_FAILED if failed else 0


async def get(plane: ControlPlane, target: str, *, as_json: bool) -> int:
    """Print a stored connector with its revision."""
    tenant, name = split_target(target)
    stored = await plane.specs.connector(tenant, name)
    if stored is None:
        print(f"connector-hub: no connector {target} in the spec store", file=sys.stderr)
        return EXIT_FAILED
    data = stored.with_revision()
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if as_json else yaml.safe_dump(data, sort_keys=False))
    return 0


async def delete(plane: ControlPlane, target: str, *, revision: int | None, purge: bool, retention: timedelta) -> int:
    """Delete a connector: into the trash (restorable for `retention`), or with `purge` for good."""
    tenant, name = split_target(target)
    try:
        deleted = await plane.delete_connector(tenant, name, Actor.cli(), expected_revision=revision, purge=purge)
    except RevisionConflict as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if deleted is None:
        print(f"connector-hub: no connector {target} in the spec store", file=sys.stderr)
        return EXIT_FAILED
    print(f"deleted connector {target} (revision {deleted.spec.revision})")
    if deleted.trashed is not None:
        until = rfc3339(deleted.trashed.expires_at(retention))
        print(f"kept in the trash until {until}: `connector-hub restore {target}` brings it back")
        if deleted.trashed.secrets:
            print(f"secrets kept in the trash with it: {', '.join(deleted.trashed.secret_names)}")
    if deleted.wiped:
        print(f"wiped secrets: {', '.join(deleted.wiped)}")
    if deleted.kept:
        print(f"kept secrets still used by other connectors: {', '.join(deleted.kept)}")
    return 0


async def list_connectors(plane: ControlPlane, tenant: str | None, *, as_json: bool) -> int:
    """One line per stored connector, with its status."""
    stored = await plane.specs.connectors(tenant)
    statuses = await plane.statuses.all(tenant)
    rows: list[dict[str, Any]] = []
    for spec in stored:
        document = spec.document
        key = (document.metadata.tenant, document.metadata.name)
        status = statuses.get(key)
        rows.append(
            {
                "connector": "/".join(key),
                "type": getattr(document.spec, "type", ""),
                "provider": getattr(document.spec, "provider", ""),
                "enabled": getattr(document.spec, "enabled", True),
                "revision": spec.revision,
                "state": status.state if status else "provisioning",
                "lastError": status.lastError if status else None,
            }
        )
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    for row in rows:
        enabled = "enabled" if row["enabled"] else "disabled"
        error = f"  ({row['lastError']})" if row["lastError"] else ""
        print(
            f"{row['connector']:<40} {row['type']:<8} {row['provider']:<18} {enabled:<9} "
            f"rev {row['revision']:<6} {row['state']}{error}"
        )
    if not rows:
        print("no connectors in the spec store")
    return 0


async def create_key(plane: ControlPlane, tenant: str | None, scopes: list[str], description: str) -> int:
    """Create a key and print its token: the only time it is ever shown."""
    try:
        token, key = await plane.create_key(tenant, scopes, description, Actor.cli())
    except ApiKeyError as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return EXIT_USAGE
    owner = f"tenant {key.tenant}" if key.tenant else "every tenant (operator key)"
    print(f"key {key.id} for {owner}, scopes {', '.join(sorted(key.scopes))}", file=sys.stderr)
    print("the key is shown once; only its hash is stored:", file=sys.stderr)
    print(token)
    return 0


async def list_keys(plane: ControlPlane, tenant: str | None, *, include_revoked: bool) -> int:
    """One line per key (never a token or hash)."""
    keys = await plane.keys.list(tenant, include_revoked=include_revoked)
    for key in keys:
        revoked = f" revoked {key.revoked_at}" if key.revoked_at else ""
        print(f"{key.id}  {key.tenant or '*':<20} {','.join(sorted(key.scopes))}  {key.created_at}{revoked}")
    if not keys:
        print("no keys")
    return 0


async def revoke_key(plane: ControlPlane, key_id: str) -> int:
    """Revoke a key."""
    key = await plane.revoke_key(key_id, Actor.cli())
    if key is None:
        print(f"connector-hub: no key {key_id}", file=sys.stderr)
        return EXIT_FAILED
    print(f"revoked key {key.id}")
    return 0


async def set_secret(plane: ControlPlane, target: str, value: bytes) -> int:
    """Store a new version of a secret."""
    tenant, name = split_target(target)
    try:
        info = await plane.set_secret(tenant, name, value, Actor.cli())
    except (SecretStoreError, ValueError) as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"stored secret {target} version {info.version}")
    return 0


async def list_secrets(plane: ControlPlane, tenant: str) -> int:
    """Names, versions and times; never values."""
    infos = await plane.secrets.list(tenant)
    for info in infos:
        versions = ", ".join(f"v{v.version} {v.created_at}" for v in info.versions)
        print(f"{info.name}: {versions}")
    if not infos:
        print(f"no secrets for tenant {tenant}")
    return 0


async def wipe_secret(plane: ControlPlane, target: str) -> int:
    """Delete every version of a secret."""
    tenant, name = split_target(target)
    if not await plane.wipe_secret(tenant, name, Actor.cli()):
        print(f"connector-hub: no secret {target}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wiped secret {target}")
    return 0


def read_secret_value(file: Path | None) -> bytes:
    """The value from a file or stdin, without one trailing line break (never from an argument:
    arguments show in `ps` and shell history)."""
    raw = file.read_bytes() if file is not None else sys.stdin.buffer.read()
    return raw.removesuffix(b"\n").removesuffix(b"\r")


def split_target(target: str) -> tuple[str, str]:
    """`tenant/name`, or SystemExit saying so."""
    tenant, _, name = target.partition("/")
    if not tenant or not name:
        raise SystemExit(f"connector-hub: {target!r} is not TENANT/NAME")
    return tenant, name


def parse_scopes(text: str) -> list[str]:
    """Comma-separated scopes; `all` is every scope."""
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    return list(SCOPES) if scopes == ["all"] else scopes


def _target_argument(parser: argparse.ArgumentParser, metavar: str = "TENANT/CONNECTOR") -> None:
    parser.add_argument("target", metavar=metavar)


def _spec_file(parser: argparse.ArgumentParser, *, dry_run: bool) -> None:
    parser.add_argument(
        "-f", "--file", dest="spec_path", required=True, type=Path, metavar="PATH", help="a spec file or a folder"
    )
    parser.set_defaults(dry_run=dry_run)


def _apply(run: Invocation) -> int:
    documents = read_documents(run.args.spec_path)
    if documents is None:
        return EXIT_FAILED
    dry_run, limits = run.args.dry_run, ServingLimits.of(run.settings)
    return on_control_plane(run.settings, lambda plane: apply(plane, documents, dry_run=dry_run, limits=limits))


def _get_arguments(parser: argparse.ArgumentParser) -> None:
    _target_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")


def _delete_arguments(parser: argparse.ArgumentParser) -> None:
    _target_argument(parser)
    parser.add_argument("--revision", type=int, help="refuse unless the stored revision is this one")
    parser.add_argument(
        "--purge",
        "--wipe-secrets",
        dest="purge",
        action="store_true",
        help="keep nothing in the trash: delete for good and wipe the store secrets only it used",
    )


def _delete(run: Invocation) -> int:
    args, retention = run.args, run.settings.deleted_retention
    return on_control_plane(
        run.settings,
        lambda plane: delete(plane, args.target, revision=args.revision, purge=args.purge, retention=retention),
    )


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant's connectors")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _key_create_arguments(parser: argparse.ArgumentParser) -> None:
    owner = parser.add_mutually_exclusive_group(required=True)
    owner.add_argument("--tenant", help="the one tenant the key acts for")
    owner.add_argument("--operator", action="store_true", help="a key for every tenant")
    parser.add_argument("--scopes", required=True, help="comma-separated scopes, or `all`")
    parser.add_argument("--description", default="", help="what the key is for (shown by `keys list`)")


def _key_create(run: Invocation) -> int:
    args = run.args
    scopes, tenant = parse_scopes(args.scopes), None if args.operator else args.tenant
    return on_control_plane(run.settings, lambda plane: create_key(plane, tenant, scopes, args.description))


def _keys_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant's keys")
    parser.add_argument("--all", action="store_true", help="include revoked keys")


def _secret_set_arguments(parser: argparse.ArgumentParser) -> None:
    _target_argument(parser, "TENANT/NAME")
    parser.add_argument("--from-file", type=Path, metavar="FILE", help="read the value from FILE (default: stdin)")


def _secret_set(run: Invocation) -> int:
    value = read_secret_value(run.args.from_file)
    return on_control_plane(run.settings, lambda plane: set_secret(plane, run.args.target, value))


def _keygen(run: Invocation) -> int:
    print(generate_master_key())
    return 0


def _on_plane(command: Callable[[ControlPlane, argparse.Namespace], Awaitable[int]]) -> Callable[[Invocation], int]:
    """A handler that runs `command` against the running hub's control plane."""
    return lambda run: on_control_plane(run.settings, lambda plane: command(plane, run.args))


COMMANDS = (
    Command(
        ("apply",),
        "store spec files in the spec store (created/updated/unchanged)",
        _apply,
        lambda parser: _spec_file(parser, dry_run=False),
    ),
    Command(
        ("diff",),
        "what apply would change, field by field",
        _apply,
        lambda parser: _spec_file(parser, dry_run=True),
    ),
    Command(
        ("get",),
        "print a stored connector with its revision",
        _on_plane(lambda plane, args: get(plane, args.target, as_json=args.json)),
        _get_arguments,
    ),
    Command(
        ("delete",),
        "delete a stored connector (kept in the trash, restorable for HUB_DELETED_RETENTION)",
        _delete,
        _delete_arguments,
    ),
    Command(
        ("list",),
        "the stored connectors and their states",
        _on_plane(lambda plane, args: list_connectors(plane, args.tenant, as_json=args.json)),
        _list_arguments,
    ),
    Command(("keys", "create"), "create a key; its token is printed once", _key_create, _key_create_arguments),
    Command(
        ("keys", "list"),
        "keys (never their tokens)",
        _on_plane(lambda plane, args: list_keys(plane, args.tenant, include_revoked=args.all)),
        _keys_list_arguments,
    ),
    Command(
        ("keys", "revoke"),
        "revoke a key",
        _on_plane(lambda plane, args: revoke_key(plane, args.key_id)),
        lambda parser: parser.add_argument("key_id", metavar="KEY_ID", help="the id `keys list` shows"),
    ),
    Command(
        ("secrets", "set"),
        "store a new version (value from stdin or --from-file)",
        _secret_set,
        _secret_set_arguments,
    ),
    Command(
        ("secrets", "list"),
        "names, versions and times (never values)",
        _on_plane(lambda plane, args: list_secrets(plane, args.tenant)),
        lambda parser: parser.add_argument("tenant", metavar="TENANT"),
    ),
    Command(
        ("secrets", "delete"),
        "wipe every version of a secret",
        _on_plane(lambda plane, args: wipe_secret(plane, args.target)),
        lambda parser: _target_argument(parser, "TENANT/NAME"),
    ),
    Command(("secrets", "keygen"), "print a new random master key (for HUB_MASTER_KEY)", _keygen, takes_settings=False),
)
