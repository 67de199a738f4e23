"""InvokeAgentRuntimeCommand and managed session storage in the emulator, held to botocore's model and AWS's rules."""
from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.emulator import EmulatorProcess
from tests.emulator.fixtures.runtime import (after_termination as _after_termination, create_runtime, push_fake_image,
                                            require_mmdsv2, wait_dead as _wait_dead, wait_ready)

MOUNT = "/mnt/data"


def _sid() -> str:
    return f"command-session-{uuid.uuid4().hex}"


def _runtime(emu, **extra) -> dict:
    control = emu.client("bedrock-agentcore-control")
    made = create_runtime(control, f"cmd_{uuid.uuid4().hex[:8]}", push_fake_image(emu), **extra)
    require_mmdsv2(control, made["agentRuntimeId"])  # AgentCore serves session calls only then
    return made


def _with_storage(emu) -> dict:
    return _runtime(emu, env={"WORKSPACE_ROOT": f"{MOUNT}/ws"},
                    filesystemConfigurations=[{"sessionStorage": {"mountPath": MOUNT}}])


def _invoke(emu, runtime: dict, session: str, prompt: str = "hello") -> dict:
    answer = emu.client("bedrock-agentcore").invoke_agent_runtime(
        agentRuntimeArn=runtime["agentRuntimeArn"], runtimeSessionId=session,
        payload=json.dumps({"input": {"prompt": prompt}}))
    return json.loads(answer["response"].read())["output"]


def _command(emu, runtime: dict, session: str, command: str, **body) -> tuple[list[dict], dict]:
    answer = emu.client("bedrock-agentcore").invoke_agent_runtime_command(
        agentRuntimeArn=runtime["agentRuntimeArn"], runtimeSessionId=session, body={"command": command, **body})
    return [e["chunk"] for e in answer["stream"]], answer


def _stdout(events: list[dict]) -> str:
    return "".join(e["contentDelta"].get("stdout", "") for e in events if "contentDelta" in e)


@pytest.fixture(scope="module")
def runtime(emulator):
    made = _with_storage(emulator)
    yield made
    emulator.client("bedrock-agentcore-control").delete_agent_runtime(agentRuntimeId=made["agentRuntimeId"])


def test_a_command_streams_start_output_and_stop_with_its_exit_code(emulator, runtime):
    session = _sid()
    _invoke(emulator, runtime, session)
    events, answer = _command(emulator, runtime, session, "echo out; echo err >&2; exit 3")
    assert list(events[0]) == ["contentStart"] and list(events[-1]) == ["contentStop"]
    assert events[-1]["contentStop"] == {"exitCode": 3, "status": "COMPLETED"}
    assert _stdout(events) == "out\n"
    assert "".join(e["contentDelta"].get("stderr", "") for e in events if "contentDelta" in e) == "err\n"
    assert answer["runtimeSessionId"] == session and answer["contentType"] == "application/vnd.amazon.eventstream"


def test_a_command_runs_in_the_sessions_environment_and_working_directory(emulator, runtime):
    session = _sid()
    pid = _invoke(emulator, runtime, session)["metadata"]["cwd"]
    events, _ = _command(emulator, runtime, session, 'pwd; echo "$AGENTCORE_RUNTIME_SESSION_ID"')
    cwd, sid = _stdout(events).splitlines()
    assert cwd == pid and sid == session


def test_a_command_past_its_timeout_is_ended_and_says_timed_out(emulator, runtime):
    session = _sid()
    _invoke(emulator, runtime, session)
    events, _ = _command(emulator, runtime, session, "echo started; sleep 30", timeout=1)
    assert _stdout(events) == "started\n" and events[-1]["contentStop"]["status"] == "TIMED_OUT"


@pytest.mark.parametrize("timeout", [0, 3601])
def test_a_timeout_outside_1_to_3600_seconds_is_a_validation_error(emulator, runtime, timeout):
    session = _sid()
    _invoke(emulator, runtime, session)
    with pytest.raises(ClientError) as err:
        _command(emulator, runtime, session, "true", timeout=timeout)
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_a_command_for_a_session_without_a_microvm_is_refused(emulator, runtime):
    with pytest.raises(ClientError) as err:
        _command(emulator, runtime, _sid(), "ls")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "Invoke the agent in this session first" in err.value.response["Error"]["Message"]


@pytest.mark.parametrize("mount", ["/data/workspace", "/mnt//", "/mnt/a/b", "/mnt/sp ace"])
def test_a_session_storage_mount_path_outside_awss_pattern_is_refused(emulator, mount):
    control = emulator.client("bedrock-agentcore-control")
    with pytest.raises(ClientError) as err:
        create_runtime(control, f"badmount_{uuid.uuid4().hex[:8]}", push_fake_image(emulator),
                       filesystemConfigurations=[{"sessionStorage": {"mountPath": mount}}])
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_the_runtime_reports_its_session_storage(emulator, runtime):
    got = emulator.client("bedrock-agentcore-control").get_agent_runtime(agentRuntimeId=runtime["agentRuntimeId"])
    assert got["filesystemConfigurations"] == [{"sessionStorage": {"mountPath": MOUNT}}]


