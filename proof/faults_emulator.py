"""Proof: the emulator SIGKILLed mid-work loses nothing it acknowledged, and leaves no agent behind.

(a) Four writers add memory events (CreateEvent through boto3) while the emulator is SIGKILLed; restarted on
    the same state dir, every event answered 200 must be readable (GetEvent). One trial short, three long.
(b) In the first trial, before the kill, a CloudFormation stack (the workshop's template), a bucket with
    objects, a parameter, an ECR image, log events and a role were made; after the restart every one is read
    back and compared.
(c) In the first trial the same kill lands while helpers.invoke waits on a runtime session (a real agent
    process, the tests' fake agent): the client gets an InvocationError naming runtime and session within
    seconds (timed), the emulator the helpers bring back on the same state leaves no agent process or port of
    the dead one's, and the next call in that session answers.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import Profile, Report

ROOT = Path(__file__).resolve().parent.parent
WRITERS = 4
# Settings for the proof's emulators: memories and runtimes settle quickly, so the section stays short.
EMULATOR_ENV = {"EMULATOR_MEMORY_ACTIVATION_DELAY": "0.1", "EMULATOR_RUNTIME_TRANSITION": "0.2",
                "EMULATOR_EXTRACTION_DELAY": "0.3", "EMULATOR_SESSION_TERMINATION": "0.2"}


def run(profile: Profile) -> Report:
    from helpers import aws, config
    from tests.support.emulator import EmulatorProcess

    report = Report("faults_emulator")
    trials = 1 if profile.scale <= 1 else 3
    deadline = time.monotonic() + profile.section_seconds
    root = Path(tempfile.mkdtemp(prefix="proof-faults-emulator-"))
    state_dir = root / "emulator"  # where helpers start an emulator for settings whose state dir is `root`
    emu = EmulatorProcess(state_dir, env=EMULATOR_ENV).start()
    settings = config.load(target="local", state_dir=root).with_(endpoint_url=emu.endpoint)
    helpers_emulator = False  # whether the emulator now running is one the helpers started
    try:
        memory_id = _active_memory(emu)
        invocation = _Invocation(emu, settings)
        made = _make_every_service(emu)
        per_trial = []
        for trial in range(trials):
            if trial and time.monotonic() > deadline:
                break
            if trial == 0:
                invocation.start()  # waits until the agent is working on the call
            acknowledged, truncated, stop = _start_writers(emu, memory_id)
            time.sleep(0.8 + 0.4 * trial)  # the writers keep going; the kill lands mid-request
            killed_at = time.monotonic()
            _sigkill(emu)
            stop.set()
            if trial == 0:
                # The notebook's side: its call fails, and its next call finds the emulator gone and starts it
                # again on the same state dir, as helpers do.
                invocation.fail(report, killed_at)
                aws.ensure_emulator(settings)
                helpers_emulator = True
            else:
                emu = EmulatorProcess(state_dir, port=emu.port, env=EMULATOR_ENV).start()
            restart = time.monotonic() - killed_at
            events = [e for writer in acknowledged for e in writer]
            readable = _readable_events(emu, memory_id, events)
            per_trial.append({"acknowledged": len(events), "readable": readable, "lost": len(events) - readable,
                              "answers_cut_by_the_kill": len(truncated), "restart_seconds": round(restart, 2)})
            if trial == 0:
                lost, checked = _read_every_service(emu, made)
                report.figures["services_items_written"] = checked
                report.expect_zero("services_lost", len(lost), "; ".join(lost[:5]))
                invocation.after_restart(report)
                if trials > 1:  # later trials kill an emulator this section started, as the first
                    aws.stop_emulator(settings)
                    helpers_emulator = False
                    emu = EmulatorProcess(state_dir, port=emu.port, env=EMULATOR_ENV).start()
        report.figures["memory_trials"] = per_trial
        report.figures["memory_acknowledged"] = sum(t["acknowledged"] for t in per_trial)
        report.figures["memory_readable"] = sum(t["readable"] for t in per_trial)
        report.expect_zero("memory_lost", sum(t["lost"] for t in per_trial))
        report.expect_equal("memory_writers_acknowledged_something",
                            all(t["acknowledged"] > 0 for t in per_trial), True,
                            "a trial's writers got no answer before the kill: the trial proves nothing")
    finally:
        emu.stop()
        if helpers_emulator:
            aws.stop_emulator(settings)
        shutil.rmtree(root, ignore_errors=True)
    return report


def _sigkill(emu) -> None:
    emu.proc.send_signal(signal.SIGKILL)
    emu.proc.wait()


def _client(emu, service: str):
    # Connection errors are not retried: a write that reached a dead emulator must count as unanswered.
    return emu.client(service, config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=20))


# -- (a) memory events --------------------------------------------------------------------------
def _active_memory(emu) -> str:
    control = _client(emu, "bedrock-agentcore-control")
    memory = control.create_memory(name=f"Proof_{uuid.uuid4().hex[:8]}", eventExpiryDuration=7)["memory"]
    deadline = time.monotonic() + 30
    while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError(f"memory {memory['id']} did not become ACTIVE in 30 s")
        time.sleep(0.1)
    return memory["id"]


def _start_writers(emu, memory_id: str) -> tuple[list[list[tuple]], list[tuple], threading.Event]:
    """Four threads adding events until the emulator dies; each keeps (actor, session, event id) of every 2xx,
    and the answers whose body the kill cut off (no event id reached the client)."""
    stop = threading.Event()
    acknowledged: list[list[tuple]] = [[] for _ in range(WRITERS)]
    truncated: list[tuple] = []
    run_id = uuid.uuid4().hex[:8]

    def write(n: int) -> None:
        data = _client(emu, "bedrock-agentcore")
        actor, session = f"writer-{n}", f"proof-{run_id}-{n}"
        i = 0
        while not stop.is_set():
            try:
                event = data.create_event(
                    memoryId=memory_id, actorId=actor, sessionId=session, eventTimestamp=dt.datetime.now(dt.timezone.utc),
                    payload=[{"conversational": {"content": {"text": f"event {i} of writer {n}"}, "role": "USER"}}])
            except (BotoCoreError, ClientError):
                return  # the emulator is gone: this request was not acknowledged
            if "event" not in event:
                # The status line arrived and the body did not: the kill landed mid-answer. The client holds no
                # event id, so nothing was acknowledged to it; counted apart, and this writer stops like the others.
                truncated.append((actor, session, i))
                return
            acknowledged[n].append((actor, session, event["event"]["eventId"]))
            i += 1

    for n in range(WRITERS):
        threading.Thread(target=write, args=(n,), name=f"proof-writer-{n}", daemon=True).start()
    return acknowledged, truncated, stop


def _readable_events(emu, memory_id: str, events: list[tuple]) -> int:
    data = _client(emu, "bedrock-agentcore")
    found = 0
    for actor, session, event_id in events:
        try:
            data.get_event(memoryId=memory_id, actorId=actor, sessionId=session, eventId=event_id)
            found += 1
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
    return found


# -- (b) every service ----------------------------------------------------------------------------
def _make_every_service(emu) -> dict:
    """One of each kind of state the workshop keeps in moto's services; what was answered, to compare later."""
    from helpers.image import OCI_MANIFEST, local_manifest, pack_context

    tag = uuid.uuid4().hex[:8]
    cfn = _client(emu, "cloudformation")
    stack = f"proof-stack-{tag}"
    cfn.create_stack(StackName=stack, TemplateBody=(ROOT / "cloudformation" / "workshop.yaml").read_text(),
                     Parameters=[{"ParameterKey": "RepositoryName", "ParameterValue": f"proof-repo-{tag}"}],
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    s3 = _client(emu, "s3")
    bucket = f"proof-bucket-{tag}"
    s3.create_bucket(Bucket=bucket)
    objects = {f"dir/object-{i}.txt": os.urandom(64 + 4096 * i) for i in range(3)}
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    ssm = _client(emu, "ssm")
    parameter = f"/proof/{tag}/memory-id"
    ssm.put_parameter(Name=parameter, Value=f"memory-{tag}", Type="String")
    ecr = _client(emu, "ecr")
    repo = f"proof-images-{tag}"
    ecr.create_repository(repositoryName=repo)
    ctx = pack_context(ROOT / "tests" / "emulator" / "fixtures" / "fake_agent")
    image = ecr.put_image(repositoryName=repo, imageTag="v1", imageManifestMediaType=OCI_MANIFEST,
                          imageManifest=local_manifest(ctx, f"s3://{bucket}/context.tar.gz").decode())["image"]
    logs = _client(emu, "logs")
    group, stream = f"/proof/{tag}", "stream-1"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    messages = [f"line {i}" for i in range(5)]
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])
    iam = _client(emu, "iam")
    role = f"proof-role-{tag}"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "bedrock-agentcore.amazonaws.com"}}]}
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="inline", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    return {"stack": stack, "stack_id": described["StackId"], "outputs": described.get("Outputs", []),
            "bucket": bucket, "objects": objects, "parameter": parameter, "parameter_value": f"memory-{tag}",
            "repo": repo, "image_digest": image["imageId"]["imageDigest"], "group": group, "stream": stream,
            "messages": messages, "role": role, "role_arn": role_arn}


