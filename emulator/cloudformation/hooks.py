"""Where the emulator's CloudFormation joins moto's: the resource-type table, and what a failure does.

moto's CloudFormation creates resources inside the CreateStack call and, when one fails, answers the
call with that resource's error, leaving a stack that is half made. AWS instead accepts the call,
marks the resource CREATE_FAILED with the reason, deletes what it had created and leaves the stack
in ROLLBACK_COMPLETE (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stack-failure-options.html).
Deleting is the same: where moto loses a stack whose deletion failed, AWS keeps it in DELETE_FAILED
with the resource and reason. moto skips a resource type it does not know, with a log line; here
such a template is refused.
moto's ValidateTemplate runs cfn-lint (seconds, and stricter than AWS); here it checks what AWS's does.
"""
from __future__ import annotations

import logging
import threading

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError

from .resources import RESOURCE_TYPES

log = logging.getLogger("emulator.cloudformation")

_installed = False
_lock = threading.Lock()


class ResourceFailed(ValidationError):
    """One resource of a stack could not be created, updated or deleted: what CloudFormation reports.

    A ValidationError, so that a path no hook here handles still answers 400 (naming the resource),
    never a 500 that boto3 would retry.
    """

    def __init__(self, logical_id: str, resource_type: str, reason: str):
        super().__init__(message=f"{logical_id} ({resource_type}): {reason}")
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


def install() -> None:
    """Register the emulator's resource types with moto and hook its stack operations (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _register_types()
        _hook_create()
        _hook_delete()
        _hook_template_checks()
        _hook_validate_template()
        _installed = True


def _register_types() -> None:
    # moto builds its table once (lru_cache) from CloudFormationModel's subclasses; rebuild it so it
    # is current, then put ours in by type explicitly (two of them replace moto's own classes).
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    models, names = parsing.get_model_map(), parsing.get_name_type_map()
    for model in RESOURCE_TYPES:
        models[model.cloudformation_type()] = model
        names[model.cloudformation_type()] = model.cloudformation_name_type()


def unsupported_types(template: dict) -> list[str]:
    """Resource types in the template that the emulator's CloudFormation cannot create."""
    resources = template.get("Resources") or {}
    types = {r.get("Type") for r in resources.values() if isinstance(r, dict)}
    return sorted(t for t in types if isinstance(t, str) and t not in parsing.NULL_MODELS
                  and not t.startswith("Custom::") and t not in parsing.get_model_map())


def _check_template(template: dict) -> None:
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Type"), str):
            # AWS's own wording for this template error.
            raise ValidationError(message=f"Template format error: [/Resources/{logical_id}] Every Resources "
                                          f"object must contain a Type member.")
    unsupported = unsupported_types(template)
    if unsupported:
        raise ValidationError(message=f"The emulator's CloudFormation cannot create resources of type "
                                      f"{', '.join(unsupported)}; create them through their API instead.")


def referenced_names(node) -> set[str]:
    """Names a resource's JSON refers to: Ref targets and the ${Name} variables of Fn::Sub."""
    import re

    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= referenced_names(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                names.add(value)
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                names |= {n for n in re.findall(r"\$\{([^}!.][^}.]*)\}", text) if n not in variables}
                names |= referenced_names(variables)
            else:
                names |= referenced_names(value)
    return names


def _hook_template_checks() -> None:
    load, update = parsing.ResourceMap.load, parsing.ResourceMap.update
    diff = parsing.ResourceMap.build_resource_diff

    def diff_with_sub(self, other_template, parameters=None):
        # moto modifies a resource for a changed parameter only when a Ref names it; AWS also when
        # Fn::Sub does (every resource whose resolved properties change is updated).
        actions = diff(self, other_template, parameters)
        if parameters:
            changed = {k for k, v in parameters.items() if self.input_parameters.get(k) != v}
            for name, resource in other_template["Resources"].items():
                if name in self._resource_json_map and name not in actions["Modify"] \
                        and name not in actions["Add"] and changed & referenced_names(resource):
                    actions["Modify"].append(name)
        return actions

    def checked_load(self) -> None:
        _check_template(self._template)
        load(self)

    def checked_update(self, template, parameters=None) -> None:
        _check_template(template)
        update(self, template, parameters)

    parsing.ResourceMap.load = checked_load
    parsing.ResourceMap.update = checked_update
    parsing.ResourceMap.build_resource_diff = diff_with_sub


class _Problem:
    """One reason a template is invalid, in the form moto's ValidateTemplate answers from."""

    def __init__(self, message: str):
        self.message = message


def validate_template(template_body: str) -> list[_Problem]:
    """What ValidateTemplate checks: the body parses as JSON or YAML and its resources have types.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ValidateTemplate.html
    """
    try:
        template = cfn_models.Stack.parse_template(template_body)
    except Exception as exc:  # the YAML and JSON parsers' own errors, whichever came last
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [_Problem(f"Template format error: {first}")]
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict) \
            or not template["Resources"]:
        return [_Problem("Template format error: At least one Resources member must be defined.")]
    try:
        _check_template(template)
    except ValidationError as exc:
        return [_Problem(exc.message)]
    return []


def _hook_validate_template() -> None:
    cfn_models.CloudFormationBackend.validate_template = lambda self, template: validate_template(template)


