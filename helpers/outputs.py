"""Fetch the files an agent session wrote: its S3 session prefix and its per-invocation outputs."""
from __future__ import annotations

import re
from pathlib import Path

from . import aws, stack
from .config import Settings
from .deployment import Deployment, of as _deployment
from .logs import runtime_log_group
from .errors import WorkshopError

# The agent accepts only these ids (container/agent/request.py: AgentCore Memory's own patterns, with
# no '/' or ':'), so only these can have files; checking here also keeps paths inside `dest`. helpers cannot
# import container/: tests/container/test_ids_agree_with_helpers.py keeps the two copies one rule.
_IDS = {"actor_id": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}"),
        "session_id": re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")}


# The agent keeps its own state under the session prefix's `.claude/` (Claude Code's transcript for the
# SessionStore, the conversation pointer; container/agent/transcripts.py): not files it wrote for people.
AGENT_STATE_DIR = ".claude/"


def session_objects(settings: Settings | Deployment, actor_id: str, session_id: str, *,
                    include_agent_state: bool = False) -> list[dict]:
    """Every file of the session: `sessions/{actor}/{session}/...` and `outputs/{stamp}/{actor}/{session}/...`.

    The agent's own state (`.claude/`, Claude Code's transcript) is left out unless `include_agent_state`.
    """
    _check_ids(actor_id, session_id)
    deployment = _deployment(settings)
    bucket = _bucket(deployment)
    s3 = aws.client("s3", deployment.settings)
    found = []
    paginator = s3.get_paginator("list_objects_v2")
    prefix = f"sessions/{actor_id}/{session_id}/"
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        found += [{"kind": "session", **obj} for obj in page.get("Contents", [])
                  if include_agent_state or not obj["Key"].startswith(prefix + AGENT_STATE_DIR)]
    # outputs/{timestamp}/{actor}/{session}/...: match the whole prefix, so actor "a", session "b"
    # never picks up actor "x", session "a" with a folder "b".
    own = re.compile(rf"^outputs/[^/]+/{re.escape(actor_id)}/{re.escape(session_id)}/")
    for page in paginator.paginate(Bucket=bucket, Prefix="outputs/"):
        found += [{"kind": "output", **obj} for obj in page.get("Contents", []) if own.match(obj["Key"])]
    return found


def download_session(settings: Settings | Deployment, actor_id: str, session_id: str, dest: Path | None = None, *,
                     include_agent_state: bool = False):
    """Download the session's files under `.workshop/downloads/{actor}/{session}/` and list them as a table.

    `include_agent_state=True` also fetches the agent's own state (Claude Code's transcript under `.claude/`).
    """
    import pandas as pd

    deployment = _deployment(settings)
    settings = deployment.settings
    objects = session_objects(deployment, actor_id, session_id, include_agent_state=include_agent_state)
    root = (dest or settings.state_dir / "downloads" / actor_id / session_id).resolve()
    s3 = aws.client("s3", settings)
    bucket = _bucket(deployment)
    rows = []
    for obj in objects:
        target = (root / obj["Key"]).resolve()
        if root not in target.parents:  # a key with `..` would climb out; S3 allows such keys, we don't
            raise WorkshopError(f"S3 key {obj['Key']!r} would be written outside {root}; not downloading it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(target))
        file_name = obj["Key"].split("/", 5 if obj["kind"] == "output" else 3)[-1]
        rows.append({"kind": obj["kind"], "file": file_name,
                     "size": obj["Size"], "modified": obj["LastModified"], "s3_key": obj["Key"],
                     "local_path": str(target)})
    df = pd.DataFrame(rows, columns=["kind", "file", "size", "modified", "s3_key", "local_path"])
    return df.sort_values(["kind", "modified", "file"], ignore_index=True)


def deployment_df(settings: Settings):
    """The agent's deployment in one table: runtime, image, memory and strategies, bucket, region."""
    import pandas as pd

    from . import memory, runtime

    rows = [("target", settings.target), ("region", settings.region), ("stack", settings.stack_name)]
    outputs = stack.stack_outputs(settings)
    rows += [("bucket", outputs.get("BucketName")), ("repository", outputs.get("RepositoryUri"))]
    found = runtime.find_runtime(settings)
    if found is None:
        rows.append(("runtime", "not created yet (notebook 04)"))
    else:
        image = ((found.get("agentRuntimeArtifact") or {}).get("containerConfiguration") or {}).get("containerUri")
        rows += [("runtime arn", found["agentRuntimeArn"]), ("runtime status", found["status"]),
                 ("runtime version", found.get("agentRuntimeVersion")), ("image", image),
                 ("log group", runtime_log_group(found["agentRuntimeId"]))]
    try:
        info = memory.memory_info(settings)
    except WorkshopError as exc:
        rows.append(("memory", f"not available: {exc}"))
    else:
        rows += [("memory id", info["memory_id"]), ("memory status", info["status"])]
        rows += [(f"strategy {s['kind']}", f"{s['name']} -> {s['namespace']}") for s in info["strategies"]]
    return pd.DataFrame(rows, columns=["field", "value"])


def _bucket(deployment: Deployment) -> str:
    bucket = deployment.bucket
    if not bucket:
        raise WorkshopError(f"Stack {deployment.settings.stack_name} has no BucketName output.",
                            hint="Deploy it first (notebook 01 or `python -m helpers deploy`).")
    return bucket


def _check_ids(actor_id: str, session_id: str) -> None:
    for name, value in (("actor_id", actor_id), ("session_id", session_id)):
        if not isinstance(value, str) or not _IDS[name].fullmatch(value):
            longest = 255 if name == "actor_id" else 100
            raise WorkshopError(f"{name}={value!r} is not a valid id.",
                                hint=f"Use 1-{longest} letters, digits, '_' or '-', starting with a letter or digit, "
                                     "as the agent and AgentCore Memory do.")
