"""AgentCore Runtime's responses: the control plane (bedrock-agentcore-control) and the session calls
(InvokeAgentRuntime, InvokeAgentRuntimeCommand, StopRuntimeSession).

As in every service of the emulator, a handler takes the parameters emulator/core/restjson.py parsed from
botocore's model, calls the backend (models.py) with the caller's account and region, and returns the
members of the operation's output shape (or a stream) for restjson to serialise.
"""
from __future__ import annotations

from ..bedrock.eventstream import CONTENT_TYPE as EVENTSTREAM_CONTENT_TYPE
from ..core import paginator
from ..core.backend import Backend
from ..core.restjson import RequestContext, StreamingResult
from ..core.settings import Settings
from ..core.errors import ServiceError
from .authorizer import Authorizer, bearer_token, is_sigv4
from .commands import CommandStream
from .exceptions import ResourceNotFoundException, RuntimeClientError, ValidationException
from .models import COMMAND_TIMEOUT_DEFAULT, RuntimeBackend, arn_region, endpoint_view, summary_view, version_view
from .proxy import CUSTOM_HEADER_PREFIX, SESSION_HEADER, USER_HEADER, forward

# What the control plane's List* calls answer per page when the caller gives no maxResults.
DEFAULT_PAGE = 100


def _summary(doc: dict, version: str | None = None) -> dict:
    """A ListAgentRuntimes / ListAgentRuntimeVersions item without an empty description.

    botocore's AgentRuntime shape gives `description` min length 1: "" is not a description, so a runtime made
    without one is listed without it (emulator/core/conformance.py records the model's own contradiction:
    it also lists the member as required).
    """
    item = summary_view(doc, version)
    if not item.get("description"):
        item.pop("description", None)
    return item


def _check_header_allowlist(params: dict) -> None:
    """The devguide's rule (runtime-header-allowlist): "The Authorization header requires the agent runtime to be
    configured with a customJWTAuthorizer for OAuth-based inbound access"."""
    allowlist = (params.get("requestHeaderConfiguration") or {}).get("requestHeaderAllowlist") or []
    has_jwt = bool((params.get("authorizerConfiguration") or {}).get("customJWTAuthorizer"))
    if any(h.lower() == "authorization" for h in allowlist) and not has_jwt:
        raise ValidationException("requestHeaderConfiguration.requestHeaderAllowlist names Authorization, which "
                                  "requires authorizerConfiguration.customJWTAuthorizer (OAuth inbound access).")


def _page(items: list, params: dict, key: str, operation: str) -> dict:
    return paginator.page(items, params, key, paginator.scope(operation, params), DEFAULT_PAGE)


