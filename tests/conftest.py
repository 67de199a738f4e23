"""Shared fixtures: a real emulator process on a free port, and clients pointed at it."""
from __future__ import annotations

import os

import pytest

from tests.support.emulator import EmulatorProcess


def pytest_addoption(parser):
    parser.addoption("--run-aws", action="store_true", help="run tests marked aws against real AWS")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-aws"):
        return
    skip = pytest.mark.skip(reason="real AWS: opt in with --run-aws")
    for item in items:
        if "aws" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """One emulator for the whole session (tests that need a fresh one start their own)."""
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator-state"),
                          env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    yield emu
    emu.stop()


@pytest.fixture
def local_env(emulator, monkeypatch, tmp_path):
    """Environment for helpers: TARGET=local pointed at the session's emulator, state in tmp."""
    monkeypatch.setenv("WORKSHOP_TARGET", "local")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "workshop"))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return emulator


@pytest.fixture
def fresh_workshop_env(tmp_path):
    """Environment for a child process (the CLI) aimed at an emulator of its own, as a user's would be."""
    emu = EmulatorProcess(tmp_path / "emulator", env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    yield {**os.environ, "WORKSHOP_TARGET": "local", "AWS_ENDPOINT_URL": emu.endpoint,
           "WORKSHOP_STATE_DIR": str(tmp_path / "workshop")}
    emu.stop()
