"""AgentCore Runtime: control plane handlers (bedrock-agentcore-control) and the session calls (InvokeAgentRuntime,
InvokeAgentRuntimeCommand, StopRuntimeSession).

Handlers take botocore-parsed parameters and return dicts keyed by the output shape's members
(see emulator/core/restjson.py); state and rules live in models.py, processes in supervisor.py.
"""
from __future__ import annotations

import re
import uuid

from ..core.backend import Backend
from ..core.restjson import RequestContext, StreamingResult
from ..core.settings import Settings
from .exceptions import (ResourceNotFoundException, RetryableConflictException, RuntimeClientError, ValidationException,
                         runtime_not_found)
from .images import ImageStore
from .models import RuntimeStore, endpoint_view, summary_view, version_view
from ..bedrock.eventstream import CONTENT_TYPE as EVENTSTREAM_CONTENT_TYPE
from .supervisor import (CUSTOM_HEADER_PREFIX, SESSION_HEADER, USER_HEADER, CommandStream, Launch, LogShipper,
                         Supervisor, forward)

COMMAND_TIMEOUT_DEFAULT = 300
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
                  r"runtime/(?P<id>[a-zA-Z][a-zA-Z0-9_]{0,47}-[a-zA-Z0-9]{10})$")


# AWS's words, from the devguide's troubleshooting entry of that name.
MMDSV2_REQUIRED = "This runtime is not MMDSv2-enabled"


def _page(items: list, params: dict, key: str, scope: str) -> dict:
    """One page of `items` under `key`, with an opaque nextToken: `<scope>.<offset>`.

    The scope names the operation (and runtime) the token was issued for, so a token from another
    listing is refused instead of silently paging the wrong list.
    """
    size = params.get("maxResults") or 100
    token = params.get("nextToken")
    start = 0
    if token:
        issued_for, _, offset = token.rpartition(".")
        if issued_for != scope or not offset.isdigit():
            raise ValidationException(f"nextToken {token!r} is not a token this operation issued; pass the "
                                      "nextToken of the previous page of the same request unchanged.")
        start = int(offset)
    page = items[start:start + size]
    out = {key: page}
    if start + size < len(items):
        out["nextToken"] = f"{scope}.{start + size}"
    return out


