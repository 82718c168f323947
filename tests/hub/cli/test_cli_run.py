"""End-to-end tests of the real `connector-hub run` process, started as a subprocess.

Nothing is imported into the hub: it starts its own embedded nats-server and valkey-server under a
temporary HUB_DATA_DIR (HUB_NATS_URL and HUB_REDIS_URL are unset), listens on a free loopback port,
and logs JSON to a file the tests read. Every hub is stopped by its PID at teardown, also when a
test failed, and the embedded servers it started must be gone afterwards (a leftover is killed by
its PID and fails the test).

Run: `.venv/bin/pytest tests/hub/cli/test_cli_run.py -q`
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.base import SigningSecret, TestRequest
from adapters.webhooks.github import GitHubAdapter
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from hub.app.embedded import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
GONE_TIMEOUT_S = 10.0
POLL_S = 0.05

TENANT = "e2e"
GITHUB = f"{TENANT}/gh"
STANDARD = f"{TENANT}/sw"
GITHUB_SECRET_ENV = "E2E_GITHUB_SECRET"
STANDARD_SECRET_ENV = "E2E_STANDARD_WEBHOOKS_SECRET"
GITHUB_SECRET = "e2e-gh-secret-" + uuid.uuid4().hex
STANDARD_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
SECRETS = {GITHUB_SECRET_ENV: GITHUB_SECRET, STANDARD_SECRET_ENV: STANDARD_SECRET}

CONNECTORS_YAML = f"""\
apiVersion: hub/v1
kind: Connector
metadata: {{name: gh, tenant: {TENANT}}}
spec:
  type: webhook
  provider: github
  secrets:
    - secretRef: {{source: env, name: {GITHUB_SECRET_ENV}}}
---
apiVersion: hub/v1
kind: Connector
metadata: {{name: sw, tenant: {TENANT}}}
spec:
  type: webhook
  provider: standard-webhooks
  secrets:
    - secretRef: {{source: env, name: {STANDARD_SECRET_ENV}}}
"""


# --- processes -----------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_S)


def pid_gone(pid: int) -> bool:
    """True once the PID does not exist, or is a zombie (dead, waiting for a reaper that is not us)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pid_gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def processes_using(data_dir: Path) -> list[int]:
    """Live PIDs that name `data_dir` in their command line (nats-server's config) or work in it
    (valkey-server changes into its `--dir` and rewrites its command line)."""
    root = str(data_dir.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            uses = root.encode() in (entry / "cmdline").read_bytes() or os.readlink(entry / "cwd").startswith(root)
            if uses and not pid_gone(int(entry.name)):
                found.append(int(entry.name))
    return found


def child_pids(pid: int) -> set[int]:
    """The direct children of `pid`, from /proc/<pid>/task/*/children."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children.update(int(p) for p in (task / "children").read_text().split())
    return children


def hub_env(data_dir: Path, connectors: Path, port: int, secrets: dict[str, str]) -> dict[str, str]:
    """The environment of a hub and its CLI helpers: no HUB_* leaks in, embedded servers, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and not k.startswith("E2E_")}
    env |= {
        "HUB_DATA_DIR": str(data_dir),
        "HUB_CONNECTORS": str(connectors),
        "HUB_HTTP_PORT": str(port),
        "HUB_ADMIN_PORT": "0",
        "HUB_LOG_FORMAT": "json",
        "HUB_LOG_LEVEL": "INFO",
        **secrets,
    }
    return env


def hub_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub", *args]


def connector_hub_script() -> list[str]:
    """The venv's `connector-hub` console script (next to the interpreter), else `python -m hub`."""
    script = Path(sys.executable).parent / "connector-hub"
    return [str(script)] if script.is_file() else hub_cli()


