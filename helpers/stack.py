"""The workshop's CloudFormation stack: deploy or update it idempotently, read its outputs, delete it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import aws
from .changes import Change
from .config import PROJECT_ROOT, Settings
from .errors import StackError, aws_error_code
from .waiters import wait_for

TEMPLATE_PATH = PROJECT_ROOT / "cloudformation" / "workshop.yaml"

_CREATE_OK = {"CREATE_COMPLETE"}
_UPDATE_OK = {"UPDATE_COMPLETE"}
# Terminal states that mean the last operation did not do what was asked.
_FAILED = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE",
           "UPDATE_ROLLBACK_FAILED", "UPDATE_FAILED", "DELETE_FAILED", "IMPORT_ROLLBACK_COMPLETE",
           "IMPORT_ROLLBACK_FAILED"}
# States from which an update cannot start: the stack must be deleted first.
_NEEDS_REPLACING = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"}
# CloudFormation's only signal that an update changes nothing is this ValidationError message.
_NO_UPDATES = "No updates are to be performed"


@dataclass(frozen=True)
class DeployResult:
    """What `deploy_stack` did: `action` is Change.CREATED, UPDATED, REPLACED or UNCHANGED."""

    stack_name: str
    action: Change
    status: str
    seconds: float
    outputs: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.action.changed

    def __repr__(self) -> str:
        return f"Stack {self.stack_name}: {self.action} ({self.status}, {self.seconds:.1f}s, {len(self.outputs)} outputs)"

    __str__ = __repr__


def template_parameters(settings: Settings) -> dict[str, str]:
    """The template's parameters, from the settings (every one is passed, so a re-deploy compares equal)."""
    return {
        "MemoryName": settings.memory_name,
        "MemoryIdParameterName": settings.memory_id_parameter,
        "RuntimeName": settings.runtime_name,
        # ECR names are lower case; one repository per stack, so two stacks never share one.
        "RepositoryName": f"{settings.stack_name.lower()}-agent",
    }


def _cloudformation(settings: Settings):
    return aws.client("cloudformation", settings)


# -- the template ------------------------------------------------------------------------------
def load_template(path: Path = TEMPLATE_PATH) -> tuple[str, dict]:
    """The template's text and its parsed form (short-form tags such as !Ref become Ref / Fn::* keys).

    A malformed template is a one-line StackError naming the file, line and problem.
    """
    import yaml

    try:
        body = Path(path).read_text()
    except OSError as exc:
        raise StackError(f"Cannot read the template {path}: {exc.strerror}.",
                         hint="Run from the workshop repository, or pass the template's path.") from exc
    try:
        doc = yaml.load(body, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StackError(f"The template {_show(path)} is not valid YAML{where}: {problem}.",
                         hint="Fix the file and deploy again.") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict) or not doc["Resources"]:
        raise StackError(f"The template {_show(path)} has no Resources section.",
                         hint="A CloudFormation template needs a Resources mapping; fix the file and deploy again.")
    return body, doc


def check_references(doc: dict, path: Path = TEMPLATE_PATH) -> None:
    """Every resource has a Type, and every Ref, Fn::GetAtt and ${Name} names a parameter or resource.

    Caught here in milliseconds, such a typo would otherwise surface as a rollback minutes later.
    """
    known = set(doc.get("Parameters") or {}) | set(doc["Resources"])
    for logical_id, resource in doc["Resources"].items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            raise StackError(f"The template {_show(path)}: resource {logical_id} has no Type.",
                             hint="Give it a Type such as AWS::S3::Bucket.")
    for where, name in _references(doc):
        if name not in known and not name.startswith("AWS::"):
            raise StackError(f"The template {_show(path)}: {where} refers to {name}, which is neither a "
                             f"parameter nor a resource.", hint="Fix the name and deploy again.")


def _references(node: Any, where: str = "the template"):
    import re

    if isinstance(node, list):
        for item in node:
            yield from _references(item, where)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield where, value
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                yield where, target
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    if name.split(".", 1)[0] not in variables:
                        yield where, name.split(".", 1)[0]
                yield from _references(variables, where)
                continue
            if where == "the template" and key in ("Resources", "Outputs") and isinstance(value, dict):
                for name, item in value.items():
                    yield from _references(item, f"{key[:-1].lower()} {name}")
                continue
            yield from _references(value, where)


def validate_template(settings: Settings, path: Path = TEMPLATE_PATH) -> dict:
    """Parse and check the template here, then have CloudFormation validate it; errors are one line."""
    body, doc = load_template(path)
    check_references(doc, path)
    try:
        _cloudformation(settings).validate_template(TemplateBody=body)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise StackError(f"CloudFormation rejected the template {_show(path)}: {_sentence(message)}",
                         hint="Fix the template (cfn-lint shows details) and deploy again.") from exc
    return doc


