"""The command line, as a person uses it: the seed's scripts as subcommands over the notebooks' helpers."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import image
from helpers.cli import main
from tests.support.emulator import ROOT


def run_cli(*args: str, env: dict, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_every_command_has_help_that_says_what_it_does():
    out = run_cli("--help", env=os.environ.copy())
    assert out.returncode == 0
    for name in ("workshop", "deploy", "invoke", "history", "memories", "info", "download", "cleanup"):
        assert name in out.stdout
    interactive = run_cli("invoke", "--help", env=os.environ.copy())
    assert "/quit" in interactive.stdout and "--session" in interactive.stdout


def test_a_bad_target_is_one_line_not_a_traceback():
    out = run_cli("info", "--target", "aws", env={**os.environ, "AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "region" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_usage_error_is_one_line_naming_the_option_and_where_help_is(capsys):
    assert main(["deploy", "--build-method", "bogus"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "Usage:" not in err
    assert "--build-method" in err and "python -m helpers deploy --help" in err
    assert all(method in err for method in image.METHODS)


def test_every_command_takes_target_and_region_from_flags_or_their_environment_variables(capsys):
    for name in ("workshop", "deploy", "invoke", "history", "memories", "info", "download", "cleanup"):
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert "--target" in text and "WORKSHOP_TARGET" in text, name
        assert "--region" in text and "AWS_REGION" in text, name


def test_a_bad_target_in_the_environment_is_one_line_naming_the_option(monkeypatch, capsys):
    monkeypatch.setenv("WORKSHOP_TARGET", "moon")
    assert main(["info"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'--target'" in err and "moon" in err and "local" in err


@pytest.mark.slow
def test_deploy_invoke_inspect_download_and_cleanup_from_the_command_line(fresh_workshop_env, tmp_path):
    env = fresh_workshop_env
    deploy = run_cli("deploy", env=env)
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    assert "runtime: arn:aws:bedrock-agentcore:" in deploy.stdout

    first = run_cli("invoke", "create hello.py that prints hello", "--actor", "cli-user", "--session",
                    "cli-session", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "file hello.py: s3://" in first.stdout

    # Interactive mode runs until /quit, continuing the same session.
    chat = run_cli("invoke", "--interactive", "--actor", "cli-user", "--session", "cli-session", env=env,
                   stdin="what files are in the workspace?\n/quit\n")
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert chat.stdout.count("agent> ") == 1 and "hello.py" in chat.stdout

    history = run_cli("history", "cli-user", "cli-session", env=env)
    assert "create hello.py that prints hello" in history.stdout and "```" not in history.stdout
    narrow = run_cli("history", "cli-user", "cli-session", env={**env, "COLUMNS": "80"})
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout

    memories = run_cli("memories", "cli-user", env=env)
    assert memories.returncode == 0 and "facts of cli-user" in memories.stdout

    info = run_cli("info", env={**env, "COLUMNS": "100"})
    assert "runtime status" in info.stdout and "READY" in info.stdout and "memory id" in info.stdout
    assert max(len(line) for line in info.stdout.splitlines()) <= 100, info.stdout

    download = run_cli("download", "cli-user", "cli-session", env=env)
    assert download.returncode == 0 and "hello.py" in download.stdout
    assert list((tmp_path / "workshop" / "downloads" / "cli-user" / "cli-session").rglob("hello.py"))

    for attempt in (1, 2):  # clean-up is safe to repeat
        cleanup = run_cli("cleanup", env=env)
        assert cleanup.returncode == 0, f"attempt {attempt}: {cleanup.stdout[-3000:]} {cleanup.stderr[-2000:]}"
        assert cleanup.stdout.rstrip().endswith("(none)"), cleanup.stdout[-1500:]
    assert "already gone" in cleanup.stdout


def test_missing_aws_credentials_are_one_line_saying_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    out = run_cli("history", "alice", "s1", "--target", "aws", "--region", "eu-west-1", env=env, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "NoCredentialsError" in out.stderr and "aws configure" in out.stderr


def test_invoke_help_lists_the_cues_the_local_model_acts_on(capsys):
    from helpers.chat import STAND_IN_CUES

    assert main(["invoke", "--help"]) == 0
    text = capsys.readouterr().out
    assert "local-stand-in" in text and all(example in text for example, _ in STAND_IN_CUES)


def test_emulator_stop_with_no_emulator_running_says_so(tmp_path, monkeypatch, capsys):
    from tests.support.emulator import free_port

    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    assert main(["emulator", "stop"]) == 0
    assert "no emulator is running at http://127.0.0.1:" in capsys.readouterr().out
    assert main(["emulator", "status"]) == 1


def test_emulator_stop_stops_the_emulator_this_checkout_started_and_keeps_its_state(tmp_path, monkeypatch, capsys):
    from helpers import aws, config
    from tests.support.emulator import free_port

    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    settings = config.load(target="local")
    aws.ensure_emulator(settings)
    assert main(["emulator", "status"]) == 0
    assert main(["emulator", "stop"]) == 0
    assert "stopped the emulator" in capsys.readouterr().out
    assert aws.emulator_health(settings.endpoint_url) is None
    assert (tmp_path / "emulator").is_dir()


def test_make_lab_takes_a_port():
    out = subprocess.run(["make", "-n", "lab", "PORT=8899"], cwd=ROOT, capture_output=True, text=True)
    assert "--ServerApp.port=8899" in out.stdout and "--ServerApp.port_retries=0" in out.stdout
    plain = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True)
    assert "--ServerApp.port" not in plain.stdout


def test_the_agent_s_fenced_tool_output_prints_as_an_indented_block():
    from helpers.cli import terminal_text

    answer = "Bash ls -la:\n```\ntotal 8\n-rw-r--r-- 1 root root 21 hello.py\n```\nEarlier you asked:\n1. \"x\""
    assert terminal_text(answer) == ("Bash ls -la:\n    total 8\n    -rw-r--r-- 1 root root 21 hello.py\n"
                                     "Earlier you asked:\n1. \"x\"")