@dataclass
class HubProcess:
    """One `connector-hub run` subprocess and what it left in its data dir and log."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    env: dict[str, str]
    url: str
    servers: dict[str, int] = field(default_factory=dict)

    @property
    def endpoints_path(self) -> Path:
        return self.data_dir / "endpoints.json"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line (other output, if any, is skipped)."""
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def embedded_servers(self) -> dict[str, int]:
        """{"nats-server": pid, "valkey-server": pid} from the start-up log lines."""
        found = {}
        for record in self.log_records():
            msg = str(record.get("msg", ""))
            for name in ("nats-server", "valkey-server"):
                if "started embedded" in msg and name in msg and isinstance(record.get("pid"), int):
                    found[name] = record["pid"]
        return found

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run `connector-hub <args>` with this hub's environment."""
        return subprocess.run(
            hub_cli(*args), env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One loopback HTTP request; any status (also 4xx/5xx) is returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def healthy(url: str) -> bool:
    with contextlib.suppress(OSError):
        return http("GET", f"{url}/healthz")[0] == 200
    return False


def spawn_hub(workdir: Path, argv: list[str]) -> HubProcess:
    """Start `argv` (a hub run) with the test connectors and its own data dir; no waiting."""
    workdir.mkdir(parents=True, exist_ok=True)
    connectors = workdir / "connectors.yaml"
    connectors.write_text(CONNECTORS_YAML)
    port = free_port()
    env = hub_env(workdir / "data", connectors, port, SECRETS)
    log_path = workdir / "hub.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    return HubProcess(proc, workdir / "data", log_path, env, f"http://127.0.0.1:{port}")


def start_hub(workdir: Path) -> HubProcess:
    """Start `connector-hub run` and wait until /healthz answers and the hub has recorded its endpoints
    (written after both listeners are up), or fail with its log."""
    hub = spawn_hub(workdir, hub_cli("run"))
    proc = hub.proc
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (healthy(hub.url) and hub.endpoints_path.exists()):
        if proc.poll() is not None or time.monotonic() >= deadline:
            hub.servers = hub.embedded_servers()
            stop_hub(hub)
            left = leftover_servers(hub)
            pytest.fail(f"hub did not become healthy (exit {proc.returncode}, left {left}); log:\n{hub.log_text()}")
        time.sleep(POLL_S)
    hub.servers = hub.embedded_servers()
    return hub


def stop_hub(hub: HubProcess) -> int:
    """SIGTERM the hub by its PID and reap it (SIGKILL after STOP_TIMEOUT_S); returns its exit status."""
    if hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            hub.proc.wait()
    return hub.proc.returncode


def leftover_servers(hub: HubProcess) -> list[int]:
    """Embedded server PIDs still alive GONE_TIMEOUT_S after the hub stopped (killed here, by PID)."""
    pids = set(hub.servers.values()) | set(processes_using(hub.data_dir))
    left = [pid for pid in sorted(pids) if not wait_gone(pid, GONE_TIMEOUT_S)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@contextlib.contextmanager
def running_hub(workdir: Path) -> Iterator[HubProcess]:
    """A hub that is always stopped afterwards; leaving an embedded server behind fails the test."""
    hub = start_hub(workdir)
    try:
        yield hub
    finally:
        stop_hub(hub)
        left = leftover_servers(hub)
        if left:
            pytest.fail(f"embedded server PIDs {left} outlived the hub; killed them")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub shared by the tests that only talk to it."""
    with running_hub(tmp_path_factory.mktemp("hub")) as shared:
        yield shared


@pytest.fixture
def own_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub for a test that stops or kills it."""
    with running_hub(tmp_path / "hub") as single:
        yield single


# --- signed requests -----------------------------------------------------------------------------


def signed(target: str, secret: str) -> TestRequest:
    """A sample of the connector's provider, signed with `secret` as the provider would."""
    adapter = GitHubAdapter.configure() if target == GITHUB else StandardWebhooksAdapter.configure()
    now = time.time()
    return adapter.sign(adapter.sample(now), SigningSecret("e2e", secret.encode()), now)


def post_hook(hub: HubProcess, target: str, request: TestRequest) -> tuple[int, bytes]:
    return http("POST", f"{hub.url}/hooks/{target}", request.body, request.headers)


# --- 1. start-up, readiness, metrics ------------------------------------------------------------


def test_startup_logs_embedded_servers_and_is_ready(hub: HubProcess) -> None:
    messages = [str(r.get("msg", "")) for r in hub.log_records()]
    assert any("embedded" in m and "nats-server" in m for m in messages), messages
    assert any("embedded" in m and "valkey-server" in m for m in messages), messages
    assert set(hub.servers) == {"nats-server", "valkey-server"}
    assert set(hub.servers.values()) <= child_pids(hub.proc.pid)
    assert set(hub.servers.values()) <= set(processes_using(hub.data_dir))  # the orphan check can see them

    status, body = http("GET", f"{json.loads(hub.endpoints_path.read_text())['admin_url']}/readyz")
    assert status == 200, body
    ready = json.loads(body)
    assert ready["ready"] is True
    assert ready["checks"] == {"nats": "ok", "valkey": "ok", "streams": "ok"}


def test_metrics_count_requests(hub: HubProcess) -> None:
    status, body = post_hook(hub, GITHUB, signed(GITHUB, GITHUB_SECRET))
    assert status == 202, body
    status, metrics = http("GET", f"{json.loads(hub.endpoints_path.read_text())['admin_url']}/metrics")
    assert status == 200
    text = metrics.decode()
    assert "hub_ingest_requests_total" in text
    assert 'hub_ingest_requests_total{connector="gh",outcome="accepted",tenant="e2e"}' in text


# --- 2. send-test and tail ----------------------------------------------------------------------


@contextlib.contextmanager
def tailing(hub: HubProcess, workdir: Path, count: int) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """`connector-hub tail --count N`, started and subscribed; yields a function awaiting its output."""
    name = f"tail-{uuid.uuid4().hex[:8]}"
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            hub_cli("tail", "--count", str(count)),
            env=hub.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        wait_until(lambda: "# tailing" in err_path.read_text() or proc.poll() is not None, 20, "tail to subscribe")
        assert proc.poll() is None, err_path.read_text()

        def output() -> list[dict[str, Any]]:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"tail did not print {count} envelopes; got:\n{out_path.read_text()}")
            assert proc.returncode == 0, err_path.read_text()
            return [json.loads(line) for line in out_path.read_text().splitlines()]

        yield output
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_send_test_and_tail(hub: HubProcess, tmp_path: Path) -> None:
    with tailing(hub, tmp_path, 2) as envelopes:
        for target in (GITHUB, STANDARD):
            result = hub.cli("send-test", target)
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"/hooks/{target} -> 202" in result.stdout
        received = envelopes()
    by_source = {e["source"]: e for e in received}
    assert set(by_source) == {f"hub://{GITHUB}", f"hub://{STANDARD}"}
    assert by_source[f"hub://{GITHUB}"]["type"] == "github.push"
    assert by_source[f"hub://{STANDARD}"]["type"] == "standard-webhooks.user.created"
    for envelope in received:
        assert envelope["specversion"] == "1.0"
        assert envelope["hubverified"] == "hmac-sha256"


def test_send_test_file(hub: HubProcess, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    payload = {"action": "opened", "marker": marker, "repository": {"full_name": "octo-org/e2e"}}
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps(payload))
    with tailing(hub, tmp_path, 1) as envelopes:
        result = hub.cli("send-test", GITHUB, "--file", str(payload_file))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "-> 202" in result.stdout
        (envelope,) = envelopes()
    assert envelope["data"] == payload
    assert envelope["type"] == "github.push.opened"
    assert envelope["subject"] == "octo-org/e2e"


# --- 6. no secrets or signatures in logs --------------------------------------------------------


def signature_values(request: TestRequest) -> list[str]:
    """Every signature header value, and the bare signature inside it."""
    values = []
    for name, value in request.headers.items():
        if "signature" not in name.lower():
            continue
        values.append(value)
        for part in value.split():  # `sha256=<hex>` (GitHub) or `v1,<base64>` (Standard Webhooks)
            bare = part.split(",", 1)[-1]
            values.append(bare.split("=", 1)[1] if bare.startswith(("sha1=", "sha256=")) else bare)
    assert values, request.headers
    assert all(len(v) >= 20 for v in values), values
    return values


def test_logs_never_contain_secrets_or_signatures(hub: HubProcess) -> None:
    sent: list[TestRequest] = []
    wrong_standard_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    for target, secret, wrong in (
        (GITHUB, GITHUB_SECRET, GITHUB_SECRET + "-wrong"),
        (STANDARD, STANDARD_SECRET, wrong_standard_secret),
    ):
        valid, forged = signed(target, secret), signed(target, wrong)
        assert post_hook(hub, target, valid)[0] == 202
        assert post_hook(hub, target, forged)[0] == 401
        sent += [valid, forged]
    refused = [r for r in hub.log_records() if r.get("msg") == "webhook refused"]
    assert {r.get("connector") for r in refused} >= {GITHUB, STANDARD}, "the refusals were not logged"

    logs = {"hub": hub.log_text()}
    for server_log in ("nats/nats.log", "valkey/valkey.log"):
        with contextlib.suppress(OSError):
            logs[server_log] = (hub.data_dir / server_log).read_text(errors="replace")
    needles = {"github secret": GITHUB_SECRET, "standard-webhooks secret": STANDARD_SECRET}
    needles |= {f"signature {v[:12]}...": v for request in sent for v in signature_values(request)}
    for where, text in logs.items():
        for what, value in needles.items():
            assert value not in text, f"{what} appears in the {where} log"


# --- 3. SIGTERM, 4. SIGKILL ---------------------------------------------------------------------


def test_sigterm_stops_hub_and_servers(own_hub: HubProcess) -> None:
    record = json.loads(own_hub.endpoints_path.read_text())
    assert record["pid"] == own_hub.proc.pid
    assert record["http_url"] == own_hub.url
    started = {str(r.get("url")) for r in own_hub.log_records() if "started embedded" in str(r.get("msg"))}
    assert {record["nats_url"], record["redis_url"]} == started
    servers = dict(own_hub.servers)
    assert set(servers) == {"nats-server", "valkey-server"}

    began = time.monotonic()
    own_hub.proc.send_signal(signal.SIGTERM)
    try:
        status = own_hub.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the hub did not exit within {STOP_TIMEOUT_S}s of SIGTERM")
    assert status == 0, own_hub.log_text()
    assert time.monotonic() - began < STOP_TIMEOUT_S
    for name, pid in servers.items():
        assert pid_gone(pid), f"{name} (pid {pid}) is still running after the hub exited"
    assert not own_hub.endpoints_path.exists()
    stopped = {r.get("pid") for r in own_hub.log_records() if r.get("msg") == "embedded server stopped"}
    assert stopped == set(servers.values())


SIGTERM_WHILE_STARTING = """
import os, signal, sys
import hub.app.serve
from hub.cli import main

def signalled_while_starting() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # after the HTTP port is open, before the hub says it listens

hub.app.serve.freeze_startup_heap = signalled_while_starting
sys.exit(main(["run"]))
"""


def test_sigterm_during_startup_stops_gracefully(tmp_path: Path) -> None:
    """A SIGTERM once the port answers but before `listening` is a graceful stop, not a kill."""
    hub = spawn_hub(tmp_path, [sys.executable, "-c", SIGTERM_WHILE_STARTING])
    try:
        status = hub.proc.wait(START_TIMEOUT_S + STOP_TIMEOUT_S)
    finally:
        stop_hub(hub)
        left = leftover_servers(hub)
    assert status == 0, hub.log_text()
    messages = [r.get("msg") for r in hub.log_records()]
    assert "stopping: finishing in-flight requests, handlers and poll pages" in messages
    assert not left, f"embedded server PIDs {left} outlived the hub"


def test_sigkill_takes_embedded_servers_down(own_hub: HubProcess) -> None:
    servers = dict(own_hub.servers)
    assert set(servers) == {"nats-server", "valkey-server"}
    own_hub.proc.send_signal(signal.SIGKILL)
    own_hub.proc.wait(STOP_TIMEOUT_S)
    for name, pid in servers.items():
        assert wait_gone(pid, GONE_TIMEOUT_S), f"{name} (pid {pid}) outlived the SIGKILLed hub"
    assert processes_using(own_hub.data_dir) == []


# --- 5. configuration errors fail fast ----------------------------------------------------------


def test_missing_secret_fails_before_starting_servers(tmp_path: Path) -> None:
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(CONNECTORS_YAML)
    data_dir = tmp_path / "data"
    env = hub_env(data_dir, connectors, free_port(), {GITHUB_SECRET_ENV: GITHUB_SECRET})
    began = time.monotonic()
    result = subprocess.run(hub_cli("run"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - began < 15
    problem = [line for line in result.stderr.splitlines() if STANDARD_SECRET_ENV in line]
    assert problem, result.stderr
    assert STANDARD in problem[0]
    assert "spec.secrets[0]" in problem[0]
    assert f"connector {GITHUB}:" not in result.stderr  # the connector whose secret is set is not blamed
    assert "started embedded" not in result.stderr
    assert not (data_dir / "nats").exists()
    assert not (data_dir / "valkey").exists()
    assert processes_using(data_dir) == []


# --- 7. the command line itself -----------------------------------------------------------------


def test_python_m_hub_help() -> None:
    result = subprocess.run(hub_cli("--help"), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("run", "validate", "send-test", "tail"):
        assert command in result.stdout


def test_validate_examples() -> None:
    result = subprocess.run(
        [*connector_hub_script(), "validate", "examples/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem(s)" in result.stdout
