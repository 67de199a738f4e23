"""boto3 clients for the chosen target; on local, the emulator is found, or started, first."""
from __future__ import annotations

import fcntl
import functools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError

from .config import PROJECT_ROOT, Settings
from .errors import ConfigError, EmulatorError

# Local credentials: the emulator accepts any; these never leave the machine.
_LOCAL_KEYS = {"aws_access_key_id": "workshop-local", "aws_secret_access_key": "workshop-local"}
_DEFAULT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, user_agent_extra="agentcore-workshop")


def client(service: str, settings: Settings, config: Config | None = None):
    """A boto3 client for `service`; on local it talks to the emulator, on aws to AWS.

    Clients are made once per service, settings and config and then shared: making one costs
    0.15-0.2 s of CPU, and clients (unlike sessions) are safe to share between threads. On local
    the emulator is checked (one health request, starting it if none answers) once per process and
    endpoint, and again when a call cannot connect to it: see _recheck_on_connection_failure.
    """
    if settings.is_local and settings.endpoint_url not in _reached:
        ensure_emulator(settings)
        _reached.add(settings.endpoint_url)
    with _clients_lock:
        return _cached_client(service, settings, config)


_clients_lock = threading.Lock()
# Endpoints whose emulator answered in this process; one leaves the set when a call cannot connect.
_reached: set[str] = set()
# botocore's connection failures: an emulator that stopped (or never started) shows as one of these.
_UNREACHABLE = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError)


def _recheck_on_connection_failure(settings: Settings):
    """A needs-retry hook: when a call cannot reach the emulator, find or start it before boto3 retries.

    Returns None, so the retry handler still decides whether and when to retry.
    """
    def hook(caught_exception=None, **_):
        if isinstance(caught_exception, _UNREACHABLE):
            _reached.discard(settings.endpoint_url)
            ensure_emulator(settings)
            _reached.add(settings.endpoint_url)
        return None

    return hook


@functools.lru_cache(maxsize=64)
def _cached_client(service: str, settings: Settings, config: Config | None):
    cfg = _DEFAULT_CONFIG.merge(config) if config else _DEFAULT_CONFIG
    if settings.is_local:
        made = boto3.session.Session(region_name=settings.region, **_LOCAL_KEYS).client(
            service, endpoint_url=settings.endpoint_url, config=cfg)
        made.meta.events.register_first("needs-retry", _recheck_on_connection_failure(settings))
        return made
    # On aws, AWS_ENDPOINT_URL(_*) left over from local runs must not send real credentials elsewhere.
    cfg = cfg.merge(Config(ignore_configured_endpoint_urls=True))
    return boto3.session.Session(region_name=settings.region).client(service, config=cfg)


def account_id(settings: Settings) -> str:
    return client("sts", settings).get_caller_identity()["Account"]


# -- the local emulator ------------------------------------------------------------------------
def emulator_health(endpoint: str, timeout: float = 2.0) -> dict | None:
    """The emulator's health document, or None when nothing answers at `endpoint`."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_emulator/health", timeout=timeout) as resp:
            doc = json.loads(resp.read())
            return doc if doc.get("status") == "running" else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ensure_emulator(settings: Settings, timeout: float = 60.0) -> dict:
    """Make sure an emulator answers at the settings' endpoint, starting one in the background if not."""
    if not settings.is_local:
        raise ConfigError("The emulator is only used with TARGET='local'.")
    endpoint = settings.endpoint_url
    health = emulator_health(endpoint)
    if health:
        return health
    host, port = _host_port(endpoint)
    if host not in ("127.0.0.1", "localhost"):
        raise EmulatorError(f"No emulator answers at {endpoint}.",
                            hint="Start it there, or unset AWS_ENDPOINT_URL to use a local one.")
    if not (PROJECT_ROOT / "emulator" / "__main__.py").exists():
        raise EmulatorError(f"No emulator answers at {endpoint}, and this copy of helpers has none to start.",
                            hint="Start one with `python -m emulator serve` from the workshop repository.")
    state_dir = settings.state_dir / "emulator"
    state_dir.mkdir(parents=True, exist_ok=True)
    # One starter at a time, across threads and processes: the others wait and find it running.
    with open(state_dir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        health = emulator_health(endpoint)
        if health:
            return health
        log_path = state_dir / "emulator.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "emulator", "serve", "--port", str(port), "--state-dir", str(state_dir)],
                cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this kernel: the next notebook finds it running
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = emulator_health(endpoint, timeout=1.0)
            if health:
                return health
            if proc.poll() is not None:
                tail = _tail(log_path)
                raise EmulatorError(f"The emulator exited with code {proc.returncode} while starting: {tail}",
                                    hint=f"See {log_path} for the whole log.")
            time.sleep(0.2)
        proc.terminate()
        raise EmulatorError(f"The emulator did not answer at {endpoint} within {timeout:.0f}s.",
                            hint=f"See {log_path}.")


def _host_port(endpoint: str) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(endpoint)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def _tail(path: Path, lines: int = 1) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) if text else "(empty log)"


def stop_emulator(settings: Settings, timeout: float = 20.0) -> bool:
    """Stop the emulator this checkout started (its pid file says which); True if one was stopped."""
    _reached.discard(settings.endpoint_url)
    pid_file = settings.state_dir / "emulator" / "emulator.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Started by this process (the workshop runner, a test): reap it, or it lingers as a zombie
            # that kill(pid, 0) still finds.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass  # another process's child: kill(pid, 0) below tells when it is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise EmulatorError(f"The emulator (pid {pid}) did not stop within {timeout:.0f}s.",
                        hint=f"Stop it with `kill -9 {pid}`.")
