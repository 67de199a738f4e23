"""The AgentCore Runtime that runs the agent image: create it once, update it to a new image, read it, delete it.

The runtime is found by name (settings.runtime_name) every time, so any notebook can pick it up
after a kernel restart; `.workshop/deployment.json` records the latest deployment for the
command line and for people, as the seed's deploy script did, but nothing depends on it.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from . import aws, waiters
from .changes import Change
from .config import Settings
from .errors import AgentRuntimeError, aws_error_code
from .logs import runtime_log_group

# The agent's settings (container/agent/settings.py reads them); the runtime passes them in.
AGENT_RUN_TIMEOUT_SECONDS = 600
SETTLED = {"READY", "CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"}
# Session lifecycle, set explicitly rather than left to the service's defaults (AWS's defaults: 900 s idle,
# 8 h lifetime). On microVMs both take 60-28800 s, and the idle timeout may not exceed the lifetime
# (devguide, runtime-lifecycle-settings, "Validation and constraints").
IDLE_SESSION_TIMEOUT = 900
MAX_SESSION_LIFETIME = 28800
LIFECYCLE_RANGE = (60, 28800)
# Since 2026-06-30 AgentCore refuses InvokeAgentRuntime and the other session calls of a runtime that does
# not require MMDSv2 ("This runtime is not MMDSv2-enabled"; devguide, runtime-troubleshooting,
# troubleshoot-runtime-mmdsv2-validation). CreateAgentRuntime cannot set it (botocore 1.44.8 has no
# metadataConfiguration there), so a created runtime is updated at once to set it.
METADATA_CONFIGURATION = {"requireMMDSV2": True}
# AgentCore's MountPath (botocore's shape): a directory right under /mnt.
SESSION_STORAGE_PATH = re.compile(r"/mnt/[a-zA-Z0-9._-]+/?")


@dataclass
class RuntimeDeployment:
    """What get_or_create_runtime did; shows itself as a short summary."""

    action: Change  # CREATED | UPDATED | UNCHANGED
    agent_runtime_arn: str
    agent_runtime_id: str
    agent_runtime_name: str
    agent_runtime_version: str
    status: str
    image_uri: str
    role_arn: str
    region: str
    target: str
    environment: dict
    deployed_at: str

    previous_version: str | None = None  # the version live sessions may still run after an update

    @property
    def note(self) -> str:
        """What an update means for sessions that are running now; empty unless the runtime was updated."""
        if self.action is not Change.UPDATED or not self.previous_version:
            return ""
        return (f"Sessions started before this update keep running version {self.previous_version}'s code until "
                f"they end (idle timeout, or invoke.stop_session); new sessions run version "
                f"{self.agent_runtime_version}. helpers.invoke restarts a session it started on an older version.")

    def _repr_markdown_(self) -> str:
        text = (f"Runtime **{self.agent_runtime_name}** {self.action}: version {self.agent_runtime_version}, "
                f"**{self.status}**  \n`{self.agent_runtime_arn}`  \nimage `{self.image_uri}`")
        return text + (f"  \n{self.note}" if self.note else "")


def _control(settings: Settings):
    return aws.client("bedrock-agentcore-control", settings)


def agent_environment(settings: Settings, bucket: str) -> dict[str, str]:
    """The environment the agent runs with: where its files go, where its memory id is, which model."""
    return {
        "OUTPUT_BUCKET_NAME": bucket,
        "MEMORY_ID_PARAMETER": settings.memory_id_parameter,
        "MEMORY_MAX_TURNS": "3",
        "AWS_REGION": settings.region,
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "ANTHROPIC_MODEL": settings.model_id,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "4096",
        "MAX_THINKING_TOKENS": "1024",
        "AGENT_RUN_TIMEOUT_SECONDS": str(AGENT_RUN_TIMEOUT_SECONDS),
    }


def find_runtime(settings: Settings) -> dict | None:
    """The runtime named settings.runtime_name (GetAgentRuntime's answer), or None."""
    control = _control(settings)
    token = None
    while True:
        page = control.list_agent_runtimes(**({"nextToken": token} if token else {}))
        for item in page["agentRuntimes"]:
            if item["agentRuntimeName"] == settings.runtime_name:
                try:
                    return control.get_agent_runtime(agentRuntimeId=item["agentRuntimeId"])
                except ClientError as exc:
                    if aws_error_code(exc) == "ResourceNotFoundException":
                        return None  # deleted between the list and the get
                    raise
        token = page.get("nextToken")
        if not token:
            return None


def _require(settings: Settings) -> dict:
    found = find_runtime(settings)
    if found is None:
        raise AgentRuntimeError(f"No AgentCore runtime named {settings.runtime_name} in {settings.region}.",
                                hint="Create it first (notebook 04_create_runtime).")
    return found


def runtime_arn(settings: Settings) -> str:
    return _require(settings)["agentRuntimeArn"]


def current_runtime(settings: Settings) -> dict:
    """The runtime as GetAgentRuntime answers (ARN, current version, ...); AgentRuntimeError when there is none."""
    return _require(settings)


def wait_for_runtime_ready(settings: Settings, runtime_id: str, *, timeout: float = 900.0,
                           progress: bool = True) -> dict:
    control = _control(settings)

    def failed(state: dict) -> str | None:
        if state["status"] in ("CREATE_FAILED", "UPDATE_FAILED"):
            return (f"Runtime {runtime_id} is {state['status']}: {state.get('failureReason') or 'no reason given'}. "
                    "Fix the cause, then run this cell again (a failed create needs delete_runtime first).")
        return None

    return waiters.wait_for(f"runtime {settings.runtime_name}",
                            lambda: control.get_agent_runtime(agentRuntimeId=runtime_id),
                            done=lambda s: s["status"] == "READY", failed=failed,
                            describe=lambda s: f"{s['status']} (version {s['agentRuntimeVersion']})",
                            timeout=timeout, interval=0.25 if settings.is_local else 2.0, max_interval=10.0,
                            progress=progress)


def lifecycle_configuration(idle_timeout: int = IDLE_SESSION_TIMEOUT,
                            max_lifetime: int = MAX_SESSION_LIFETIME) -> dict:
    """lifecycleConfiguration for these limits (seconds), checked against AWS's rules before any call."""
    low, high = LIFECYCLE_RANGE
    for name, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise AgentRuntimeError(f"{name}={value!r} is outside AgentCore's range for microVM runtimes.",
                                    hint=f"Pass whole seconds from {low} to {high}.")
    if idle_timeout > max_lifetime:
        raise AgentRuntimeError(f"idle_timeout={idle_timeout} is longer than max_lifetime={max_lifetime}.",
                                hint="AgentCore wants the idle timeout to be at most the session's lifetime.")
    return {"idleRuntimeSessionTimeout": idle_timeout, "maxLifetime": max_lifetime}


def jwt_authorizer(settings: Settings, discovery_url: str, *, allowed_audience: list[str] | None = None,
                   allowed_clients: list[str] | None = None, allowed_scopes: list[str] | None = None) -> dict:
    """authorizerConfiguration for an inbound JWT authorizer (devguide: inbound-jwt-authorizer), checked
    against botocore's CustomJWTAuthorizerConfiguration shape before any call."""
    import re

    shape = _control(settings).meta.service_model.shape_for("CustomJWTAuthorizerConfiguration")
    pattern = shape.members["discoveryUrl"].metadata.get("pattern")
    if not isinstance(discovery_url, str) or (pattern and not re.fullmatch(pattern, discovery_url)):
        raise AgentRuntimeError(f"discovery_url={discovery_url!r} is not an OIDC discovery URL.",
                                hint="Give your identity provider's URL ending in /.well-known/openid-configuration.")
    config: dict = {"discoveryUrl": discovery_url}
    for member, values in (("allowedAudience", allowed_audience), ("allowedClients", allowed_clients),
                           ("allowedScopes", allowed_scopes)):
        if values is None:
            continue
        if isinstance(values, str) or not values or not all(isinstance(v, str) and v for v in values):
            raise AgentRuntimeError(f"{member} must be a non-empty list of strings, got {values!r}.",
                                    hint="e.g. allowed_clients=['my-app-client-id'].")
        config[member] = list(values)
    if len(config) == 1:
        raise AgentRuntimeError("A JWT authorizer that checks neither audience nor clients accepts any token "
                                "its identity provider issues.",
                                hint="Pass allowed_audience=[...] or allowed_clients=[...].")
    return {"customJWTAuthorizer": config}


def get_or_create_runtime(settings: Settings, image_uri: str, *, role_arn: str | None = None,
                          bucket: str | None = None, environment: dict | None = None,
                          idle_timeout: int = IDLE_SESSION_TIMEOUT, max_lifetime: int = MAX_SESSION_LIFETIME,
                          timeout: float = 900.0, progress: bool = True,
                          session_storage: str | None = None, authorizer: dict | None = None) -> RuntimeDeployment:
    """Create the runtime, or update it to this image, environment and lifecycle; wait until READY. Safe to repeat.

    Every runtime it creates or updates requires MMDSv2, without which AgentCore refuses invocations.
    `session_storage="/mnt/workspace"` turns on AgentCore's managed session storage (a preview feature):
    each session gets a directory there that outlives its microVM, and the agent keeps its workspace and
    Claude Code's state on it (SESSION_STORAGE_PATH tells it where). S3 keeps the files people download.
    `authorizer=jwt_authorizer(...)` makes the runtime take bearer JWTs instead of SigV4: it forwards the
    validated token to the agent (Authorization in the header allowlist), whose subject then decides the actor,
    and the agent refuses calls without an identity (AGENT_REQUIRE_IDENTITY=1).
    """
    lifecycle = lifecycle_configuration(idle_timeout, max_lifetime)
    if role_arn is None or bucket is None:
        from . import stack

        outputs = stack.stack_outputs(settings)
        role_arn = role_arn or outputs["ExecutionRoleArn"]
        bucket = bucket or outputs["BucketName"]
    env = {**agent_environment(settings, bucket), **(environment or {})}
    if session_storage is not None:
        if not isinstance(session_storage, str) or not SESSION_STORAGE_PATH.fullmatch(session_storage):
            raise AgentRuntimeError(f"session_storage={session_storage!r} is not a mount path AgentCore accepts.",
                                    hint="Give a directory right under /mnt, e.g. session_storage='/mnt/workspace'.")
        env["SESSION_STORAGE_PATH"] = session_storage
    if authorizer is not None:
        env["AGENT_REQUIRE_IDENTITY"] = "1"
    request = {
        "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": image_uri}},
        "roleArn": role_arn,
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "protocolConfiguration": {"serverProtocol": "HTTP"},
        "environmentVariables": env,
        "lifecycleConfiguration": lifecycle,
        "description": "Claude Code agent with AgentCore Memory (workshop)",
    }
    if session_storage is not None:
        # botocore 1.44.8's FilesystemConfiguration union; devguide: runtime-filesystem-configurations.
        request["filesystemConfigurations"] = [{"sessionStorage": {"mountPath": session_storage}}]
    if authorizer is not None:
        request["authorizerConfiguration"] = authorizer
        # devguide runtime-header-allowlist: Authorization is forwarded only to JWT runtimes that list it.
        request["requestHeaderConfiguration"] = {"requestHeaderAllowlist": ["Authorization"]}
    control = _control(settings)
    current = find_runtime(settings)
    previous = None
    try:
        if current is None:
            created = control.create_agent_runtime(agentRuntimeName=settings.runtime_name, **request)
            runtime_id, action = created["agentRuntimeId"], Change.CREATED
            # Version 1 cannot require MMDSv2 (see METADATA_CONFIGURATION): version 2 does, before any session.
            wait_for_runtime_ready(settings, runtime_id, timeout=timeout, progress=progress)
            control.update_agent_runtime(agentRuntimeId=runtime_id, metadataConfiguration=METADATA_CONFIGURATION,
                                         **request)
        else:
            runtime_id = current["agentRuntimeId"]
            if current["status"] == "CREATE_FAILED":
                raise AgentRuntimeError(
                    f"Runtime {runtime_id} is CREATE_FAILED: {current.get('failureReason') or 'no reason given'}.",
                    hint="Delete it (runtime.delete_runtime(settings)) and run this cell again.")
            if current["status"] not in ("READY", "UPDATE_FAILED"):
                current = wait_for_runtime_ready(settings, runtime_id, timeout=timeout, progress=progress)
            if _same(current, request):
                action = Change.UNCHANGED
            else:
                control.update_agent_runtime(agentRuntimeId=runtime_id, metadataConfiguration=METADATA_CONFIGURATION,
                                             **request)
                action, previous = Change.UPDATED, current["agentRuntimeVersion"]
    except ClientError as exc:
        raise AgentRuntimeError(f"Could not create or update runtime {settings.runtime_name}: "
                                f"{exc.response['Error'].get('Message', exc)}",
                                hint="Check the image URI and the role ARN, then run this cell again.") from exc
    ready = wait_for_runtime_ready(settings, runtime_id, timeout=timeout, progress=progress)
    deployment = RuntimeDeployment(
        action=action, agent_runtime_arn=ready["agentRuntimeArn"], agent_runtime_id=runtime_id,
        agent_runtime_name=settings.runtime_name, agent_runtime_version=ready["agentRuntimeVersion"],
        status=ready["status"], image_uri=image_uri, role_arn=role_arn, region=settings.region,
        target=settings.target, environment=env,
        deployed_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), previous_version=previous)
    write_deployment(settings, deployment)
    return deployment