def _read_every_service(emu, made: dict) -> tuple[list[str], int]:
    """What of `made` the restarted emulator no longer serves as it was answered; and how many items were checked."""
    lost: list[str] = []
    checks = 0

    def check(what: str, read) -> None:
        nonlocal checks
        checks += 1
        try:
            ok = read()
        except (ClientError, BotoCoreError) as exc:
            lost.append(f"{what}: {type(exc).__name__}: {exc}")
            return
        if not ok:
            lost.append(f"{what}: read back different")

    cfn, s3, ssm = _client(emu, "cloudformation"), _client(emu, "s3"), _client(emu, "ssm")
    ecr, logs, iam = _client(emu, "ecr"), _client(emu, "logs"), _client(emu, "iam")
    check("stack", lambda: (lambda s: s["StackId"] == made["stack_id"] and s["StackStatus"] == "CREATE_COMPLETE"
                            and s.get("Outputs", []) == made["outputs"])(
        cfn.describe_stacks(StackName=made["stack"])["Stacks"][0]))
    check("stack resources", lambda: all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in
                                         cfn.describe_stack_resources(StackName=made["stack"])["StackResources"]))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in made["outputs"]}
    for key, value in outputs.items():
        if key.endswith("BucketName"):
            check(f"stack output {key}", lambda v=value: s3.head_bucket(Bucket=v) is not None)
        if key.endswith("RoleArn"):
            check(f"stack output {key}", lambda v=value: iam.get_role(RoleName=v.rsplit("/", 1)[-1])["Role"]["Arn"] == v)
    for key, body in made["objects"].items():
        check(f"s3://{made['bucket']}/{key}",
              lambda k=key, b=body: s3.get_object(Bucket=made["bucket"], Key=k)["Body"].read() == b)
    check(f"parameter {made['parameter']}",
          lambda: ssm.get_parameter(Name=made["parameter"])["Parameter"]["Value"] == made["parameter_value"])
    check(f"image {made['repo']}:v1", lambda: ecr.batch_get_image(
        repositoryName=made["repo"], imageIds=[{"imageTag": "v1"}])["images"][0]["imageId"]["imageDigest"]
        == made["image_digest"])
    check(f"log events {made['group']}", lambda: [e["message"] for e in logs.get_log_events(
        logGroupName=made["group"], logStreamName=made["stream"], startFromHead=True)["events"]] == made["messages"])
    check(f"role {made['role']}", lambda: iam.get_role(RoleName=made["role"])["Role"]["Arn"] == made["role_arn"])
    check(f"role policy of {made['role']}",
          lambda: iam.get_role_policy(RoleName=made["role"], PolicyName="inline")["PolicyName"] == "inline")
    return lost, checks


