"""Which of the execution role's grants the agent used, and which calls it was refused (local emulator only).

The emulator judges every call an agent signs with its role's credentials and records each decision
(GET /_emulator/iam/decisions). This module reads those over HTTP and the role's policies through IAM,
and lays them side by side: every call and the statement that allowed it, every denied call, and every
granted action no call used. On AWS there is no such record (CloudTrail and IAM Access Analyzer's
unused-access findings are the nearest), so with TARGET=aws the report says it is local-only.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from . import aws, stack
from .config import Settings
from .errors import EmulatorError

DECISIONS_PATH = "/_emulator/iam/decisions"
LOCAL_ONLY = ("The IAM coverage report is local-only: the emulator records each decision it makes on the agent's "
              "calls. On AWS, look at CloudTrail for the role's calls and IAM Access Analyzer for unused access.")


def _wildcard(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE) is not None


def decisions(settings: Settings, role_arn: str | None = None) -> list[dict]:
    """The emulator's decisions on calls signed with `role_arn`'s credentials (all roles when None)."""
    if not settings.is_local:
        raise EmulatorError(LOCAL_ONLY)
    aws.ensure_emulator(settings)
    query = "?" + urllib.parse.urlencode({"role_arn": role_arn}) if role_arn else ""
    url = settings.endpoint_url.rstrip("/") + DECISIONS_PATH + query
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EmulatorError(f"Could not read the emulator's IAM decisions at {url}: {exc}.",
                            hint="Is the emulator running? helpers start it with TARGET=local.") from exc
    if not doc.get("enforcement", True):
        raise EmulatorError("The emulator runs with IAM enforcement off (EMULATOR_IAM_ENFORCEMENT=off), so it "
                            "judged no call.", hint="Restart it without that setting to see the coverage.")
    return doc.get("decisions", [])


def clear_decisions(settings: Settings) -> None:
    """Forget the decisions recorded so far (a test or a notebook run that wants only its own)."""
    if not settings.is_local:
        raise EmulatorError(LOCAL_ONLY)
    aws.ensure_emulator(settings)
    req = urllib.request.Request(settings.endpoint_url.rstrip("/") + DECISIONS_PATH, method="DELETE")
    with urllib.request.urlopen(req, timeout=10):
        pass


def role_grants(settings: Settings, role_arn: str) -> list[dict]:
    """Each (policy, Sid, action, resources) the role's identity policies allow, read through IAM."""
    iam = aws.client("iam", settings)
    name = role_arn.rsplit("/", 1)[-1]
    documents: list[tuple[str, dict]] = []
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
        for policy in page["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            documents.append((policy, json.loads(doc) if isinstance(doc, str) else doc))
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        for attached in page["AttachedPolicies"]:
            version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
            doc = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
            documents.append((attached["PolicyArn"], json.loads(urllib.parse.unquote(doc)) if isinstance(doc, str) else doc))
    grants = []
    for policy, doc in documents:
        statements = doc.get("Statement", [])
        for st in statements if isinstance(statements, list) else [statements]:
            if st.get("Effect") != "Allow":
                continue
            actions = st.get("Action", [])
            resources = st.get("Resource", [])
            for action in actions if isinstance(actions, list) else [actions]:
                grants.append({"policy": policy, "sid": st.get("Sid"), "action": action,
                               "resources": resources if isinstance(resources, list) else [resources],
                               "conditional": bool(st.get("Condition"))})
    return grants


@dataclass
class Coverage:
    """The role's coverage in three lists of rows; shows itself as three tables in a notebook."""

    role_arn: str | None
    calls: list[dict] = field(default_factory=list)
    denied: list[dict] = field(default_factory=list)
    unused: list[dict] = field(default_factory=list)
    note: str | None = None

    def calls_df(self):
        import pandas as pd

        return pd.DataFrame(self.calls, columns=["action", "resource", "sid", "policy", "count"])

    def denied_df(self):
        import pandas as pd

        return pd.DataFrame(self.denied, columns=["action", "resource", "decision", "principal", "count"])

    def unused_df(self):
        import pandas as pd

        return pd.DataFrame(self.unused, columns=["sid", "action", "resources", "conditional", "policy"])

    def summary(self) -> str:
        if self.note:
            return self.note
        return (f"{self.role_arn}: {len(self.calls)} allowed call(s), {len(self.denied)} denied, "
                f"{len(self.unused)} granted action(s) no call used")

    def _repr_html_(self) -> str:
        if self.note:
            return f"<p>{self.note}</p>"
        return (f"<p><b>{self.summary()}</b></p><h4>Calls and the statement that allowed each</h4>"
                f"{self.calls_df().to_html(index=False)}<h4>Denied calls</h4>{self.denied_df().to_html(index=False)}"
                f"<h4>Granted actions no call used</h4>{self.unused_df().to_html(index=False)}")

    def __repr__(self) -> str:
        return self.summary()


def coverage(settings: Settings, role_arn: str | None = None) -> Coverage:
    """The execution role's coverage (the stack's role unless `role_arn` names another)."""
    if not settings.is_local:
        return Coverage(role_arn, note=LOCAL_ONLY)
    role_arn = role_arn or stack.stack_outputs(settings)["ExecutionRoleArn"]
    rows = decisions(settings, role_arn)
    calls = [r for r in rows if r["decision"] == "allowed"]
    denied = [r for r in rows if r["decision"] != "allowed"]
    unused = []
    for grant in role_grants(settings, role_arn):
        used = any(r.get("sid") == grant["sid"] and r.get("policy") == grant["policy"]
                   and _wildcard(grant["action"], r["action"]) for r in calls)
        if not used:
            unused.append(grant)
    return Coverage(role_arn, calls, denied, unused)
