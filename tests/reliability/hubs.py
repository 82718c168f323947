"""The hub under test as deployed: `connector-hub run` subprocesses (optionally `--workers N`) with the
three simulated providers' connectors, on a fixed loopback port so that senders retry against a
restarted hub at the same URL. Every process started is stopped by its PID at teardown.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import wait_for
from tests.hub.app.test_workers import Supervised, launch
from tests.hub.ingress.signing import SecretSpec, connector_doc, specs_yaml
from tests.reliability.senders import PROFILES, TENANT, Profile, new_secret

START_TIMEOUT_S = 60.0
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
ROUTE = "out"
ROUTE_RETRY = {"maxAttempts": 8, "initial": "100ms", "max": "500ms", "jitter": False}
GATE_STARTED = "gate consumers started"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def secret_env(profile: Profile) -> str:
    return f"RELIABILITY_{profile.connector.upper()}_SECRET"


def specs(
    secrets: Mapping[str, str], target_url: str | None, webhook: Mapping[str, dict[str, Any]] | None = None
) -> str:
    """One connector per simulated provider (`webhook` adds settings per connector name); with
    `target_url`, each routes every event to it, and the tenant's Policy allows the loopback target."""
    documents: list[dict[str, Any]] = []
    for profile in PROFILES:
        key = SecretSpec("k1", secret_env(profile), secrets[secret_env(profile)])
        extra = (webhook or {}).get(profile.connector)
        document = connector_doc(profile.connector, profile.provider, [key], webhook=extra)
        if target_url is not None:
            target = {"http": {"url": f"{target_url}/{profile.connector}", "timeout": "2s"}}
            document["spec"]["routes"] = [
                {"name": ROUTE, "match": {"types": [">"]}, "target": target, "retry": ROUTE_RETRY}
            ]
        documents.append(document)
    policy = {
        "apiVersion": "hub/v1",
        "kind": "Policy",
        "metadata": {"name": "default", "tenant": TENANT},
        "spec": {
            "allowedHosts": ["127.0.0.1"],
            "egress": {"allowedNetworks": ["127.0.0.0/8"]},
            "rules": [{"name": "all", "effect": "allow"}],
        },
    }
    return specs_yaml(*documents, policy)


def kill(hub: Supervised) -> None:
    """SIGKILL a `run` process by its PID (a crash: nothing is drained) and reap it; a supervisor's
    workers die with it."""
    if hub.proc.poll() is None:
        hub.proc.kill()
        hub.proc.wait()


@dataclass
class Hubs:
    """Starts `connector-hub run` processes for one scenario and stops every one of them by PID."""

    root: Path
    nats_url: str
    redis_url: str | None
    """HUB_REDIS_URL; None when `settings` name the Sentinels instead (HUB_REDIS_SENTINELS)."""
    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=lambda: {secret_env(p): new_secret() for p in PROFILES})
    target_url: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    """HUB_* settings of every process (e.g. HUB_PUBLISH_TIMEOUT)."""
    webhook: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`spec.webhook` settings per connector name (e.g. a short replay window)."""
    started: list[Supervised] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def secret(self, profile: Profile) -> str:
        return self.secrets[secret_env(profile)]

    def env(self, data_dir: Path) -> dict[str, str]:
        spec_file = self.root / "connectors.yaml"
        spec_file.write_text(specs(self.secrets, self.target_url, self.webhook))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= {
            "HUB_NATS_URL": self.nats_url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_CONNECTORS": str(spec_file),
            "HUB_HTTP_PORT": str(self.port),
            "HUB_ADMIN_PORT": "0",
            "HUB_LOG_FORMAT": "json",
            "HUB_MASTER_KEY": MASTER_KEY,
        }
        if self.redis_url is not None:
            env["HUB_REDIS_URL"] = self.redis_url
        return env | self.secrets | self.settings

    async def start(self, roles: str = "ingress", workers: int = 0) -> Supervised:
        """A `run` process (a supervisor with `workers` > 0) on this scenario's port, once it serves
        (and, with gate roles, consumes)."""
        number = len(self.started)
        flags = ["--role", roles, *(["--workers", str(workers)] if workers else [])]
        hub = launch(self.env(self.root / f"hub-{number}"), self.root / f"hub-{number}.log", *flags)
        self.started.append(hub)

        async def ready() -> bool:
            hub.alive()
            record = hub.record()
            if record is None or len(record["worker_pids"]) != workers:
                return False
            return "dispatch" not in roles or hub.log_text().count(GATE_STARTED) >= max(workers, 1)

        await wait_for(ready, START_TIMEOUT_S, f"hub {number} serving on port {self.port}")
        return hub

    def stop_all(self) -> None:
        for hub in reversed(self.started):
            hub.stop()


@contextlib.contextmanager
def hubs(root: Path, nats_url: str, redis_url: str | None, **options: Any) -> Iterator[Hubs]:
    """A `Hubs` whose processes are all stopped when the block ends, also on failure."""
    root.mkdir(parents=True, exist_ok=True)
    made = Hubs(root, nats_url, redis_url, **options)
    try:
        yield made
    finally:
        made.stop_all()