# -- (c) killed during an invocation -------------------------------------------------------------
class _Invocation:
    """A helpers.invoke call in a thread, on a runtime of the test's fake agent, that the kill interrupts."""

    def __init__(self, emu, settings):
        from tests.emulator.fixtures.runtime import create_runtime, push_fake_image, require_mmdsv2

        self.emu, self.settings = emu, settings
        control = _client(emu, "bedrock-agentcore-control")
        created = create_runtime(control, f"proof_{uuid.uuid4().hex[:8]}", push_fake_image(emu))
        require_mmdsv2(control, created["agentRuntimeId"])
        self.arn = created["agentRuntimeArn"]
        self.actor, self.session = "proof-actor", f"killed-{uuid.uuid4().hex[:8]}"
        self.outcome: dict = {}
        self.agent: dict = {}

    def start(self) -> None:
        from helpers import invoke

        def call() -> None:
            try:
                self.outcome["answer"] = invoke.invoke(self.settings, "sleep 30", self.actor, self.session,
                                                       runtime_arn=self.arn, progress=False)
            except BaseException as exc:  # what the notebook would see, whatever it is
                self.outcome["error"] = exc
            self.outcome["at"] = time.monotonic()

        self.thread = threading.Thread(target=call, name="proof-invocation", daemon=True)
        self.thread.start()
        records = self.emu.state_dir / "runtime" / "agents"
        deadline = time.monotonic() + 60
        while not self.agent:
            found = list(records.glob("*.json"))
            if found:
                record = json.loads(found[0].read_text())
                if _listening(record["port"]):  # up: the call is now forwarded to it, and it sleeps
                    self.agent = record
            if time.monotonic() > deadline or "at" in self.outcome:
                raise RuntimeError(f"the agent of the proof's invocation did not start: {self.outcome!r}")
            time.sleep(0.1)
        time.sleep(0.3)

    def fail(self, report: Report, killed_at: float) -> None:
        """The call's outcome after the kill: a clear error, soon."""
        from helpers import invoke
        from helpers.errors import InvocationError

        self.thread.join(90)
        error = self.outcome.get("error")
        report.expect_equal("invocation_error_is_clear", type(error).__name__ if error else "no error",
                            "InvocationError", repr(error)[:300])
        if isinstance(error, InvocationError):
            report.expect_equal("invocation_error_names_runtime_and_session",
                                self.arn in str(error)
                                and invoke.runtime_session_id(self.actor, self.session) in str(error), True,
                                str(error)[:300])
        # The helpers start the emulator again inside the failing call (they find it gone): that is included.
        report.figures["invocation_error_seconds"] = round(self.outcome.get("at", time.monotonic()) - killed_at, 2)
        report.expect_zero("invocation_hangs", int(self.thread.is_alive() or "at" not in self.outcome))

    def after_restart(self, report: Report) -> None:
        """No process or port of the dead emulator's agent is left, and the session's next call works."""
        from helpers import invoke

        left = [pid for pid in [self.agent["pid"]] if _running(pid)]
        report.expect_zero("orphan_agent_processes", len(left), f"pids {left}")
        report.expect_zero("orphan_agent_ports", int(_listening(self.agent["port"])), f"port {self.agent['port']}")
        try:
            again = invoke.invoke(self.settings, "after the kill", self.actor, self.session, runtime_arn=self.arn,
                                  progress=False)
            report.expect_equal("next_call_in_session_works",
                                again.get("success") is True and again["metadata"]["pid"] != self.agent["pid"], True)
        except Exception as exc:  # a figure, not a crash of the suite
            report.expect_equal("next_call_in_session_works", False, True, repr(exc)[:300])


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
