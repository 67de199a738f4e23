"""AgentCore Runtime's backend: the runtime store, images, and the rules of the calls that reach a session.

The control plane's state is in store.py; this module adds what every session call (InvokeAgentRuntime,
InvokeAgentRuntimeCommand, StopRuntimeSession) must meet, and starts or finds the session's agent process
through the supervisor (supervisor.py). What each call answers is shaped in responses.py.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid

from ..core.settings import Settings
from .exceptions import (ResourceNotFoundException, RetryableConflictException, RuntimeClientError, ValidationException,
                         runtime_not_found)
from .images import ImageStore
from .logs import LogShipper
from .processes import AgentProcess, Launch
from .store import RuntimeStore

# The API reference of InvokeAgentRuntimeCommand: timeout in seconds, default 300, from 1 to 3600.
COMMAND_TIMEOUT_DEFAULT = 300
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
                  r"runtime/(?P<id>[a-zA-Z][a-zA-Z0-9_]{0,47}-[a-zA-Z0-9]{10})$")
# AWS's words, from the devguide's troubleshooting entry of that name.
MMDSV2_REQUIRED = "This runtime is not MMDSv2-enabled"


def arn_region(arn: str) -> str | None:
    """The region of a runtime ARN (None when it is not one)."""
    m = _ARN.match(arn)
    return m.group("region") if m else None


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


class RuntimeBackend:
    def __init__(self, settings: Settings):
        from .supervisor import Supervisor

        self.settings = settings
        self.images = ImageStore(settings)
        self.shipper = LogShipper(settings)
        self.supervisor = Supervisor(settings, self.shipper)
        self.store = RuntimeStore(settings.state_dir / "runtime" / "runtimes.db", self.images.resolve,
                                  on_deleted=lambda doc: self.supervisor.stop_runtime(doc["id"]),
                                  transition_seconds=settings.runtime_transition)

    def close(self) -> None:
        self.supervisor.close()
        self.shipper.close()
        self.store.close()

    def delete_runtime(self, runtime_id: str, account: str, region: str) -> dict:
        doc = self.store.delete(runtime_id, account, region)
        self.supervisor.stop_runtime(doc["id"])
        return doc

    # -- session calls -----------------------------------------------------------------------
    def runtime_by_arn(self, arn: str, account: str, region: str) -> dict:
        m = _ARN.match(arn)
        if not m:
            raise ValidationException(f"agentRuntimeArn {arn!r} is not an AgentCore runtime ARN "
                                      "(arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>).")
        if m.group("region") != region or m.group("account") != account:
            raise runtime_not_found(arn)
        return self.store.find_by_arn(arn, account, region)

    def runtime_for_session_call(self, arn: str, qualifier: str | None, account: str,
                                 region: str) -> tuple[dict, str]:
        """The runtime and version a session call (InvokeAgentRuntime, InvokeAgentRuntimeCommand, ...) reaches.

        Every call that runs something in a runtime session goes through here, so each meets the same
        rules: the ARN names a runtime of this account and region, the runtime is usable, and the version
        the qualifier serves requires MMDSv2. Since 2026-06-30 AWS refuses InvokeAgentRuntime,
        ExecuteCommand (InvokeAgentRuntimeCommand), the WebSocket calls and GetAgentCard for a runtime
        without metadataConfiguration.requireMMDSV2 = true (devguide, runtime-troubleshooting,
        troubleshoot-runtime-mmdsv2-validation); StopRuntimeSession is not among them.
        """
        doc = self.runtime_by_arn(arn, account, region)
        if doc["status"] in ("CREATING", "DELETING", "CREATE_FAILED"):
            raise RetryableConflictException(f"AgentRuntime {doc['id']} is {doc['status']}; "
                                             "invoke it once it is READY.")
        version = self.store.resolve_qualifier(doc, qualifier or "DEFAULT")
        spec = doc["versions"][version]["spec"]
        if (spec.get("metadataConfiguration") or {}).get("requireMMDSV2") is not True:
            raise ValidationException(f"{MMDSV2_REQUIRED}. Set metadataConfiguration.requireMMDSV2 = true with "
                                      f"UpdateAgentRuntime on {doc['id']}, wait until it is READY, then call again.")
        return doc, version

    def acquire_session(self, arn: str, qualifier: str, session_id: str | None, account: str,
                        region: str) -> tuple[AgentProcess, str]:
        """The session's agent process, started if need be and counted busy until supervisor.release()."""
        doc, version = self.runtime_for_session_call(arn, qualifier, account, region)
        entry = doc["versions"][version]
        image = entry["image"] or {}
        context = image.get("context")
        if not context:
            raise RuntimeClientError(
                f"The image {image.get('containerUri')} of runtime {doc['id']} has no recorded build context, so the "
                "emulator cannot run it (it runs no container engine). Build it with "
                "helpers.image.build_and_push(method='local') and update the runtime.")
        # AWS starts a new session when the caller names none, and says which in the answer.
        session_id = session_id or str(uuid.uuid4()) + "-" + uuid.uuid4().hex[:8]
        spec = entry["spec"]
        lifecycle = spec.get("lifecycleConfiguration") or {}
        launch = Launch(
            runtime_id=doc["id"], runtime_arn=doc["arn"], version=version,
            endpoint_name=qualifier if qualifier in doc["endpoints"] else "DEFAULT",
            session_id=session_id, context_dir=self.images.unpack(context, region), app=context["app"],
            environment=dict(spec.get("environmentVariables") or {}), region=region,
            role_arn=spec.get("roleArn") or "",
            idle_timeout=min(self.settings.idle_timeout, float(lifecycle.get("idleRuntimeSessionTimeout", 900))),
            max_lifetime=float(lifecycle.get("maxLifetime", 28800)),
            session_storage=tuple(fs["sessionStorage"]["mountPath"] for fs in spec.get("filesystemConfigurations") or []
                                  if "sessionStorage" in fs),
        )
        return self.supervisor.acquire(launch), session_id

    def attach_for_command(self, arn: str, qualifier: str | None, session_id: str, timeout: int, account: str,
                           region: str) -> AgentProcess:
        """The running agent a command runs beside, counted busy until supervisor.release()."""
        doc, _version = self.runtime_for_session_call(arn, qualifier, account, region)
        if not 1 <= timeout <= 3600:
            raise ValidationException(f"timeout {timeout} is out of range: give 1 to 3600 seconds (default 300).")
        proc = self.supervisor.attach(doc["id"], session_id)
        if proc is None:
            # A command runs inside a running session's microVM (devguide: runtime-execute-command).
            raise ResourceNotFoundException(
                f"Runtime session {session_id} of {doc['id']} is not running. Invoke the agent in this session "
                "first (InvokeAgentRuntime starts its microVM), then run the command.")
        return proc

    def stop_session(self, arn: str, session_id: str, account: str, region: str) -> None:
        doc = self.runtime_by_arn(arn, account, region)
        if not self.supervisor.stop_session(doc["id"], session_id):
            raise ResourceNotFoundException(f"Runtime session {session_id} of {doc['id']} is not running.")