def _sentence(text: str) -> str:
    """AWS messages often lack a final stop; the hint follows on the same line."""
    text = (text or "").strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _show(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


class _CfnLoader(__import__("yaml").SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsic functions."""


def _cfn_tag(loader, tag_suffix, node):
    import yaml

    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


# -- deploy ------------------------------------------------------------------------------------
def describe_stack(settings: Settings) -> dict | None:
    """The stack's description, or None when it does not exist."""
    cf = _cloudformation(settings)
    try:
        stacks = cf.describe_stacks(StackName=settings.stack_name)["Stacks"]
    except ClientError as exc:
        # describe_stacks answers a missing stack with ValidationError and nothing else.
        if aws_error_code(exc) == "ValidationError":
            return None
        raise StackError(f"Cannot describe stack {settings.stack_name}: {exc}",
                         hint="Check your credentials and region.") from exc
    except BotoCoreError as exc:  # no credentials, no network: say so in one line
        raise StackError(f"Cannot reach CloudFormation in {settings.region}: {exc}",
                         hint="Check your credentials and network, or use TARGET='local'.") from exc
    return stacks[0] if stacks else None


def deploy_stack(settings: Settings, *, replace_failed: bool = False, timeout: float = 1800.0,
                 progress: bool = True, template: Path = TEMPLATE_PATH) -> DeployResult:
    """Create the stack, or update it; an update that changes nothing is success (Change.UNCHANGED).

    A stack left in ROLLBACK_COMPLETE by a failed first creation cannot be updated: with
    `replace_failed=True` it is deleted and created again, otherwise a StackError says so.
    """
    start = time.monotonic()
    name = settings.stack_name
    body, _ = load_template(template)
    validate_template(settings, template)
    cf = _cloudformation(settings)
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in template_parameters(settings).items()]
    args = dict(StackName=name, TemplateBody=body, Parameters=params, Capabilities=["CAPABILITY_IAM"],
                Tags=[{"Key": "workshop", "Value": name}])

    current = describe_stack(settings)
    if current and current["StackStatus"].endswith("_IN_PROGRESS"):
        current = _wait_settled(settings, current, timeout, progress)
    if current and current["StackStatus"] == "DELETE_COMPLETE":
        current = None
    action = None
    if current and current["StackStatus"] in _NEEDS_REPLACING:
        status = current["StackStatus"]
        if not replace_failed:
            reason = _failure_reason(cf, name) or current.get("StackStatusReason") or "no reason recorded"
            raise StackError(
                f"Stack {name} is in {status} ({reason.rstrip('.')}) and CloudFormation cannot update it.",
                hint="Delete it and deploy again: stack.deploy_stack(settings, replace_failed=True) does both.")
        delete_stack(settings, timeout=timeout, progress=progress)
        current, action = None, Change.REPLACED

    if current is None:
        try:
            cf.create_stack(**args)
        except ClientError as exc:
            raise StackError(f"Creating stack {name} failed to start: {_sentence(exc.response['Error'].get('Message'))}",
                             hint="Fix what it names and deploy again.") from exc
        final = _wait(settings, "created", _CREATE_OK, timeout, progress)
        action = action or Change.CREATED
    else:
        try:
            cf.update_stack(**args)
        except ClientError as exc:
            if aws_error_code(exc) == "ValidationError" and _NO_UPDATES in str(exc):
                final, action = current, Change.UNCHANGED
            else:
                raise StackError(f"Updating stack {name} failed to start: {_sentence(exc.response['Error'].get('Message'))}",
                                 hint="Fix what it names and deploy again.") from exc
        else:
            final = _wait(settings, "updated", _UPDATE_OK, timeout, progress)
            action = Change.UPDATED

    return DeployResult(stack_name=name, action=action, status=final["StackStatus"],
                        seconds=time.monotonic() - start, outputs=_outputs(final))


def _wait_settled(settings: Settings, current: dict, timeout: float, progress: bool) -> dict:
    """Wait for an operation someone else started (another kernel, the console) to end."""
    return wait_for(
        f"stack {settings.stack_name} to finish {current['StackStatus'].lower().replace('_', ' ')}",
        lambda: describe_stack(settings) or {"StackStatus": "DELETE_COMPLETE"},
        done=lambda s: not s["StackStatus"].endswith("_IN_PROGRESS"),
        describe=lambda s: s["StackStatus"], timeout=timeout, progress=progress,
    )


def _wait(settings: Settings, verb: str, ok: set[str], timeout: float, progress: bool) -> dict:
    cf = _cloudformation(settings)
    name = settings.stack_name

    def failed(state: dict) -> StackError | None:
        status = state["StackStatus"]
        if status in ok or status.endswith("_IN_PROGRESS"):
            return None
        reason = _failure_reason(cf, name) or state.get("StackStatusReason") or "no reason recorded"
        hint = ("It cannot be updated now: deploy again with replace_failed=True to delete and recreate it."
                if status in _NEEDS_REPLACING else "Fix what it names and deploy again.")
        return StackError(f"Stack {name} was not {verb}: {status}; {_sentence(reason)}", hint=hint)

    return wait_for(f"stack {name} to be {verb}", lambda: describe_stack(settings) or {"StackStatus": "MISSING"},
                    done=lambda s: s["StackStatus"] in ok, failed=failed,
                    describe=lambda s: s["StackStatus"], timeout=timeout, progress=progress)


def _failure_reason(cf, name: str) -> str | None:
    """'<LogicalId> (<Type>): <reason>' of the first resource that failed in the stack's last operation."""
    try:
        pages = cf.get_paginator("describe_stack_events").paginate(StackName=name)
        events = [e for page in pages for e in page["StackEvents"]]
    except (ClientError, BotoCoreError):
        return None
    # Events come newest first; the last operation starts at the newest stack-level IN_PROGRESS event.
    operation = []
    for event in events:
        operation.append(event)
        if event.get("ResourceType") == "AWS::CloudFormation::Stack" and \
                event.get("ResourceStatus", "").endswith("_IN_PROGRESS") and \
                event.get("ResourceStatus") not in ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                                                    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                                                    "UPDATE_ROLLBACK_IN_PROGRESS", "ROLLBACK_IN_PROGRESS"):
            break
    failures = [e for e in reversed(operation)
                if e.get("ResourceStatus", "").endswith("_FAILED")
                and e.get("ResourceType") != "AWS::CloudFormation::Stack"
                and "cancelled" not in (e.get("ResourceStatusReason") or "").lower()]
    if not failures:
        return None
    first = failures[0]
    return (f"{first.get('LogicalResourceId')} ({first.get('ResourceType')}): "
            f"{first.get('ResourceStatusReason') or first.get('ResourceStatus')}")


