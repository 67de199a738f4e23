"""Which IAM action, on which resource ARN, a request asks for: what the evaluator judges.

Operation names come from the protocol (X-Amz-Target for JSON services, Action for query services,
the route in botocore's model for rest-json ones, moto's own S3 action map for S3); resource ARN
formats are the Service Authorization Reference's ("Actions, resources, and condition keys for
<service>", https://docs.aws.amazon.com/service-authorization/latest/reference/). Where an operation
has no resource-level permissions, or the emulator cannot tell its resource, the resource is "*".
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

# Operations AWS authorises without any permission (STS API reference, GetCallerIdentity:
# "No permissions are required to perform this operation").
NO_PERMISSION = {"sts:GetCallerIdentity"}
# Converse and ConverseStream are authorised as InvokeModel and InvokeModelWithResponseStream
# (Bedrock API reference, Converse: "This operation requires permission for the bedrock:InvokeModel action").
_ACTION_ALIASES = {"bedrock:Converse": "bedrock:InvokeModel",
                   "bedrock:ConverseStream": "bedrock:InvokeModelWithResponseStream"}
# Geographic prefixes of system-defined cross-region inference profile ids ("us.anthropic...").
_PROFILE_PREFIXES = {"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"}


@dataclass
class Request:
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    account_id: str
    region: str
    partition: str = "aws"


@dataclass
class Ask:
    """One permission a request needs."""

    action: str
    resource: str
    context: dict[str, list[str]] = field(default_factory=dict)


def _json_body(req: Request) -> dict:
    try:
        doc = json.loads(req.body or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


# ---------------------------------------------------------------- JSON protocol services (moto)
def _ssm_parameter(req: Request, name: str) -> str:
    name = name if name.startswith("/") else "/" + name
    if name.startswith("/arn:"):  # a parameter named by its ARN
        return name[1:]
    return f"arn:{req.partition}:ssm:{req.region}:{req.account_id}:parameter{name}"


def _logs_group(req: Request, name: str) -> str:
    if name.startswith("arn:"):
        return name.removesuffix(":*")
    return f"arn:{req.partition}:logs:{req.region}:{req.account_id}:log-group:{name}"


def json_service(service: str, req: Request) -> list[Ask]:
    target = req.headers.get("x-amz-target", "")
    operation = target.rsplit(".", 1)[-1]
    if not operation:
        return []
    action = f"{service}:{operation}"
    params = _json_body(req)
    resources: list[str] = []
    if service == "ssm":
        if params.get("Name"):
            resources = [_ssm_parameter(req, params["Name"])]
        elif params.get("Names"):
            resources = [_ssm_parameter(req, n) for n in params["Names"]]
        elif params.get("Path"):
            resources = [_ssm_parameter(req, params["Path"])]
    elif service == "logs":
        group = params.get("logGroupName") or params.get("logGroupIdentifier")
        if group and params.get("logStreamName"):
            resources = [f"{_logs_group(req, group)}:log-stream:{params['logStreamName']}"]
        elif group:
            resources = [_logs_group(req, group)]
        elif operation == "DescribeLogGroups":
            resources = [f"arn:{req.partition}:logs:{req.region}:{req.account_id}:log-group:*"]
    elif service == "ecr" and params.get("repositoryName"):
        resources = [f"arn:{req.partition}:ecr:{req.region}:{params.get('registryId') or req.account_id}:"
                     f"repository/{params['repositoryName']}"]
    context = {}
    if service == "cloudwatch" and params.get("Namespace"):
        context["cloudwatch:namespace"] = [params["Namespace"]]
    return [Ask(action, r, dict(context)) for r in (resources or ["*"])]


def query_service(service: str, req: Request) -> list[Ask]:
    params = {k: v[0] for k, v in req.query.items() if v}
    if req.body and "x-www-form-urlencoded" in req.headers.get("content-type", ""):
        params.update({k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items() if v})
    operation = params.get("Action")
    if not operation:
        return []
    context = {}
    if service == "monitoring" and params.get("Namespace"):
        context["cloudwatch:namespace"] = [params["Namespace"]]
    prefix = "cloudwatch" if service == "monitoring" else service
    return [Ask(f"{prefix}:{operation}", "*", context)]


# ---------------------------------------------------------------- S3 (moto's action map)
def _s3_location(req: Request) -> tuple[str | None, str | None]:
    host = req.headers.get("host", "").split(":")[0]
    path = req.raw_path.split("?", 1)[0]
    # Virtual-hosted style (<bucket>.s3.<...>); the workshop's IP endpoint makes boto3 use path style.
    m = re.match(r"^([a-z0-9][a-z0-9.-]*)\.s3[.-]", host)
    if m:
        key = unquote(path.lstrip("/")) or None
        return m.group(1), key
    parts = path.lstrip("/").split("/", 1)
    bucket = unquote(parts[0]) or None
    key = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
    return bucket, key


def s3(req: Request) -> list[Ask]:
    from moto.s3.responses import ACTION_MAP

    bucket, key = _s3_location(req)
    if bucket is None:
        return [Ask("s3:ListAllMyBuckets", "*")]
    kind = "KEY" if key else "BUCKET"
    table = ACTION_MAP[kind].get(req.method, {})
    operation = next((op for q, op in table.items() if q != "DEFAULT" and q in req.query), table.get("DEFAULT"))
    if kind == "BUCKET" and req.method == "POST" and "delete" in req.query:
        # DeleteObjects is authorised per key as s3:DeleteObject (S3 API reference, DeleteObjects).
        return [Ask("s3:DeleteObject", f"arn:{req.partition}:s3:::{bucket}/{k}") for k in _delete_keys(req.body)]
    if operation is None:
        return [Ask(f"s3:{req.method.title()}", f"arn:{req.partition}:s3:::{bucket}")]
    # HeadBucket needs s3:ListBucket (S3 API reference, HeadBucket); moto names it after the operation.
    operation = {"HeadBucket": "ListBucket"}.get(operation, operation)
    arn = f"arn:{req.partition}:s3:::{bucket}" + (f"/{key}" if key else "")
    asks = [Ask(f"s3:{operation}", arn)]
    source = req.headers.get("x-amz-copy-source")
    if source and req.method == "PUT" and key:
        # CopyObject: s3:GetObject on the source as well as s3:PutObject on the target (S3 API reference).
        src = unquote(source.split("?", 1)[0]).lstrip("/")
        asks.append(Ask("s3:GetObject", f"arn:{req.partition}:s3:::{src}"))
    return asks


def _delete_keys(body: bytes) -> list[str]:
    try:
        root = ElementTree.fromstring(body or b"<Delete/>")
    except ElementTree.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.split("}")[-1] == "Key"]


# ---------------------------------------------------------------- the emulator's own rest-json services
def _model_arn(req: Request, model_id: str) -> str:
    if model_id.startswith("arn:"):
        return model_id
    if model_id.split(".", 1)[0] in _PROFILE_PREFIXES and model_id.count(".") >= 2:
        return f"arn:{req.partition}:bedrock:{req.region}:{req.account_id}:inference-profile/{model_id}"
    return f"arn:{req.partition}:bedrock:{req.region}::foundation-model/{model_id}"


def rest_json(operation, path_params: dict[str, str], req: Request) -> list[Ask]:
    """An operation matched on botocore's model; its IAM prefix is the model's signing name."""
    prefix = operation.service_model.signing_name
    action = _ACTION_ALIASES.get(f"{prefix}:{operation.name}", f"{prefix}:{operation.name}")
    resource = "*"
    if prefix == "bedrock-agentcore":
        if path_params.get("memoryId"):
            resource = f"arn:{req.partition}:bedrock-agentcore:{req.region}:{req.account_id}:memory/{path_params['memoryId']}"
        elif path_params.get("agentRuntimeArn"):
            resource = path_params["agentRuntimeArn"]
        elif path_params.get("agentRuntimeId"):
            resource = (f"arn:{req.partition}:bedrock-agentcore:{req.region}:{req.account_id}:"
                        f"runtime/{path_params['agentRuntimeId']}")
    elif prefix == "bedrock":
        if path_params.get("modelId"):
            resource = _model_arn(req, path_params["modelId"])
        elif path_params.get("inferenceProfileIdentifier"):
            resource = _model_arn(req, path_params["inferenceProfileIdentifier"])
            if "foundation-model/" in resource:  # a profile named without its geographic prefix
                resource = (f"arn:{req.partition}:bedrock:{req.region}:{req.account_id}:"
                            f"inference-profile/{path_params['inferenceProfileIdentifier']}")
    return [Ask(action, resource)]
