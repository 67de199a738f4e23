"""AccessDenied answers, turned into what the caller and the log must say: which action the role needs.

AWS's deny message names the principal, the action and the resource ("User: ... is not authorized to
perform: ACTION on resource: ARN because ..."; IAM User Guide, troubleshoot_access-denied); the agent
repeats that as a warning in its output and a log line, so a missing grant never looks like empty memory.
"""
from __future__ import annotations

import logging
import re

from botocore.exceptions import ClientError

log = logging.getLogger("agent.iam")

DENIED_CODES = {"AccessDenied", "AccessDeniedException"}
# AWS's own words, or this module's (so the output's metadata lists denials found in its warnings too).
_DENIAL = re.compile(r"(?:not authorized to perform:|execution role needs) (?P<action>[\w-]+:[\w*]+)"
                     r"(?: on (?:resource: )?\"?(?P<resource>[^\s\";]+)\"?)?")


def is_access_denied(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in DENIED_CODES


def parse(text: str) -> dict | None:
    """{"action", "resource"} from an AWS deny message anywhere in `text`, else None."""
    m = _DENIAL.search(text or "")
    if not m:
        return None
    return {"action": m.group("action"), "resource": m.group("resource") or "*"}


def explain(step: str, text: str, fallback_action: str | None = None) -> str:
    """One warning for a denied step, naming the action to grant (and log it, at WARNING)."""
    found = parse(text) or ({"action": fallback_action, "resource": "*"} if fallback_action else None)
    if found:
        message = (f"access denied while {step}: the runtime's execution role needs {found['action']} on "
                   f"{found['resource']}; grant it in the role's policy (cloudformation/workshop.yaml)")
    else:
        message = f"access denied while {step}: {text}"
    log.warning(message)
    return message


def find_all(texts: list[str]) -> list[dict]:
    """Every distinct denial named in these warnings, for the output's metadata."""
    seen, out = set(), []
    for text in texts:
        found = parse(text)
        if found and (found["action"], found["resource"]) not in seen:
            seen.add((found["action"], found["resource"]))
            out.append(found)
    return out