def test_session_storage_starts_empty_survives_stop_and_is_invisible_to_other_sessions(emulator, runtime):
    first, other = _sid(), _sid()
    written = _invoke(emulator, runtime, first, "write note.txt")["result"]
    assert not written.startswith(MOUNT)  # the agent was given the local directory behind the mount
    ls = 'ls -A "$WORKSPACE_ROOT"'
    assert _stdout(_command(emulator, runtime, first, ls)[0]) == "note.txt\n"

    pid = _invoke(emulator, runtime, first)["metadata"]["pid"]
    assert emulator.client("bedrock-agentcore").stop_runtime_session(
        agentRuntimeArn=runtime["agentRuntimeArn"], runtimeSessionId=first)
    # A new microVM, once AgentCore has torn the stopped one down...
    assert _after_termination(lambda: _invoke(emulator, runtime, first))["metadata"]["pid"] != pid
    assert _stdout(_command(emulator, runtime, first, ls)[0]) == "note.txt\n"  # ...with the same storage

    _invoke(emulator, runtime, other)
    events, _ = _command(emulator, runtime, other, f'ls -A "$WORKSPACE_ROOT" 2>/dev/null; echo end')
    assert _stdout(events) == "end\n"


def test_session_storage_is_reset_when_the_session_starts_on_a_new_runtime_version(emulator):
    made = _with_storage(emulator)
    control = emulator.client("bedrock-agentcore-control")
    try:
        session = _sid()
        _invoke(emulator, made, session, "write note.txt")
        current = control.get_agent_runtime(agentRuntimeId=made["agentRuntimeId"])
        control.update_agent_runtime(
            agentRuntimeId=made["agentRuntimeId"], roleArn=current["roleArn"],
            agentRuntimeArtifact=current["agentRuntimeArtifact"], networkConfiguration=current["networkConfiguration"],
            environmentVariables={**current["environmentVariables"], "NEW": "version"},
            filesystemConfigurations=current["filesystemConfigurations"],
            metadataConfiguration=current["metadataConfiguration"])
        wait_ready(control, made["agentRuntimeId"])
        emulator.client("bedrock-agentcore").stop_runtime_session(agentRuntimeArn=made["agentRuntimeArn"],
                                                                  runtimeSessionId=session)
        _after_termination(lambda: _invoke(emulator, made, session))
        events, _ = _command(emulator, made, session, 'ls -A "$WORKSPACE_ROOT" 2>/dev/null; echo "$NEW"')
        assert _stdout(events) == "version\n"
    finally:
        control.delete_agent_runtime(agentRuntimeId=made["agentRuntimeId"])


@pytest.mark.slow
def test_session_storage_survives_the_idle_reaper_and_an_emulator_restart(tmp_path):
    emu = EmulatorProcess(tmp_path / "state", env={"EMULATOR_IDLE_TIMEOUT": "1"}).start()
    try:
        made = _with_storage(emu)
        session = _sid()
        pid = _invoke(emu, made, session, "write note.txt")["metadata"]["pid"]
        assert _wait_dead(pid, 15), "the idle session was never reaped"
        _invoke(emu, made, session)
        assert _stdout(_command(emu, made, session, 'ls -A "$WORKSPACE_ROOT"')[0]) == "note.txt\n"
    finally:
        emu.stop()
    emu = EmulatorProcess(tmp_path / "state", env={"EMULATOR_IDLE_TIMEOUT": "1"}).start()
    try:
        _invoke(emu, made, session)
        assert _stdout(_command(emu, made, session, 'ls -A "$WORKSPACE_ROOT"')[0]) == "note.txt\n"
    finally:
        emu.stop()


def test_a_command_to_a_runtime_without_mmdsv2_is_refused_with_awss_words(emulator):
    # AWS refuses ExecuteCommand (InvokeAgentRuntimeCommand) as it refuses InvokeAgentRuntime for a runtime
    # without metadataConfiguration.requireMMDSV2 (devguide, troubleshoot-runtime-mmdsv2-validation).
    control = emulator.client("bedrock-agentcore-control")
    made = create_runtime(control, f"nommds_{uuid.uuid4().hex[:8]}", push_fake_image(emulator))
    wait_ready(control, made["agentRuntimeId"])
    try:
        with pytest.raises(ClientError) as err:
            _command(emulator, made, _sid(), "true")
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert err.value.response["Error"]["Message"].startswith("This runtime is not MMDSv2-enabled")
    finally:
        control.delete_agent_runtime(agentRuntimeId=made["agentRuntimeId"])