class RuntimeService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.images = ImageStore(settings)
        self.shipper = LogShipper(settings)
        self.supervisor = Supervisor(settings, self.shipper)
        self.store = RuntimeStore(settings.state_dir / "runtime" / "runtimes.db", self.images.resolve,
                                  on_deleted=lambda doc: self.supervisor.stop_runtime(doc["id"]))

    def close(self) -> None:
        self.supervisor.close()
        self.shipper.close()
        self.store.close()

    # -- runtimes ----------------------------------------------------------------------------
    def create_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.create(params, ctx.account_id, ctx.region)
        return {"agentRuntimeArn": doc["arn"], "agentRuntimeId": doc["id"], "agentRuntimeVersion": doc["latest"],
                "createdAt": version_view(doc)["createdAt"], "status": doc["status"],
                "workloadIdentityDetails": {"workloadIdentityArn": doc["workload_identity_arn"]}}

    def get_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.get(params["agentRuntimeId"], ctx.account_id, ctx.region)
        return version_view(doc, params.get("agentRuntimeVersion"))

    def update_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.update(params["agentRuntimeId"], params, ctx.account_id, ctx.region)
        view = version_view(doc)
        return {k: view[k] for k in ("agentRuntimeArn", "agentRuntimeId", "agentRuntimeVersion", "createdAt",
                                     "lastUpdatedAt", "status", "workloadIdentityDetails")}

    def delete_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.delete(params["agentRuntimeId"], ctx.account_id, ctx.region)
        self.supervisor.stop_runtime(doc["id"])
        return {"status": doc["status"], "agentRuntimeId": doc["id"], "agentRuntimeVersion": doc["latest"]}

    def list_agent_runtimes(self, params: dict, ctx: RequestContext) -> dict:
        items = [summary_view(d) for d in self.store.list(ctx.account_id, ctx.region)]
        return _page(items, params, "agentRuntimes", "ListAgentRuntimes")

    def list_agent_runtime_versions(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.get(params["agentRuntimeId"], ctx.account_id, ctx.region)
        versions = sorted(doc["versions"], key=int, reverse=True)
        return _page([summary_view(doc, v) for v in versions], params, "agentRuntimes",
                     f"ListAgentRuntimeVersions-{doc['id']}")

    # -- endpoints ---------------------------------------------------------------------------
    def create_agent_runtime_endpoint(self, params: dict, ctx: RequestContext) -> dict:
        doc, ep = self.store.create_endpoint(params["agentRuntimeId"], params["name"],
                                             params.get("agentRuntimeVersion"), params.get("description"),
                                             ctx.account_id, ctx.region)
        view = endpoint_view(doc, ep)
        return {"targetVersion": ep["targetVersion"], "agentRuntimeEndpointArn": view["agentRuntimeEndpointArn"],
                "agentRuntimeArn": doc["arn"], "agentRuntimeId": doc["id"], "endpointName": ep["name"],
                "status": ep["status"], "createdAt": view["createdAt"]}

    def get_agent_runtime_endpoint(self, params: dict, ctx: RequestContext) -> dict:
        doc, ep = self.store.get_endpoint(params["agentRuntimeId"], params["endpointName"], ctx.account_id,
                                          ctx.region)
        return endpoint_view(doc, ep)

    def update_agent_runtime_endpoint(self, params: dict, ctx: RequestContext) -> dict:
        doc, ep = self.store.update_endpoint(params["agentRuntimeId"], params["endpointName"],
                                             params.get("agentRuntimeVersion"), params.get("description"),
                                             ctx.account_id, ctx.region)
        view = endpoint_view(doc, ep)
        return {k: view[k] for k in ("liveVersion", "targetVersion", "agentRuntimeEndpointArn", "agentRuntimeArn",
                                     "status", "createdAt", "lastUpdatedAt")}

    def delete_agent_runtime_endpoint(self, params: dict, ctx: RequestContext) -> dict:
        doc, ep = self.store.delete_endpoint(params["agentRuntimeId"], params["endpointName"], ctx.account_id,
                                             ctx.region)
        return {"status": ep["status"], "agentRuntimeId": doc["id"], "endpointName": ep["name"]}

    def list_agent_runtime_endpoints(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.get(params["agentRuntimeId"], ctx.account_id, ctx.region)
        return _page([endpoint_view(doc, ep) for ep in doc["endpoints"].values()], params, "runtimeEndpoints",
                     f"ListAgentRuntimeEndpoints-{doc['id']}")

    # -- data plane --------------------------------------------------------------------------
    def _runtime_for(self, arn: str, ctx: RequestContext) -> dict:
        m = _ARN.match(arn)
        if not m:
            raise ValidationException(f"agentRuntimeArn {arn!r} is not an AgentCore runtime ARN "
                                      "(arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>).")
        if m.group("region") != ctx.region or m.group("account") != ctx.account_id:
            raise runtime_not_found(arn)
        return self.store.find_by_arn(arn, ctx.account_id, ctx.region)

    def runtime_for_session_call(self, arn: str, qualifier: str | None, ctx: RequestContext) -> tuple[dict, str]:
        """The runtime and version a session call (InvokeAgentRuntime, InvokeAgentRuntimeCommand, ...) reaches.

        Every call that runs something in a runtime session goes through here, so each meets the same
        rules: the ARN names a runtime of this account and region, the runtime is usable, and the version
        the qualifier serves requires MMDSv2. Since 2026-06-30 AWS refuses InvokeAgentRuntime,
        ExecuteCommand (InvokeAgentRuntimeCommand), the WebSocket calls and GetAgentCard for a runtime
        without metadataConfiguration.requireMMDSV2 = true (devguide, runtime-troubleshooting,
        troubleshoot-runtime-mmdsv2-validation); StopRuntimeSession is not among them.
        """
        doc = self._runtime_for(arn, ctx)
        if doc["status"] in ("CREATING", "DELETING", "CREATE_FAILED"):
            raise RetryableConflictException(f"AgentRuntime {doc['id']} is {doc['status']}; "
                                             "invoke it once it is READY.")
        version = self.store.resolve_qualifier(doc, qualifier or "DEFAULT")
        spec = doc["versions"][version]["spec"]
        if (spec.get("metadataConfiguration") or {}).get("requireMMDSV2") is not True:
            raise ValidationException(f"{MMDSV2_REQUIRED}. Set metadataConfiguration.requireMMDSV2 = true with "
                                      f"UpdateAgentRuntime on {doc['id']}, wait until it is READY, then call again.")
        return doc, version

    def invoke_agent_runtime(self, params: dict, ctx: RequestContext) -> StreamingResult:
        qualifier = params.get("qualifier") or "DEFAULT"
        doc, version = self.runtime_for_session_call(params["agentRuntimeArn"], qualifier, ctx)
        entry = doc["versions"][version]
        image = entry["image"] or {}
        context = image.get("context")
        if not context:
            raise RuntimeClientError(
                f"The image {image.get('containerUri')} of runtime {doc['id']} has no recorded build context, so the "
                "emulator cannot run it (it runs no container engine). Build it with "
                "helpers.image.build_and_push(method='local') and update the runtime.")
        # AWS starts a new session when the caller names none, and says which in the answer.
        session_id = params.get("runtimeSessionId") or str(uuid.uuid4()) + "-" + uuid.uuid4().hex[:8]
        spec = entry["spec"]
        lifecycle = spec.get("lifecycleConfiguration") or {}
        launch = Launch(
            runtime_id=doc["id"], runtime_arn=doc["arn"], version=version,
            endpoint_name=qualifier if qualifier in doc["endpoints"] else "DEFAULT",
            session_id=session_id, context_dir=self.images.unpack(context, ctx.region), app=context["app"],
            environment=dict(spec.get("environmentVariables") or {}), region=ctx.region,
            role_arn=spec.get("roleArn") or "",
            idle_timeout=min(self.settings.idle_timeout, float(lifecycle.get("idleRuntimeSessionTimeout", 900))),
            max_lifetime=float(lifecycle.get("maxLifetime", 28800)),
            session_storage=tuple(fs["sessionStorage"]["mountPath"] for fs in spec.get("filesystemConfigurations") or []
                                  if "sessionStorage" in fs),
        )
        proc = self.supervisor.acquire(launch)
        headers = {"Content-Type": params.get("contentType") or "application/json",
                   "Accept": params.get("accept") or "application/json", SESSION_HEADER: session_id}
        if params.get("runtimeUserId"):
            headers[USER_HEADER] = params["runtimeUserId"]
        for name, value in ctx.headers.items():
            if name.lower().startswith(CUSTOM_HEADER_PREFIX):
                headers[name] = value
        done = {"called": False}

        def on_done(broken: bool) -> None:
            if not done["called"]:
                done["called"] = True
                self.supervisor.release(proc, broken=broken)

        status, content_type, chunks = forward(proc, params.get("payload") or b"", headers, on_done)
        return StreamingResult(chunks, content_type=content_type, status=status,
                               headers={SESSION_HEADER: session_id})

    def invoke_agent_runtime_command(self, params: dict, ctx: RequestContext) -> StreamingResult:
        doc, _version = self.runtime_for_session_call(params["agentRuntimeArn"], params.get("qualifier"), ctx)
        session_id = params["runtimeSessionId"]
        body = params["body"]
        # The API reference: timeout in seconds, default 300, from 1 to 3600.
        timeout = body.get("timeout", COMMAND_TIMEOUT_DEFAULT)
        if not 1 <= timeout <= 3600:
            raise ValidationException(f"timeout {timeout} is out of range: give 1 to 3600 seconds (default 300).")
        proc = self.supervisor.attach(doc["id"], session_id)
        if proc is None:
            # A command runs inside a running session's microVM (devguide: runtime-execute-command).
            raise ResourceNotFoundException(
                f"Runtime session {session_id} of {doc['id']} is not running. Invoke the agent in this session "
                "first (InvokeAgentRuntime starts its microVM), then run the command.")
        released = {"done": False}

        def on_done() -> None:
            if not released["done"]:
                released["done"] = True
                self.supervisor.release(proc)

        try:
            chunks = CommandStream(proc, body["command"], float(timeout), on_done)
        except OSError as exc:
            raise RuntimeClientError(f"The command could not start in runtime session {session_id}: {exc}") from exc
        return StreamingResult(chunks, content_type=EVENTSTREAM_CONTENT_TYPE, headers={SESSION_HEADER: session_id})

    def stop_runtime_session(self, params: dict, ctx: RequestContext) -> dict:
        doc = self._runtime_for(params["agentRuntimeArn"], ctx)
        session_id = params["runtimeSessionId"]
        if not self.supervisor.stop_session(doc["id"], session_id):
            raise ResourceNotFoundException(f"Runtime session {session_id} of {doc['id']} is not running.")
        return {"runtimeSessionId": session_id, "statusCode": 200}


def create_backend(settings: Settings) -> Backend:
    service = RuntimeService(settings)
    backend = Backend({
        "CreateAgentRuntime": service.create_agent_runtime,
        "GetAgentRuntime": service.get_agent_runtime,
        "UpdateAgentRuntime": service.update_agent_runtime,
        "DeleteAgentRuntime": service.delete_agent_runtime,
        "ListAgentRuntimes": service.list_agent_runtimes,
        "ListAgentRuntimeVersions": service.list_agent_runtime_versions,
        "CreateAgentRuntimeEndpoint": service.create_agent_runtime_endpoint,
        "GetAgentRuntimeEndpoint": service.get_agent_runtime_endpoint,
        "UpdateAgentRuntimeEndpoint": service.update_agent_runtime_endpoint,
        "DeleteAgentRuntimeEndpoint": service.delete_agent_runtime_endpoint,
        "ListAgentRuntimeEndpoints": service.list_agent_runtime_endpoints,
        "InvokeAgentRuntime": service.invoke_agent_runtime,
        "StopRuntimeSession": service.stop_runtime_session,
        "InvokeAgentRuntimeCommand": service.invoke_agent_runtime_command,
    })
    backend.on_close(service.close)
    backend.service = service  # for in-process tests and tools that want the supervisor
    return backend
