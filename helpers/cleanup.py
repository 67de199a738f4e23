"""Remove everything the workshop created, in dependency order, tolerating what is already gone.

Each step reports one row: what it touched, whether it removed something, found nothing, warned or
failed. A failure does not stop the steps after it (a stack delete must still be tried after an
ECR hiccup), and running the whole thing twice is safe: the second run finds nothing to remove.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from . import aws
from .changes import Change
from .config import Settings
from .logs import RUNTIME_LOG_GROUP_PREFIX
from .errors import WorkshopError, aws_error_code

REMOVED, ABSENT, WARNING, ERROR = "removed", "already gone", "warning", "error"
_GONE_CODES = {"ResourceNotFoundException", "ParameterNotFound", "NoSuchBucket", "RepositoryNotFoundException",
               "ValidationError", "ImageNotFoundException", "NotFoundException"}


@dataclass
class Outcome:
    step: str
    resource: str
    status: str
    detail: str = ""


def cleanup(settings: Settings, *, delete_stack: bool = True, progress: bool = True) -> list[Outcome]:
    """Delete runtime, memory, memory-id parameter, bucket contents, images and the stack."""
    outcomes: list[Outcome] = []
    outputs = _stack_outputs(settings, outcomes)
    steps: list[tuple[str, Callable[[], list[Outcome]]]] = [
        ("runtime", lambda: _delete_runtime(settings, progress)),
        ("memory", lambda: _delete_memory(settings, progress)),
        ("ssm parameter", lambda: _delete_parameter(settings)),
        ("bucket objects", lambda: _empty_bucket(settings, outputs.get("BucketName"))),
        ("ecr images", lambda: _delete_images(settings, outputs.get("RepositoryName"))),
    ]
    if delete_stack:
        steps.append(("stack", lambda: _delete_stack(settings, progress)))
    for step, run in steps:
        try:
            outcomes.extend(run())
        except (WorkshopError, ClientError, BotoCoreError) as exc:
            status = ABSENT if aws_error_code(exc) in _GONE_CODES else ERROR
            outcomes.append(Outcome(step, "", status, _one_line(exc)))
    deployment = settings.state_dir / "deployment.json"
    if deployment.exists():
        deployment.unlink()
        outcomes.append(Outcome("local state", str(deployment), REMOVED))
    return outcomes


def cleanup_df(settings: Settings, **kwargs):
    """`cleanup()` as a table, one row per resource."""
    import pandas as pd

    rows = [vars(o) for o in cleanup(settings, **kwargs)]
    return pd.DataFrame(rows, columns=["step", "resource", "status", "detail"])


def remaining(settings: Settings) -> list[Outcome]:
    """What the workshop created that still exists (an empty list after a clean-up)."""
    found: list[Outcome] = []
    cfn = aws.client("cloudformation", settings)
    try:
        stack = cfn.describe_stacks(StackName=settings.stack_name)["Stacks"][0]
        if stack["StackStatus"] != "DELETE_COMPLETE":
            found.append(Outcome("stack", settings.stack_name, stack["StackStatus"]))
    except ClientError as exc:
        if aws_error_code(exc) != "ValidationError":
            raise
    control = aws.client("bedrock-agentcore-control", settings)
    for page in control.get_paginator("list_memories").paginate():
        for memory in page.get("memories", []):
            if memory["id"].startswith(f"{settings.memory_name}-") and memory.get("status") != "DELETING":
                found.append(Outcome("memory", memory["id"], memory.get("status", "")))
    for page in control.get_paginator("list_agent_runtimes").paginate():
        for runtime in page.get("agentRuntimes", []):
            if runtime["agentRuntimeName"] == settings.runtime_name and runtime.get("status") != "DELETING":
                found.append(Outcome("runtime", runtime["agentRuntimeId"], runtime.get("status", "")))
    logs = aws.client("logs", settings)
    prefix = f"{RUNTIME_LOG_GROUP_PREFIX}{settings.runtime_name}-"
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
        found += [Outcome("runtime logs", g["logGroupName"], "present") for g in page.get("logGroups", [])]
    try:
        aws.client("ssm", settings).get_parameter(Name=settings.memory_id_parameter)
        found.append(Outcome("ssm parameter", settings.memory_id_parameter, "present"))
    except ClientError as exc:
        if aws_error_code(exc) != "ParameterNotFound":
            raise
    return found


def remaining_df(settings: Settings):
    import pandas as pd

    return pd.DataFrame([vars(o) for o in remaining(settings)], columns=["step", "resource", "status", "detail"])


# -- steps -------------------------------------------------------------------------------------
def _stack_outputs(settings: Settings, outcomes: list[Outcome]) -> dict:
    """The stack's outputs in whatever state it is (after a failed delete too: the bucket must still go)."""
    from . import stack

    description = stack.describe_stack(settings)
    if description is None:
        outcomes.append(Outcome("stack outputs", settings.stack_name, ABSENT))
        return {}
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs") or []}