def _hook_create() -> None:
    create_one = parsing.parse_and_create_resource
    create_resources = cfn_models.Stack.create_resources

    def create_resource(logical_id, resource_json, resources_map, account_id, region_name):
        # Also where an update adds a resource.
        try:
            return create_one(logical_id, resource_json, resources_map, account_id, region_name)
        except ResourceFailed:
            raise  # a resource this one refers to failed: that one is the cause
        except Exception as exc:
            reason = _failure_reason(exc)
            if not hasattr(exc, "code"):  # not an AWS-shaped error: a fault worth a trace in the log
                log.exception("creating %s (%s) failed", logical_id, resource_json.get("Type"))
            raise ResourceFailed(logical_id, resource_json.get("Type", ""), reason) from exc

    def create_or_roll_back(self) -> None:
        try:
            create_resources(self)
        except ResourceFailed as failed:
            _roll_back(self, failed)

    update_one = parsing.parse_and_update_resource

    def update_resource(logical_id, resource_json, resources_map, account_id, region_name):
        try:
            return update_one(logical_id, resource_json, resources_map, account_id, region_name)
        except ResourceFailed:
            raise
        except Exception as exc:
            raise ResourceFailed(logical_id, resource_json.get("Type", ""), _failure_reason(exc)) from exc

    update_stack = cfn_models.Stack.update

    def update_or_fail(self, *args, **kwargs) -> None:
        try:
            update_stack(self, *args, **kwargs)
        except ResourceFailed as failed:
            # What changed before the failure stays changed: the emulator does not roll an update
            # back, and says so with the state AWS uses for a rollback that did not finish.
            self.events.append(_resource_event(self, failed, "UPDATE_FAILED"))
            self.status = "UPDATE_ROLLBACK_FAILED"
            self._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=(
                f"The following resource(s) failed to update: [{failed.logical_id}]; the emulator does not "
                f"roll updates back."))

    parsing.parse_and_create_resource = create_resource
    parsing.parse_and_update_resource = update_resource
    cfn_models.Stack.create_resources = create_or_roll_back
    cfn_models.Stack.update = update_or_fail


def _failure_reason(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def _hook_delete() -> None:
    delete_one = parsing.ResourceMap._delete_resource
    delete_stack = cfn_models.CloudFormationBackend.delete_stack

    get_item = parsing.ResourceMap.__getitem__

    def delete_resource(self, parsed_resource, resource_json) -> None:
        logical_id = getattr(parsed_resource, "logical_resource_id", "")
        try:
            delete_one(self, parsed_resource, resource_json)
        except Exception as exc:
            raise ResourceFailed(logical_id, resource_json.get("Type", ""), _failure_reason(exc)) from exc
        _gone(self)[logical_id] = parsed_resource

    def get_resource(self, key):
        # moto creates a resource when something asks for it and it is not there: after a deletion
        # that stopped half way, the deleted ones would come back. They answer Ref and GetAtt as
        # they did (outputs stay readable, as AWS's do) and are no longer listed.
        gone = _gone(self)
        return gone[key] if key in gone else get_item(self, key)

    def remaining_resources(self):
        gone = _gone(self.resource_map)
        return [self.resource_map[k] for k in self.resource_map if k not in gone]

    def delete_or_fail(self, name_or_stack_id: str) -> None:
        stack = self.stacks.get(name_or_stack_id) or next(
            (s for s in self.stacks.values() if s.name == name_or_stack_id), None)
        try:
            delete_stack(self, name_or_stack_id)
        except ResourceFailed as failed:
            if stack is None:
                raise
            # moto took the stack out of its table before deleting; AWS keeps it, in DELETE_FAILED.
            self.stacks[stack.stack_id] = stack
            stack.events.append(_resource_event(stack, failed, "DELETE_FAILED"))
            stack.status = "DELETE_FAILED"
            stack._add_stack_event("DELETE_FAILED", resource_status_reason=(
                f"The following resource(s) failed to delete: [{failed.logical_id}]."))

    parsing.ResourceMap._delete_resource = delete_resource
    parsing.ResourceMap.__getitem__ = get_resource
    cfn_models.Stack.stack_resources = property(remaining_resources)
    cfn_models.CloudFormationBackend.delete_stack = delete_or_fail


def _gone(resource_map) -> dict:
    """The resources of a stack that its last deletion removed, by logical id."""
    return resource_map.__dict__.setdefault("_emulator_deleted", {})


def _resource_event(stack, failed: ResourceFailed, status: str):
    return cfn_models.Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=failed.logical_id,
        physical_resource_id="", resource_type=failed.resource_type, resource_status=status,
        resource_status_reason=failed.reason, resource_properties=None)


def _roll_back(stack, failed: ResourceFailed) -> None:
    """Record the failure and undo the creation, as AWS does with the default OnFailure=ROLLBACK."""
    stack.events.append(_resource_event(stack, failed, "CREATE_FAILED"))
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=(
        f"The following resource(s) failed to create: [{failed.logical_id}]. Rollback requested by user."))
    try:
        stack.resource_map.delete()
    except Exception:  # AWS ends in ROLLBACK_FAILED when it cannot remove what it made
        log.exception("rolling back stack %s failed", stack.name)
        stack.status = "ROLLBACK_FAILED"
        stack._add_stack_event("ROLLBACK_FAILED")
        return
    # Nothing of it is left, and a rolled-back stack has no outputs. moto creates resources lazily
    # when an output or a resource listing refers to them, so the maps must say so too.
    stack.resource_map._resource_json_map = {}
    stack.output_map = parsing.OutputMap(stack.resource_map, {}, stack.stack_id)
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")
