"""AgentCore Memory for the workshop: created exactly once, its id in SSM, its contents as tables.

Short-term memory is the conversation's events (one per turn); long-term memory is the records the
three strategies extract from them: facts, per-session summaries and user preferences, each in
its own namespace. The same calls work on the local emulator and on AWS.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Iterable

from botocore.exceptions import ClientError

from . import aws, tables, waiters
from .changes import Deleted
from .deployment import Deployment, of as _deployment
from .config import Settings
from .errors import MemoryServiceError, aws_error_code

# The seed design's three long-term strategies and where each one files its records.
STRATEGIES = [
    {"semanticMemoryStrategy": {
        "name": "CodingFacts",
        "description": "Facts stated in coding sessions: projects, stacks, decisions.",
        "namespaceTemplates": ["coding/user/{actorId}/facts"]}},
    {"summaryMemoryStrategy": {
        "name": "SessionSummaries",
        "description": "A running summary of each coding session.",
        "namespaceTemplates": ["coding/user/{actorId}/{sessionId}"]}},
    {"userPreferenceMemoryStrategy": {
        "name": "UserPreferences",
        "description": "What the user prefers, avoids, always or never does.",
        "namespaceTemplates": ["coding/user/{actorId}/preferences"]}},
]
# Record kinds as the notebooks name them, and the strategy type that produces each.
KINDS = {"facts": "SEMANTIC", "summaries": "SUMMARIZATION", "preferences": "USER_PREFERENCE"}
EVENT_EXPIRY_DAYS = 30
_GONE = {"ResourceNotFoundException"}


def _client(service: str, settings: Settings):
    return aws.client(service, settings)


# -- the memory resource -----------------------------------------------------------------------
def get_or_create_memory(settings: Settings, *, timeout: float | None = None, progress: bool = True) -> dict:
    """The workshop's memory, ACTIVE, with its id stored in SSM: found if it exists, created if not.

    Safe to run again and from many threads or processes at once: an id in SSM is checked before
    it is trusted, an existing memory is found by name, and creation uses a client token derived
    from the name, so concurrent callers end with the same single memory.
    """
    control = _client("bedrock-agentcore-control", settings)
    timeout = timeout if timeout is not None else (120.0 if settings.is_local else 900.0)
    stale = None
    started = time.monotonic()  # the wait's time counts the create call too
    stored = _stored_id(settings)
    memory = _get(control, stored) if stored else None
    if stored and (memory is None or memory["status"] in ("DELETING", "FAILED")):
        stale = stored  # the parameter names a memory that is gone: repair it, don't trust it
        memory = None
    if memory is None:
        memory = _find_by_name(control, settings.memory_name)
    if memory is None:
        memory = _create(control, settings, stale)
    if memory["status"] != "ACTIVE":
        memory = _wait_active(control, memory["id"], timeout, progress, settings.is_local, since=started)
    if stored != memory["id"]:
        _client("ssm", settings).put_parameter(
            Name=settings.memory_id_parameter, Value=memory["id"], Type="String", Overwrite=True,
            Description=f"AgentCore Memory id of {settings.memory_name} (workshop)")
    return memory


def _get(control, memory_id: str) -> dict | None:
    try:
        return control.get_memory(memoryId=memory_id)["memory"]
    except ClientError as exc:
        if aws_error_code(exc) in _GONE or aws_error_code(exc) == "ValidationException":
            return None
        raise MemoryServiceError(f"Could not read memory {memory_id}: {exc}") from exc


def _find_by_name(control, name: str) -> dict | None:
    # List summaries carry no name; an id is the name, a dash and ten characters.
    for page in control.get_paginator("list_memories").paginate():
        for summary in page.get("memories", []):
            if summary["id"].rsplit("-", 1)[0] == name and summary.get("status") not in ("DELETING", "FAILED"):
                return _get(control, summary["id"])
    return None


def _client_token(settings: Settings, replacing: str | None) -> str:
    # The same for every concurrent caller, so AWS makes one memory for all of them; a memory
    # that replaces a deleted one gets a new token, or AWS would answer with the deleted one.
    seed = f"{settings.region}|{settings.memory_name}|{replacing or ''}"
    return "workshop-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


# Deleted memories a create may meet in a row (each clean-up and re-run adds one) before giving up.
MAX_SPENT_TOKENS = 20


def _create(control, settings: Settings, replacing: str | None, _retried: bool = False) -> dict:
    """Create the memory with a token every concurrent caller derives alike; never answer with a deleted one.

    A clientToken that matches an earlier request makes AWS ignore the request without an error
    (botocore's CreateMemory model), and that holds after the memory it created was deleted: a run after
    99_cleanup derives the first run's token and would be answered with the deleted memory. So the
    answer is checked, and a memory that is gone (or going) means the token is spent: the next token is
    derived from that memory's id, which every caller sees alike, so they still create one memory.
    """
    for _ in range(MAX_SPENT_TOKENS):
        memory = _create_once(control, settings, replacing, _retried)
        current = _get(control, memory["id"])
        if current is not None and current["status"] not in ("DELETING", "FAILED"):
            return memory
        replacing = memory["id"]  # spent on a memory that no longer exists
    raise MemoryServiceError(
        f"CreateMemory for {settings.memory_name} answered with a deleted memory {MAX_SPENT_TOKENS} times in a row.",
        hint="Delete the SSM parameter and any memory of this name, or set WORKSHOP_MEMORY_NAME to a new name.")


def _create_once(control, settings: Settings, replacing: str | None, _retried: bool = False) -> dict:
    try:
        return control.create_memory(
            name=settings.memory_name,
            description="Memory of the Claude Code agent workshop: turns, facts, summaries, preferences.",
            eventExpiryDuration=EVENT_EXPIRY_DAYS,
            memoryStrategies=STRATEGIES,
            clientToken=_client_token(settings, replacing),
        )["memory"]
    except ClientError as exc:
        if aws_error_code(exc) in ("ValidationException", "ConflictException"):
            # Another caller created it between our lookup and our create: use theirs.
            found = _find_by_name(control, settings.memory_name)
            if found is not None:
                return found
            # Or a memory of this name is still DELETING and holds the name until it is gone.
            deleting = _deleting_ids(control, settings.memory_name)
            if deleting and not _retried:
                for mid in deleting:
                    _wait_gone(control, mid, settings.is_local)
                return _create(control, settings, replacing, _retried=True)
        raise MemoryServiceError(f"Could not create memory {settings.memory_name}: {exc}",
                                 hint="Check the role's bedrock-agentcore permissions and the region.") from exc


def _deleting_ids(control, name: str) -> list[str]:
    return [m["id"] for page in control.get_paginator("list_memories").paginate()
            for m in page.get("memories", []) if m["id"].rsplit("-", 1)[0] == name and m.get("status") == "DELETING"]


def _wait_gone(control, memory_id: str, local: bool) -> None:
    waiters.wait_for(
        f"memory {memory_id} to finish deleting",
        lambda: _get(control, memory_id),
        done=lambda m: m is None,
        describe=lambda m: "deleted" if m is None else m["status"],
        timeout=120.0 if local else 900.0, interval=0.5 if local else 5.0,
    )


def _wait_active(control, memory_id: str, timeout: float, progress: bool, local: bool,
                 since: float | None = None) -> dict:
    return waiters.wait_for(
        f"memory {memory_id} to be ACTIVE",
        lambda: control.get_memory(memoryId=memory_id)["memory"],
        done=lambda m: m["status"] == "ACTIVE",
        failed=lambda m: (f"Memory {memory_id} is {m['status']}: {m.get('failureReason', 'no reason given')}."
                          if m["status"] in ("FAILED", "DELETING") else None),
        describe=lambda m: m["status"],
        timeout=timeout, interval=0.5 if local else 5.0,
        progress=progress, since=since,
    )


def _stored_id(settings: Settings) -> str | None:
    try:
        return _client("ssm", settings).get_parameter(Name=settings.memory_id_parameter)["Parameter"]["Value"]
    except ClientError as exc:
        if aws_error_code(exc) == "ParameterNotFound":
            return None
        raise MemoryServiceError(f"Could not read SSM parameter {settings.memory_id_parameter}: {exc}") from exc


def memory_id(settings: Settings) -> str:
    """The memory id stored in SSM; a clear error when the memory has not been created yet."""
    stored = _stored_id(settings)
    if not stored:
        raise MemoryServiceError(
            f"No memory id in SSM parameter {settings.memory_id_parameter}: the memory has not been created.",
            hint="Run notebook 02_create_memory (helpers.memory.get_or_create_memory) first.")
    return stored


def memory_info(settings: Settings | Deployment) -> dict:
    """The memory's id, status and strategies, with the namespace each strategy writes to."""
    return _deployment(settings).memory


def describe_memory(settings: Settings, mid: str) -> dict:
    """memory_info for the memory `mid` (one GetMemory call); Deployment.memory keeps its answer."""
    memory = _get(_client("bedrock-agentcore-control", settings), mid)
    if memory is None:
        raise MemoryServiceError(f"Memory {mid} (from {settings.memory_id_parameter}) no longer exists.",
                                 hint="Run notebook 02_create_memory again to create it.")
    kinds = {v: k for k, v in KINDS.items()}
    return {
        "memory_id": memory["id"], "name": memory["name"], "status": memory["status"], "arn": memory["arn"],
        "event_expiry_days": memory["eventExpiryDuration"],
        "strategies": [{
            "kind": kinds.get(s["type"], s["type"].lower()), "name": s["name"], "type": s["type"],
            "namespace": (s.get("namespaceTemplates") or s.get("namespaces") or [""])[0],
            "strategy_id": s["strategyId"], "status": s.get("status", ""),
        } for s in memory.get("strategies", [])],
    }


def strategies_df(settings: Settings | Deployment):
    """The memory's strategies as a table: kind, name, namespace template, status."""
    return tables.frame(memory_info(settings)["strategies"],
                        ["kind", "name", "type", "namespace", "status", "strategy_id"])


def delete_memory(settings: Settings, *, progress: bool = True) -> Deleted:
    """Delete the workshop's memory (found by SSM id and by name); the ids deleted (none: it was already gone).

    "Not found" is success. The SSM parameter is left to helpers.cleanup, which reports it.
    """
    control = _client("bedrock-agentcore-control", settings)
    ids = []
    stored = _stored_id(settings)
    if stored:
        ids.append(stored)
    for page in control.get_paginator("list_memories").paginate():
        for summary in page.get("memories", []):
            # One already DELETING was removed by an earlier call: deleting it again is not this call's removal.
            if (summary["id"].rsplit("-", 1)[0] == settings.memory_name and summary["id"] not in ids
                    and summary.get("status") != "DELETING"):
                ids.append(summary["id"])
    deleted = []
    for mid in ids:
        try:
            control.delete_memory(memoryId=mid)
            deleted.append(mid)
        except ClientError as exc:
            if aws_error_code(exc) in _GONE or aws_error_code(exc) == "ValidationException":
                continue
            raise MemoryServiceError(f"Could not delete memory {mid}: {exc}") from exc
    return Deleted.of(deleted)


# -- short-term memory: events --------------------------------------------------------------------
def _data(settings: Settings):
    return _client("bedrock-agentcore", settings)


def _events(settings: Settings, actor_id: str, session_id: str) -> list[dict]:
    mid = memory_id(settings)
    pages = _data(settings).get_paginator("list_events").paginate(
        memoryId=mid, actorId=actor_id, sessionId=session_id, includePayloads=True)
    try:
        return [e for page in pages for e in page.get("events", [])]
    except ClientError as exc:
        raise MemoryServiceError(f"Could not list events of actor {actor_id}, session {session_id} "
                                 f"in memory {mid}: {exc}") from exc


def events_df(settings: Settings, actor_id: str, session_id: str):
    """The session's turns, oldest first: time, role, text, event id."""
    rows = []
    for event in _events(settings, actor_id, session_id):
        for i, item in enumerate(event.get("payload", [])):
            if "conversational" in item:
                role = item["conversational"]["role"]
                text = item["conversational"]["content"].get("text", "")
            else:
                role = next(iter(item), "?").upper()
                text = json.dumps(next(iter(item.values()), None), default=str)[:500]
            rows.append({"time": event["eventTimestamp"], "role": role, "text": text,
                         "event_id": event["eventId"], "_seq": i, "branch": (event.get("branch") or {}).get("name")})
    df = tables.frame(rows, ["time", "role", "text", "event_id", "branch", "_seq"], sort_by=["time", "event_id",
                                                                                             "_seq"])
    df = df.drop(columns=["_seq"])
    if df["branch"].isna().all():
        df = df.drop(columns=["branch"])
    return df


def sessions_df(settings: Settings, actor_id: str):
    """The actor's sessions, oldest first: when each started and last changed, its events and its messages.

    The two counts differ: an event may hold several messages (the agent saves a user message and its
    answer as one event), and the turns table has one row per message.
    """
    mid = memory_id(settings)
    data = _data(settings)
    summaries = [s for page in data.get_paginator("list_sessions").paginate(memoryId=mid, actorId=actor_id)
                 for s in page.get("sessionSummaries", [])]
    rows = []
    for summary in summaries:
        events = [e for page in data.get_paginator("list_events").paginate(
            memoryId=mid, actorId=actor_id, sessionId=summary["sessionId"], includePayloads=True)
            for e in page.get("events", [])]
        rows.append({"session_id": summary["sessionId"], "started": summary["createdAt"], "events": len(events),
                     "messages": sum(len(e.get("payload") or []) for e in events),
                     "last_event": max((e["eventTimestamp"] for e in events), default=None)})
    return tables.frame(rows, ["session_id", "started", "last_event", "events", "messages"], sort_by="started")


def add_turns(settings: Settings, actor_id: str, session_id: str, turns: Iterable[tuple[str, str]]) -> int:
    """Write (role, text) turns as events, one per turn, a millisecond apart so their order is kept."""
    mid = memory_id(settings)
    data = _data(settings)
    start = dt.datetime.now(dt.timezone.utc)
    count = 0
    for i, (role, text) in enumerate(turns):
        data.create_event(memoryId=mid, actorId=actor_id, sessionId=session_id,
                          eventTimestamp=start + dt.timedelta(milliseconds=i),
                          payload=[{"conversational": {"content": {"text": text}, "role": role.upper()}}])
        count += 1
    return count


# A short conversation in which a user states facts and preferences (notebook 06 writes it).
SAMPLE_TURNS = [
    ("USER", "Hi! I'm Dana, a backend developer. I work on a Flask service that talks to Postgres."),
    # The assistant only acknowledges: a claim such as "I created app.py" would become a fact of this
    # actor that later chats are given as context, about a file that exists nowhere.
    ("ASSISTANT", "Got it: a Flask service on Postgres."),
    ("USER", "I prefer pytest over unittest. Always add type hints. Never use print for logging."),
    ("ASSISTANT", "Understood: pytest, type hints, and the logging module."),
    ("USER", "Our team deploys to Amazon ECS every Friday."),
    ("ASSISTANT", "Noted. I will keep the Dockerfile ECS-friendly."),
]


@dataclass(frozen=True)
class ConversationWritten:
    """What `ensure_conversation` wrote into a session, and what the session holds now."""

    actor_id: str
    session_id: str
    added: int
    already: int
    messages: int

    def __str__(self) -> str:
        done = (f"wrote {self.added} message(s)" if self.added else "wrote nothing")
        kept = f", {self.already} were already there" if self.already else ""
        return (f"Session {self.session_id} of {self.actor_id}: {done}{kept}; "
                f"it holds {self.messages} message(s).")

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return str(self).replace(self.session_id, f"`{self.session_id}`", 1)


def ensure_conversation(settings: Settings, actor_id: str, session_id: str,
                        turns: Iterable[tuple[str, str]] = tuple(SAMPLE_TURNS)) -> ConversationWritten:
    """Add `turns` to the session once: a turn whose text the session already holds is not written again."""
    turns = [(role.upper(), text) for role, text in turns]
    existing = {(item["conversational"]["role"], item["conversational"]["content"].get("text"))
                for event in _events(settings, actor_id, session_id)
                for item in event.get("payload", []) if "conversational" in item}
    missing = [turn for turn in turns if turn not in existing]
    if missing:
        add_turns(settings, actor_id, session_id, missing)
    held = sum(len(e.get("payload") or []) for e in _events(settings, actor_id, session_id))
    return ConversationWritten(actor_id, session_id, len(missing), len(turns) - len(missing), held)


class RecordCounts(dict):
    """How many records of each kind there are, by kind; reads as one line."""

    def __repr__(self) -> str:
        return "Records: " + ", ".join(f"{n} {kind}" for kind, n in self.items())

    __str__ = __repr__


# -- long-term memory: records ------------------------------------------------------------------
def _strategy(deployment: Deployment, kind: str) -> dict:
    if kind not in KINDS:
        raise MemoryServiceError(f"kind={kind!r} is not a kind of record.",
                                 hint=f"Use one of: {', '.join(KINDS)}.")
    for strategy in deployment.memory["strategies"]:
        if strategy["type"] == KINDS[kind]:
            return strategy
    raise MemoryServiceError(f"Memory {deployment.settings.memory_name} has no {KINDS[kind]} strategy for {kind}.",
                             hint="Delete it and run notebook 02_create_memory to create it with all three.")


def namespace_for(settings: Settings | Deployment, actor_id: str, kind: str, session_id: str | None = None) -> dict:
    """Where records of `kind` live: {"namespace": exact} or, without a session, {"namespacePath": prefix}."""
    strategy = _strategy(_deployment(settings), kind)
    template = strategy["namespace"].replace("{actorId}", actor_id).replace(
        "{memoryStrategyId}", strategy["strategy_id"])
    if "{sessionId}" in template:
        if session_id:
            return {"namespace": template.replace("{sessionId}", session_id), "strategy_id": strategy["strategy_id"]}
        prefix = template.split("{sessionId}")[0]
        return {"namespacePath": prefix, "strategy_id": strategy["strategy_id"]}
    return {"namespace": template, "strategy_id": strategy["strategy_id"]}


def records_df(settings: Settings | Deployment, actor_id: str, kind: str = "facts", session_id: str | None = None,
               query: str | None = None, top_k: int = 10):
    """Long-term records of one kind for an actor, as a table.

    Without `query`: every record, oldest first. With `query`: the `top_k` most similar records,
    best first, with their similarity score. Pass a Deployment to reuse its memory id and strategies.
    """
    deployment = _deployment(settings)
    where = namespace_for(deployment, actor_id, kind, session_id)
    strategy_id = where.pop("strategy_id")
    mid = deployment.memory_id
    data = _data(deployment.settings)
    try:
        if query:
            pages = data.get_paginator("retrieve_memory_records").paginate(
                memoryId=mid, **where,
                searchCriteria={"searchQuery": query, "topK": top_k, "memoryStrategyId": strategy_id})
        else:
            pages = data.get_paginator("list_memory_records").paginate(
                memoryId=mid, memoryStrategyId=strategy_id, **where)
        records = [r for page in pages for r in page.get("memoryRecordSummaries", [])]
    except ClientError as exc:
        raise MemoryServiceError(f"Could not read {kind} of actor {actor_id} from memory {mid}: {exc}") from exc
    rows = [{"time": r.get("timestamp") or r["createdAt"], "text": r["content"].get("text", ""),
             "namespace": (r.get("namespaces") or [""])[0], "score": r.get("score"),
             "record_id": r["memoryRecordId"]} for r in records]
    if query:
        return tables.frame(rows, ["score", "text", "namespace", "time", "record_id"], sort_by="score",
                            ascending=False)
    return tables.frame(rows, ["time", "text", "namespace", "record_id"], sort_by="time")


def record_counts(settings: Settings | Deployment, actor_id: str, session_id: str | None = None) -> dict[str, int]:
    """How many records of each kind the actor has (summaries: of this session, if one is given)."""
    deployment = _deployment(settings)
    return {kind: len(records_df(deployment, actor_id, kind, session_id=session_id if kind == "summaries" else None))
            for kind in KINDS}


def wait_for_records(settings: Settings | Deployment, actor_id: str, session_id: str | None = None, *,
                     kinds: Iterable[str] = tuple(KINDS), minimum: int = 1, timeout: float | None = None,
                     progress: bool = True) -> RecordCounts:
    """Wait until the strategies have written at least `minimum` records of each kind; the counts.

    Locally extraction runs a second after the last event; on AWS it takes a few minutes.
    """
    kinds = tuple(kinds)
    # The memory and its strategies stay put while records arrive: resolved once, not on every poll.
    deployment = _deployment(settings)
    settings = deployment.settings
    timeout = timeout if timeout is not None else (60.0 if settings.is_local else 900.0)

    def counts() -> dict[str, int]:
        every = record_counts(deployment, actor_id, session_id)
        return {k: every[k] for k in kinds}

    return RecordCounts(waiters.wait_for(
        f"long-term records of {actor_id}",
        counts,
        done=lambda c: all(n >= minimum for n in c.values()),
        describe=lambda c: ", ".join(f"{k} {n}" for k, n in c.items()),
        timeout=timeout, interval=0.5 if settings.is_local else 10.0, max_interval=2.0 if settings.is_local else 30.0,
        progress=progress,
    ))
