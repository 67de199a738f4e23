"""Where the emulator's CloudFormation joins moto's: the resource-type table, and what a failure does.

moto's CloudFormation creates resources inside the CreateStack call and, when one fails, answers the
call with that resource's error, leaving a stack that is half made. AWS instead accepts the call,
marks the resource CREATE_FAILED with the reason, deletes what it had created and leaves the stack
in ROLLBACK_COMPLETE (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/stack-failure-options.html).
moto skips a resource type it does not know, with a log line; here such a template is refused.
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


class ResourceFailed(Exception):
    """One resource of a stack could not be created; carries what CloudFormation reports about it."""

    def __init__(self, logical_id: str, resource_type: str, reason: str):
        super().__init__(f"{logical_id} ({resource_type}): {reason}")
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


def install() -> None:
    """Register the emulator's resource types with moto and hook its stack creation (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _register_types()
        _hook_create()
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
        try:
            return create_one(logical_id, resource_json, resources_map, account_id, region_name)
        except ResourceFailed:
            raise  # a resource this one refers to failed: that one is the cause
        except Exception as exc:
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if not hasattr(exc, "code"):  # not an AWS-shaped error: a fault worth a trace in the log
                log.exception("creating %s (%s) failed", logical_id, resource_json.get("Type"))
            raise ResourceFailed(logical_id, resource_json.get("Type", ""), reason) from exc

    def create_or_roll_back(self) -> None:
        try:
            create_resources(self)
        except ResourceFailed as failed:
            _roll_back(self, failed)

    parsing.parse_and_create_resource = create_resource
    cfn_models.Stack.create_resources = create_or_roll_back


def _roll_back(stack, failed: ResourceFailed) -> None:
    """Record the failure and undo the creation, as AWS does with the default OnFailure=ROLLBACK."""
    stack.events.append(cfn_models.Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=failed.logical_id,
        physical_resource_id="", resource_type=failed.resource_type, resource_status="CREATE_FAILED",
        resource_status_reason=failed.reason, resource_properties=None))
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
