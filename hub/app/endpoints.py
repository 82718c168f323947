"""The endpoints record of a running hub (`HUB_DATA_DIR/endpoints.json`): where its NATS, Valkey,
ingress and admin API are, for CLI commands on the same machine (`tail`, `send-test`, `status`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from hub.app.connections import Endpoints


def endpoints_file(data_dir: Path) -> Path:
    """Where a running hub records its endpoints."""
    return data_dir / "endpoints.json"


def running_hub_endpoints(data_dir: Path) -> dict[str, Any] | None:
    """The record of the hub running with this data dir, or None (no record, or its process is gone)."""
    try:
        record: dict[str, Any] = orjson.loads(endpoints_file(data_dir).read_bytes())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def record_endpoints(
    data_dir: Path, endpoints: Endpoints, http_url: str, admin_url: str | None, worker_pids: Sequence[int] = ()
) -> None:
    """Write this process's endpoints record; replaced whole, so a reader never sees half of it
    (a supervisor rewrites it when a worker restarts)."""
    path = endpoints_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "nats_url": endpoints.nats_url,
        "redis_url": endpoints.redis_url,
        "http_url": http_url,
        "admin_url": admin_url,
        "pid": os.getpid(),
        "embedded_pids": endpoints.embedded_pids,
        "worker_pids": list(worker_pids),
    }
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_bytes(orjson.dumps(record))
    staged.replace(path)