# -- documents: a runtime as the control plane's answers describe it --------------------------


def version_view(doc: dict, version: str | None = None) -> dict:
    """GetAgentRuntime's answer for one version (the latest unless named)."""
    version = version or doc["latest"]
    if version not in doc["versions"]:
        raise ValidationException(f"agentRuntimeVersion {version} does not exist for runtime {doc['id']}.")
    entry = doc["versions"][version]
    spec = entry["spec"]
    status = doc["status"]
    if version != doc["latest"] and status in ("UPDATING", "UPDATE_FAILED"):
        status = "READY"  # an older version is served unchanged while a newer one rolls out
    view = {
        **spec,
        "agentRuntimeArn": doc["arn"], "agentRuntimeName": doc["name"], "agentRuntimeId": doc["id"],
        "agentRuntimeVersion": version, "createdAt": _ts(doc["created_at"]),
        "lastUpdatedAt": _ts(entry["created_at"] if version != doc["latest"] else doc["updated_at"]),
        "status": status, "workloadIdentityDetails": {"workloadIdentityArn": doc["workload_identity_arn"]},
    }
    return view


def summary_view(doc: dict, version: str | None = None) -> dict:
    """One item of ListAgentRuntimes / ListAgentRuntimeVersions."""
    view = version_view(doc, version)
    return {k: view.get(k) for k in ("agentRuntimeArn", "agentRuntimeId", "agentRuntimeVersion",
                                     "agentRuntimeName", "lastUpdatedAt", "status")} | {
        "description": view.get("description") or ""}


def endpoint_view(doc: dict, ep: dict) -> dict:
    return {
        "name": ep["name"], "id": ep["id"], "agentRuntimeEndpointArn": ep["agentRuntimeEndpointArn"],
        "agentRuntimeArn": doc["arn"], "liveVersion": ep["liveVersion"], "targetVersion": ep["targetVersion"],
        "status": ep["status"], "description": ep.get("description"),
        "createdAt": _ts(ep["createdAt"]), "lastUpdatedAt": _ts(ep["lastUpdatedAt"]),
    }