def _same(current: dict, request: dict) -> bool:
    """True when the runtime already is what `request` asks for, MMDSv2 included: nothing to update."""
    uri = ((current.get("agentRuntimeArtifact") or {}).get("containerConfiguration") or {}).get("containerUri")
    lifecycle = current.get("lifecycleConfiguration") or {}
    return (uri == request["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"]
            and current.get("roleArn") == request["roleArn"]
            and (current.get("environmentVariables") or {}) == request["environmentVariables"]
            and (current.get("metadataConfiguration") or {}).get("requireMMDSV2") is True
            and all(lifecycle.get(k) == v for k, v in request["lifecycleConfiguration"].items())
            and (current.get("filesystemConfigurations") or []) == request.get("filesystemConfigurations", [])
            and current.get("authorizerConfiguration") == request.get("authorizerConfiguration")
            and current.get("requestHeaderConfiguration") == request.get("requestHeaderConfiguration"))


def write_deployment(settings: Settings, deployment: RuntimeDeployment) -> None:
    path = settings.state_dir / "deployment.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(deployment), indent=2) + "\n")
    tmp.replace(path)


def read_deployment(settings: Settings) -> dict | None:
    """The last deployment this checkout made (deployment.json), or None."""
    path = settings.state_dir / "deployment.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def runtime_info_df(settings: Settings):
    """The runtime as a two-column table (field, value), read from the service."""
    import pandas as pd

    info = _require(settings)
    control = _control(settings)
    default = control.get_agent_runtime_endpoint(agentRuntimeId=info["agentRuntimeId"], endpointName="DEFAULT")
    artifact = (info.get("agentRuntimeArtifact") or {}).get("containerConfiguration") or {}
    lifecycle = info.get("lifecycleConfiguration") or {}
    rows = [
        ("name", info["agentRuntimeName"]),
        ("id", info["agentRuntimeId"]),
        ("arn", info["agentRuntimeArn"]),
        ("status", info["status"]),
        ("version", info["agentRuntimeVersion"]),
        ("DEFAULT endpoint serves version", default.get("liveVersion")),
        ("image", artifact.get("containerUri")),
        ("role", info.get("roleArn")),
        ("network", (info.get("networkConfiguration") or {}).get("networkMode")),
        ("requires MMDSv2", (info.get("metadataConfiguration") or {}).get("requireMMDSV2") is True),
        ("idle session timeout (s)", lifecycle.get("idleRuntimeSessionTimeout")),
        ("max session lifetime (s)", lifecycle.get("maxLifetime")),
        ("session storage", ", ".join(fs["sessionStorage"]["mountPath"] for fs in
                                      info.get("filesystemConfigurations") or [] if "sessionStorage" in fs) or "off"),
        ("created", info.get("createdAt")),
        ("last updated", info.get("lastUpdatedAt")),
        ("log group", runtime_log_group(info["agentRuntimeId"])),
    ]
    rows += [(f"env {k}", v) for k, v in sorted((info.get("environmentVariables") or {}).items())]
    return pd.DataFrame(rows, columns=["field", "value"])


def delete_runtime(settings: Settings, *, timeout: float = 600.0, progress: bool = True) -> Change:
    """Delete the runtime and wait until it is gone: Change.DELETED, or ALREADY_GONE (also success)."""
    found = find_runtime(settings)
    if found is None:
        return Change.ALREADY_GONE
    runtime_id = found["agentRuntimeId"]
    control = _control(settings)
    try:
        control.delete_agent_runtime(agentRuntimeId=runtime_id)
    except ClientError as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            return Change.ALREADY_GONE
        raise AgentRuntimeError(f"Could not delete runtime {runtime_id}: {exc}") from exc

    def probe() -> str:
        try:
            return control.get_agent_runtime(agentRuntimeId=runtime_id)["status"]
        except ClientError as exc:
            if aws_error_code(exc) == "ResourceNotFoundException":
                return "GONE"
            raise

    waiters.wait_for(f"runtime {runtime_id} to be deleted", probe, done=lambda s: s == "GONE",
                     failed=lambda s: f"Runtime {runtime_id} is DELETE_FAILED." if s == "DELETE_FAILED" else None,
                     timeout=timeout, interval=0.25 if settings.is_local else 2.0, progress=progress)
    return Change.DELETED
