"""A single-process `connector-hub run` whose port is taken says so in one line naming the setting,
and exits 2 (as `--workers` does), instead of a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hub.app.embedded import RunningServer
from hub.errors import EXIT_USAGE

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("setting", ["HUB_HTTP_PORT", "HUB_ADMIN_PORT"])
def test_a_taken_port_is_one_line_naming_the_setting_and_exit_2(
    setting: str, nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= {
            "HUB_NATS_URL": nats_server.url,
            "HUB_REDIS_URL": valkey_server.url,
            "HUB_DATA_DIR": str(tmp_path / "hub"),
            "HUB_HTTP_PORT": "0",
            "HUB_ADMIN_PORT": "0",
            setting: str(port),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)  # reaps it and closes its pipes
    assert proc.returncode == EXIT_USAGE, err
    stderr = err.decode()
    assert f"{setting}: cannot listen on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr + out.decode()
