"""AgentCore Memory for the agent: recent turns and long-term records before a run, the new turn after.

The memory id comes from SSM once (the memory is created once, by the workshop, never here). When
it is missing or unreachable the agent still answers; `status` says why memory is off.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from . import denials

log = logging.getLogger("agent.memory")

# The long-term namespaces the workshop's memory strategies write (DESIGN.md "Names").
FACTS = "coding/user/{actor}/facts"
PREFERENCES = "coding/user/{actor}/preferences"
ACTOR_PREFIX = "coding/user/{actor}/"
RETRY_SECONDS = 30.0
# Turns whose save failed are kept in this process and saved before the next turn, oldest first; beyond
# this many the oldest are dropped (and said so), so a memory that stays down cannot fill the agent's RAM.
MAX_PENDING_TURNS = 100
MAX_TEXT = 9000  # conversational content beyond this is cut, so one huge answer cannot fail the save


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _warning(exc: Exception, step: str, failed: str, action: str) -> str:
    """The warning for a failed memory call; a denial names the action the role needs (and is logged)."""
    if denials.is_access_denied(exc):
        return denials.explain(step, _describe(exc), action)
    return f"{failed}: {_describe(exc)}"


@dataclass
class MemoryContext:
    turns: list[tuple[str, str]] = field(default_factory=list)  # (role, text), oldest first
    facts: list[str] = field(default_factory=list)
    preferences: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.turns or self.facts or self.preferences or self.summaries)

    def render(self) -> str:
        """Context for Claude, in a tag the stand-in model quotes (emulator/bedrock/standin.py)."""
        if self.is_empty():
            return ""
        lines = ["<memory_context>"]
        if self.turns:
            lines.append("Recent conversation in this session (oldest first):")
            lines += [f"- {role.lower()}: {text}" for role, text in self.turns]
        if self.preferences:
            lines.append("The user's preferences:")
            lines += [f"- {p}" for p in self.preferences]
        if self.facts:
            lines.append("Facts about the user's work:")
            lines += [f"- {f}" for f in self.facts]
        if self.summaries:
            lines.append("Summaries of this user's earlier sessions:")
            lines += [f"- {s}" for s in self.summaries]
        lines.append("</memory_context>")
        return "\n".join(lines)


class Memory:
    """The agent's view of one AgentCore memory; `enabled` is False with `status` saying why."""

    def __init__(self, settings, ssm=None, agentcore=None, control=None):
        self.settings = settings
        self.ssm = ssm
        self.client = agentcore
        self.control = control  # bedrock-agentcore-control, for GetMemory (the summary strategy's id)
        self._summary_strategy: dict | None = None
        self._strategy_retry_after = 0.0
        self.memory_id: str | None = None
        self.status = "memory not loaded yet"
        self._loaded = threading.Event()
        # A denied GetMemory (summaries then fall back to namespaces): still told to the caller.
        self.strategy_denial: str | None = None
        # Set when SSM could not be reached (not when the parameter is missing): worth another try.
        self._retry_after: float | None = None
        self._pending: list[dict] = []  # CreateEvent requests that failed, to send again
        self._pending_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.memory_id is not None

    def load(self) -> None:
        """Read the memory id from SSM (once at start)."""
        name = self.settings.memory_id_parameter
        try:
            if self.ssm is None or self.client is None:
                self.status = "memory disabled: no AWS clients"
                return
            value = self.ssm.get_parameter(Name=name)["Parameter"]["Value"].strip()
            if not value:
                self.status = f"memory disabled: SSM parameter {name} is empty"
                return
            self.memory_id = value
            self.status = f"memory {value} (from SSM parameter {name})"
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ParameterNotFound":
                self.status = (f"memory disabled: SSM parameter {name} does not exist "
                               "(create the memory first; the agent answers without it)")
            elif denials.is_access_denied(exc):
                self.status = "memory disabled: " + denials.explain(
                    f"reading SSM parameter {name}", _describe(exc), "ssm:GetParameter")
            else:
                self.status = f"memory disabled: could not read SSM parameter {name}: {_describe(exc)}"
        except (BotoCoreError, OSError) as exc:
            self.status = f"memory disabled: SSM unreachable reading {name}: {_describe(exc)}"
            self._retry_after = time.monotonic() + RETRY_SECONDS
        finally:
            log.info(self.status)
            self._loaded.set()

    def wait_loaded(self, timeout: float) -> None:
        self._loaded.wait(timeout)

    def retry_if_unreachable(self) -> None:
        """Read SSM again if it was unreachable at start and a while has passed (a network blip)."""
        if self.memory_id is None and self._retry_after is not None and time.monotonic() >= self._retry_after:
            self._retry_after = None
            self.load()

    # -- before a run ----------------------------------------------------------------------
    def context(self, actor_id: str, session_id: str, query: str) -> MemoryContext:
        ctx = MemoryContext()
        if not self.enabled:
            return ctx
        try:
            ctx.turns = self.recent_turns(actor_id, session_id)
        except (ClientError, BotoCoreError, OSError) as exc:
            ctx.warnings.append(_warning(exc, f"reading recent turns from memory {self.memory_id}",
                                         "could not read recent turns from memory", "bedrock-agentcore:ListEvents"))
        query = query[:1000]  # retrieval wants a query, not a document
        for namespace, target in ((PREFERENCES, ctx.preferences), (FACTS, ctx.facts)):
            try:
                target.extend(self._retrieve(namespace=namespace.format(actor=actor_id), query=query))
            except (ClientError, BotoCoreError, OSError) as exc:
                ctx.warnings.append(_warning(exc, f"reading long-term memory {namespace}",
                                             f"could not read long-term memory {namespace}",
                                             "bedrock-agentcore:RetrieveMemoryRecords"))
        try:
            ctx.summaries = self.summaries(actor_id, session_id, query)
        except (ClientError, BotoCoreError, OSError) as exc:
            ctx.warnings.append(_warning(exc, "reading session summaries from memory",
                                         "could not read session summaries from memory",
                                         "bedrock-agentcore:RetrieveMemoryRecords"))
        if self.strategy_denial:
            ctx.warnings.append(self.strategy_denial)
        return ctx

    def summary_strategy(self) -> dict | None:
        """The memory's SUMMARIZATION strategy from GetMemory, read once (again after a failure, later)."""
        if self._summary_strategy is not None:
            return self._summary_strategy or None
        if self.control is None or time.monotonic() < self._strategy_retry_after:
            return None
        try:
            strategies = self.control.get_memory(memoryId=self.memory_id)["memory"].get("strategies") or []
        except (ClientError, BotoCoreError, OSError) as exc:
            if denials.is_access_denied(exc):
                self.strategy_denial = denials.explain(
                    f"reading memory {self.memory_id}'s strategies (summaries are found by namespace instead)",
                    _describe(exc), "bedrock-agentcore:GetMemory")
            log.warning("could not read memory %s's strategies (summaries are found by namespace instead): %s",
                        self.memory_id, _describe(exc))
            self._strategy_retry_after = time.monotonic() + RETRY_SECONDS
            return None
        self._summary_strategy = next((st for st in strategies if st.get("type") == "SUMMARIZATION"), {})
        return self._summary_strategy or None

    def summaries(self, actor_id: str, session_id: str, query: str) -> list[str]:
        """Summaries of the actor's EARLIER sessions, best match first (this session's own is left out).

        Facts and preferences live under the same actor prefix, so a plain prefix search lets them
        take every slot. With the summary strategy's id the search returns summaries only; without
        it (GetMemory refused or unreachable) the search over-fetches and filters.
        """
        top_k = self.settings.memory_top_k
        prefix = ACTOR_PREFIX.format(actor=actor_id)
        own = {prefix + session_id}
        strategy = self.summary_strategy()
        criteria = {"searchQuery": query}
        if strategy:
            criteria["memoryStrategyId"] = strategy["strategyId"]
            for template in strategy.get("namespaces") or []:
                own.add(template.replace("{actorId}", actor_id).replace("{sessionId}", session_id)
                        .replace("{memoryStrategyId}", strategy["strategyId"]))
            fetch = top_k + 1  # room for this session's own summary, which is dropped
            skip = own
        else:
            fetch = max(4 * top_k, 20)
            skip = own | {FACTS.format(actor=actor_id), PREFERENCES.format(actor=actor_id)}
        criteria["topK"] = fetch
        resp = self.client.retrieve_memory_records(memoryId=self.memory_id, namespacePath=prefix,
                                                   searchCriteria=criteria, maxResults=fetch)
        texts = []
        for record in resp.get("memoryRecordSummaries", []):
            if {ns.rstrip("/") for ns in record.get("namespaces", [])} & {ns.rstrip("/") for ns in skip}:
                continue
            text = record.get("content", {}).get("text")
            if text:
                texts.append(text)
        return texts[:top_k]

    def recent_turns(self, actor_id: str, session_id: str) -> list[tuple[str, str]]:
        n = self.settings.memory_max_turns
        if n <= 0:
            return []
        # One event per invocation holds the prompt and the answer; ListEvents is newest first.
        resp = self.client.list_events(memoryId=self.memory_id, actorId=actor_id, sessionId=session_id,
                                       includePayloads=True, maxResults=n)
        turns: list[tuple[str, str]] = []
        for event in reversed(resp.get("events", [])[:n]):
            for item in event.get("payload", []):
                conv = item.get("conversational")
                if conv:
                    turns.append((conv["role"], conv["content"]["text"]))
        return turns

    def _retrieve(self, query: str, namespace: str) -> list[str]:
        resp = self.client.retrieve_memory_records(
            memoryId=self.memory_id, namespace=namespace,
            searchCriteria={"searchQuery": query, "topK": self.settings.memory_top_k},
            maxResults=self.settings.memory_top_k)
        texts = []
        for record in resp.get("memoryRecordSummaries", []):
            text = record.get("content", {}).get("text")
            if text:
                texts.append(text)
        return texts

    # -- after a run -----------------------------------------------------------------------
    def save_turn(self, actor_id: str, session_id: str, prompt: str, answer: str) -> str | None:
        """Save the prompt and the answer as one conversational event; a warning when it failed.

        A turn that could not be saved is kept and saved (with its own time) before the next one, so a
        memory that was unreachable for a while loses no turn of a process that lives on.
        """
        if not self.enabled:
            return None
        payload = [
            {"conversational": {"role": "USER", "content": {"text": prompt[:MAX_TEXT]}}},
            {"conversational": {"role": "ASSISTANT", "content": {"text": (answer or "(no answer)")[:MAX_TEXT]}}},
        ]
        request = {"memoryId": self.memory_id, "actorId": actor_id, "sessionId": session_id,
                   "eventTimestamp": dt.datetime.now(dt.timezone.utc), "payload": payload}
        with self._pending_lock:
            queue, self._pending = self._pending + [request], []
            for i, item in enumerate(queue):
                try:
                    self.client.create_event(**item)
                except (ClientError, BotoCoreError, OSError) as exc:
                    self._pending = queue[i:]
                    dropped = len(self._pending) - MAX_PENDING_TURNS
                    if dropped > 0:
                        del self._pending[:dropped]
                    kept = (f"; kept with {len(self._pending) - 1} earlier unsaved turn(s), saved at the next "
                            "invocation" if len(self._pending) > 1 else "; kept, saved at the next invocation")
                    if dropped > 0:
                        kept += f" ({dropped} oldest unsaved turn(s) dropped: more than {MAX_PENDING_TURNS})"
                    return _warning(exc, f"saving this turn to memory {self.memory_id}{kept}",
                                    f"could not save this turn to memory {self.memory_id}{kept}",
                                    "bedrock-agentcore:CreateEvent")
        return None

    @property
    def pending_turns(self) -> int:
        return len(self._pending)
