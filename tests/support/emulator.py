"""The emulator as a user runs it (`python -m emulator serve`, a child process on a free port), for tests and bench/."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatorProcess:
    """`python -m emulator serve` in a child process, as a user runs it."""

    def __init__(self, state_dir: Path, port: int | None = None, env: dict | None = None):
        self.state_dir = state_dir
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir / "emulator-test.log"

    def start(self, timeout: float = 60.0) -> "EmulatorProcess":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--port", str(self.port), "--state-dir", str(self.state_dir)],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/_emulator/health", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.1)
        # Not left running: a child that never became healthy would hold its port and state dir after the caller gave up.
        self.stop()
        raise RuntimeError(f"emulator did not become healthy in {timeout:.0f} s: {self.log_path.read_text()[-2000:]}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode if self.proc else None

    def client(self, service: str, region: str = "us-east-1", **kwargs):
        from botocore.config import Config

        cfg = kwargs.pop("config", None) or Config(retries={"max_attempts": 1})
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id="test", aws_secret_access_key="test", config=cfg, **kwargs)