def _delete_runtime(settings: Settings, progress: bool) -> list[Outcome]:
    from . import runtime

    found = runtime.find_runtime(settings)
    result = runtime.delete_runtime(settings, progress=progress)
    outcomes = [Outcome("runtime", settings.runtime_name, REMOVED if result is Change.DELETED else ABSENT)]
    # AgentCore creates the runtime's log group itself, outside the stack, and keeps it.
    prefix = RUNTIME_LOG_GROUP_PREFIX + (found["agentRuntimeId"] if found else settings.runtime_name + "-")
    logs = aws.client("logs", settings)
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
        for group in page.get("logGroups", []):
            logs.delete_log_group(logGroupName=group["logGroupName"])
            outcomes.append(Outcome("runtime logs", group["logGroupName"], REMOVED))
    return outcomes


def _delete_memory(settings: Settings, progress: bool) -> list[Outcome]:
    from . import memory

    deleted = memory.delete_memory(settings, progress=progress)
    return [Outcome("memory", ", ".join(deleted.ids) or settings.memory_name, REMOVED if deleted else ABSENT)]


def _delete_parameter(settings: Settings) -> list[Outcome]:
    ssm = aws.client("ssm", settings)
    try:
        ssm.delete_parameter(Name=settings.memory_id_parameter)
    except ClientError as exc:
        if aws_error_code(exc) == "ParameterNotFound":
            return [Outcome("ssm parameter", settings.memory_id_parameter, ABSENT)]
        raise
    return [Outcome("ssm parameter", settings.memory_id_parameter, REMOVED)]


def _empty_bucket(settings: Settings, bucket: str | None) -> list[Outcome]:
    """Delete every version and delete marker: a versioned bucket is not empty until they are gone."""
    if not bucket:
        return [Outcome("bucket objects", "(no stack bucket)", ABSENT)]
    s3 = aws.client("s3", settings)
    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                     for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for start in range(0, len(batch), 1000):
                chunk = batch[start:start + 1000]
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    return [Outcome("bucket objects", bucket, ERROR,
                                    f"{len(answer['Errors'])} not deleted, e.g. {first['Key']}: {first['Message']}")]
                removed += len(chunk)
    except ClientError as exc:
        if aws_error_code(exc) == "NoSuchBucket":
            return [Outcome("bucket objects", bucket, ABSENT)]
        raise
    return [Outcome("bucket objects", bucket, REMOVED if removed else ABSENT,
                    f"{removed} object versions" if removed else "")]


def _delete_images(settings: Settings, repository: str | None) -> list[Outcome]:
    if not repository:
        return [Outcome("ecr images", "(no stack repository)", ABSENT)]
    ecr = aws.client("ecr", settings)
    ids: list[dict] = []
    try:
        for page in ecr.get_paginator("list_images").paginate(repositoryName=repository):
            ids.extend(page.get("imageIds", []))
    except ClientError as exc:
        if aws_error_code(exc) == "RepositoryNotFoundException":
            return [Outcome("ecr images", repository, ABSENT)]
        raise
    # One digest may carry several tags; delete each image once, by digest.
    digests = sorted({i["imageDigest"] for i in ids if "imageDigest" in i})
    failures = []
    for start in range(0, len(digests), 100):
        answer = ecr.batch_delete_image(repositoryName=repository,
                                        imageIds=[{"imageDigest": d} for d in digests[start:start + 100]])
        failures += answer.get("failures", [])
    if failures:
        first = failures[0]
        return [Outcome("ecr images", repository, ERROR,
                        f"{len(failures)} of {len(digests)} not deleted, e.g. {first.get('imageId', {}).get('imageDigest')}:"
                        f" {first.get('failureCode')} {first.get('failureReason', '')}".strip())]
    return [Outcome("ecr images", repository, REMOVED if digests else ABSENT,
                    f"{len(digests)} images" if digests else "")]


def _delete_stack(settings: Settings, progress: bool) -> list[Outcome]:
    from . import stack

    result = stack.delete_stack(settings, progress=progress)
    return [Outcome("stack", settings.stack_name, REMOVED if result is Change.DELETED else ABSENT)]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