class RuntimeResponses:
    def __init__(self, backend: RuntimeBackend):
        self.backend = backend
        self.store = backend.store
        self.authorizer = Authorizer()

    # -- runtimes ----------------------------------------------------------------------------
    def create_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        _check_header_allowlist(params)
        doc = self.store.create(params, ctx.account_id, ctx.region)
        return {"agentRuntimeArn": doc["arn"], "agentRuntimeId": doc["id"], "agentRuntimeVersion": doc["latest"],
                "createdAt": version_view(doc)["createdAt"], "status": doc["status"],
                "workloadIdentityDetails": {"workloadIdentityArn": doc["workload_identity_arn"]}}

    def get_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.get(params["agentRuntimeId"], ctx.account_id, ctx.region)
        return version_view(doc, params.get("agentRuntimeVersion"))

    def update_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        _check_header_allowlist(params)
        doc = self.store.update(params["agentRuntimeId"], params, ctx.account_id, ctx.region)
        view = version_view(doc)
        return {k: view[k] for k in ("agentRuntimeArn", "agentRuntimeId", "agentRuntimeVersion", "createdAt",
                                     "lastUpdatedAt", "status", "workloadIdentityDetails")}

    def delete_agent_runtime(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.backend.delete_runtime(params["agentRuntimeId"], ctx.account_id, ctx.region)
        return {"status": doc["status"], "agentRuntimeId": doc["id"], "agentRuntimeVersion": doc["latest"]}

    def list_agent_runtimes(self, params: dict, ctx: RequestContext) -> dict:
        items = [_summary(d) for d in self.store.list(ctx.account_id, ctx.region)]
        return _page(items, params, "agentRuntimes", "ListAgentRuntimes")

    def list_agent_runtime_versions(self, params: dict, ctx: RequestContext) -> dict:
        doc = self.store.get(params["agentRuntimeId"], ctx.account_id, ctx.region)
        versions = sorted(doc["versions"], key=int, reverse=True)
        return _page([_summary(doc, v) for v in versions], params, "agentRuntimes", "ListAgentRuntimeVersions")

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
        try:
            doc = self.store.get(params["agentRuntimeId"], ctx.account_id, ctx.region)
        except ResourceNotFoundException:
            # botocore's model gives this operation no ResourceNotFoundException (only AccessDenied, Validation,
            # Throttling, InternalServer): a runtime that does not exist has no endpoints to list.
            doc = {"endpoints": {}}
        return _page([endpoint_view(doc, ep) for ep in doc["endpoints"].values()], params, "runtimeEndpoints",
                     "ListAgentRuntimeEndpoints")

    # -- data plane --------------------------------------------------------------------------
    def invoke_agent_runtime(self, params: dict, ctx: RequestContext) -> StreamingResult:
        arn, qualifier = params["agentRuntimeArn"], params.get("qualifier") or "DEFAULT"
        authorization = ctx.headers.get("Authorization")
        # A bearer call carries no SigV4 scope, so its region is the runtime ARN's.
        region = ctx.region if is_sigv4(authorization) else (arn_region(arn) or ctx.region)
        # Authorised before any process starts: a refused caller never reaches the session.
        try:
            doc, version = self.backend.runtime_for_session_call(arn, qualifier, ctx.account_id, region)
        except ResourceNotFoundException:
            if not is_sigv4(authorization) and bearer_token(authorization) is None:
                # An anonymous caller learns nothing of which runtimes exist: the answer of any unsigned
                # AgentCore route. (A JWT runtime that does exist answers it 401, as an OAuth resource server.)
                raise ServiceError("Missing Authentication Token: InvokeAgentRuntime must be signed with SigV4, or "
                                   "carry 'Authorization: Bearer <JWT>' for a runtime with a customJWTAuthorizer.",
                                   code="MissingAuthenticationTokenException", status=403) from None
            raise
        spec = doc["versions"][version]["spec"]
        claims = self.authorizer.check(spec, authorization, doc["id"])
        proc, session_id = self.backend.acquire_session(arn, qualifier, params.get("runtimeSessionId"),
                                                        ctx.account_id, region)
        headers = {"Content-Type": params.get("contentType") or "application/json",
                   "Accept": params.get("accept") or "application/json", SESSION_HEADER: session_id}
        if params.get("runtimeUserId"):
            headers[USER_HEADER] = params["runtimeUserId"]
        allowlist = {h.lower() for h in (spec.get("requestHeaderConfiguration") or {}).get("requestHeaderAllowlist")
                     or []}
        for name, value in ctx.headers.items():
            lower = name.lower()
            if lower == "authorization":
                # The validated token reaches the agent only where the allowlist asks for it (runtime-header-allowlist).
                if claims is not None and lower in allowlist:
                    headers["Authorization"] = value
            elif lower.startswith(CUSTOM_HEADER_PREFIX) or lower in allowlist:
                headers[name] = value
        supervisor = self.backend.supervisor
        done = {"called": False}

        def on_done(broken: bool) -> None:
            if not done["called"]:
                done["called"] = True
                supervisor.release(proc, broken=broken)

        status, content_type, chunks = forward(proc, params.get("payload") or b"", headers, on_done)
        return StreamingResult(chunks, content_type=content_type, status=status,
                               headers={SESSION_HEADER: session_id})

    def invoke_agent_runtime_command(self, params: dict, ctx: RequestContext) -> StreamingResult:
        session_id = params.get("runtimeSessionId")
        if not session_id:
            # Optional in the model, but a command runs inside a running session (devguide: runtime-execute-command).
            raise ValidationException("runtimeSessionId is required to run a command: send the runtime session's id "
                                      "in X-Amzn-Bedrock-AgentCore-Runtime-Session-Id.", fields=["runtimeSessionId"])
        body = params["body"]
        timeout = body.get("timeout", COMMAND_TIMEOUT_DEFAULT)
        proc = self.backend.attach_for_command(params["agentRuntimeArn"], params.get("qualifier"), session_id,
                                               timeout, ctx.account_id, ctx.region)
        supervisor = self.backend.supervisor
        released = {"done": False}

        def on_done() -> None:
            if not released["done"]:
                released["done"] = True
                supervisor.release(proc)

        try:
            chunks = CommandStream(proc, body["command"], float(timeout), on_done)
        except OSError as exc:
            raise RuntimeClientError(f"The command could not start in runtime session {session_id}: {exc}") from exc
        return StreamingResult(chunks, content_type=EVENTSTREAM_CONTENT_TYPE, headers={SESSION_HEADER: session_id})

    def stop_runtime_session(self, params: dict, ctx: RequestContext) -> dict:
        session_id = params["runtimeSessionId"]
        self.backend.stop_session(params["agentRuntimeArn"], session_id, ctx.account_id, ctx.region)
        return {"runtimeSessionId": session_id, "statusCode": 200}


def create_backend(settings: Settings) -> Backend:
    backend = RuntimeBackend(settings)
    r = RuntimeResponses(backend)
    return Backend("runtime", {
        "CreateAgentRuntime": r.create_agent_runtime,
        "GetAgentRuntime": r.get_agent_runtime,
        "UpdateAgentRuntime": r.update_agent_runtime,
        "DeleteAgentRuntime": r.delete_agent_runtime,
        "ListAgentRuntimes": r.list_agent_runtimes,
        "ListAgentRuntimeVersions": r.list_agent_runtime_versions,
        "CreateAgentRuntimeEndpoint": r.create_agent_runtime_endpoint,
        "GetAgentRuntimeEndpoint": r.get_agent_runtime_endpoint,
        "UpdateAgentRuntimeEndpoint": r.update_agent_runtime_endpoint,
        "DeleteAgentRuntimeEndpoint": r.delete_agent_runtime_endpoint,
        "ListAgentRuntimeEndpoints": r.list_agent_runtime_endpoints,
        "InvokeAgentRuntime": r.invoke_agent_runtime,
        "StopRuntimeSession": r.stop_runtime_session,
        "InvokeAgentRuntimeCommand": r.invoke_agent_runtime_command,
    }, close=backend.close)