# -- outputs -----------------------------------------------------------------------------------
def _outputs(description: dict) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", []) or []}


def stack_outputs(settings: Settings) -> dict[str, str]:
    """The stack's outputs by key; a StackError if the stack is missing or not usable."""
    return _outputs(_usable(settings))


def _usable(settings: Settings) -> dict:
    """The stack's description (one DescribeStacks call); a StackError if it is missing or not usable."""
    description = describe_stack(settings)
    if description is None:
        raise StackError(f"Stack {settings.stack_name} does not exist in {settings.region}.",
                         hint="Deploy it first (notebook 01_deploy_stack, or stack.deploy_stack(settings)).")
    status = description["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        raise StackError(f"Stack {settings.stack_name} is in {status}; its outputs are not usable.",
                         hint="Deploy it again (notebook 01_deploy_stack).")
    return description


def outputs_df(settings: Settings):
    """The stack's outputs as a table: output, value, description."""
    import pandas as pd

    description = _usable(settings)
    rows = [(o["OutputKey"], o["OutputValue"], o.get("Description", ""))
            for o in description.get("Outputs", []) or []]
    return pd.DataFrame(rows, columns=["output", "value", "description"])


# -- delete ------------------------------------------------------------------------------------
def delete_stack(settings: Settings, *, timeout: float = 1800.0, progress: bool = True) -> Change:
    """Delete the stack and wait until it is gone: Change.DELETED, or ALREADY_GONE (also success).

    A non-empty versioned bucket makes the deletion fail (DELETE_FAILED naming the bucket):
    emptying it is the clean-up notebook's job.
    """
    name = settings.stack_name
    current = describe_stack(settings)
    if current is None or current["StackStatus"] == "DELETE_COMPLETE":
        return Change.ALREADY_GONE
    cf = _cloudformation(settings)
    stack_id = current["StackId"]
    cf.delete_stack(StackName=name)

    def probe() -> dict:
        # By id, because a deleted stack's name no longer resolves while its id still does.
        try:
            return cf.describe_stacks(StackName=stack_id)["Stacks"][0]
        except ClientError as exc:
            if aws_error_code(exc) == "ValidationError":
                return {"StackStatus": "DELETE_COMPLETE"}
            raise

    def failed(state: dict) -> StackError | None:
        if state["StackStatus"] != "DELETE_FAILED":
            return None
        reason = _failure_reason(cf, stack_id) or state.get("StackStatusReason") or "no reason recorded"
        return StackError(f"Stack {name} could not be deleted: {_sentence(reason)}",
                          hint="Remove what blocks it (e.g. empty the bucket), then delete again.")

    wait_for(f"stack {name} to be deleted", probe, done=lambda s: s["StackStatus"] == "DELETE_COMPLETE",
             failed=failed, describe=lambda s: s["StackStatus"], timeout=timeout, progress=progress)
    return Change.DELETED


def role_permissions_df(settings: Settings, output_key: str = "ExecutionRoleArn"):
    """What a role of the stack may do, one row per policy statement: sid, effect, actions, resources."""
    import pandas as pd

    role_name = stack_outputs(settings)[output_key].rsplit("/", 1)[-1]
    iam = aws.client("iam", settings)
    rows = []
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        # botocore decodes the URL-encoded JSON that AWS answers into a dict.
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        for statement in document.get("Statement", []):
            listed = lambda v: ", ".join([v] if isinstance(v, str) else v)  # noqa: E731
            rows.append((policy_name, statement.get("Sid", ""), statement.get("Effect"),
                         listed(statement.get("Action", [])), listed(statement.get("Resource", [])),
                         json.dumps(statement["Condition"]) if "Condition" in statement else ""))
    return pd.DataFrame(rows, columns=["policy", "sid", "effect", "actions", "resources", "condition"])
