"""The deterministic stand-in model: a test double that turns plain cues into real tool calls.

It never pretends to reason. It reads the newest user turn of an Anthropic Messages request and
answers with one of four moves, so the real Claude Code CLI, its tools, memory and S3 all run:
  - asked to create or write a file  -> a `Write` tool call with a small working file;
  - asked what is in the workspace   -> a `Bash` call (`ls`), or `Read` of a named file;
  - given tool results               -> a short closing text quoting them;
  - anything else                    -> a short text that quotes the memory context it was given.
Asked what came before ("what did I ask you before?"), it also quotes the earlier user requests of
the conversation it received in this very request, so a resumed conversation is plain to see.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

MODEL_ID = "local-stand-in"
# The agent wraps what memory told it in this tag (container/agent/memory.py); quoting it lets
# tests and workshop users see that a later turn really received the earlier one.
MEMORY_TAG = re.compile(r"<memory_context>(.*?)</memory_context>", re.DOTALL)
_WORKDIR = re.compile(r"(?:Primary working directory|Working directory):\s*(\S+)")
_FILE_NAME = re.compile(r"\b([\w][\w.\-/]*\.[A-Za-z0-9]{1,8})\b")
_CREATE = re.compile(r"\b(create|write|make|generate|add|save)\b", re.IGNORECASE)
_LIST = re.compile(
    r"(what(?:'s| is| files are)? in (?:the |my |this )?(?:workspace|directory|folder)"
    r"|list (?:the |all |my )?files|which files|what files|\bls\b|show (?:me )?(?:the )?files)",
    re.IGNORECASE,
)
_READ = re.compile(r"\b(read|show|cat|open|print the contents of|what does)\b", re.IGNORECASE)
_BEFORE = re.compile(r"\b(what did i (?:ask|say|tell)|(?:asked|said) (?:you )?(?:before|earlier)|before\?|"
                     r"earlier (?:request|question)s?|previous(?:ly)? (?:request|question|ask))", re.IGNORECASE)
_PRINTS = re.compile(r"prints?\s+[\"']?([^\"'\n]+?)[\"']?\s*(?:$|[.;,!]|\band\b)", re.IGNORECASE)


@dataclass
class ContentBlock:
    kind: str  # "text" or "tool_use"
    text: str = ""
    name: str = ""
    input: dict = field(default_factory=dict)
    id: str = ""


@dataclass
class Reply:
    blocks: list[ContentBlock]
    stop_reason: str
    input_tokens: int
    output_tokens: int


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(block.get("text", ""))
    return "\n".join(parts)


def _user_request(content) -> str:
    """The user's own words: the last text block that is not a harness reminder."""
    if isinstance(content, str):
        return re.sub(r"<system-reminder>.*?</system-reminder>", "", content, flags=re.DOTALL).strip()
    texts = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            text = re.sub(r"<system-reminder>.*?</system-reminder>", "", block.get("text", ""), flags=re.DOTALL)
            if text.strip():
                texts.append(text.strip())
    return texts[-1] if texts else ""


def _tool_results(content) -> list[dict]:
    if isinstance(content, str):
        return []
    return [b for b in content or [] if isinstance(b, dict) and b.get("type") == "tool_result"]


def _result_text(block: dict) -> str:
    content = block.get("content")
    return _text_of(content) if not isinstance(content, str) else content


def _system_text(system) -> str:
    return system if isinstance(system, str) else _text_of(system)


def _estimate_tokens(chars: int) -> int:
    return max(1, chars // 4)


def file_body(name: str, request: str) -> str:
    """A small file that works for its type; `prints X` in the request decides what it prints."""
    m = _PRINTS.search(request)
    message = m.group(1).strip() if m else f"hello from {name.rsplit('/', 1)[-1]}"
    ext = name.rsplit(".", 1)[-1].lower()
    quoted = json.dumps(message)
    if ext == "py":
        return f"print({quoted})\n"
    if ext in ("js", "mjs", "cjs", "ts"):
        return f"console.log({quoted});\n"
    if ext == "sh":
        return f"#!/bin/sh\necho {quoted}\n"
    if ext == "json":
        return json.dumps({"message": message}, indent=2) + "\n"
    if ext in ("html", "htm"):
        return f"<!doctype html>\n<html><body><p>{message}</p></body></html>\n"
    if ext == "md":
        return f"# {name}\n\n{message}\n"
    return f"{message}\n"


class StandInModel:
    """Answers an Anthropic Messages request body deterministically."""

    def reply(self, request: dict) -> Reply:
        messages = request.get("messages") or []
        tools = {t.get("name") for t in request.get("tools") or [] if isinstance(t, dict)}
        system = _system_text(request.get("system"))
        # Claude Code also sends its environment block as a message of its own (role "system");
        # the conversation proper is the user and assistant turns.
        system += "\n" + "\n".join(_text_of(m.get("content")) for m in messages
                                   if m.get("role") not in ("user", "assistant"))
        messages = [m for m in messages if m.get("role") in ("user", "assistant")]
        prompt_size = len(json.dumps(request))
        last = messages[-1] if messages else {"role": "user", "content": ""}
        content = last.get("content")
        results = _tool_results(content) if last.get("role") == "user" else []
        if results:
            text = self._closing(messages, results)
            if _BEFORE.search(self._current_request(messages)):
                text += "\n" + self._before(messages)
            blocks = [ContentBlock("text", text=text)]
            return self._reply(blocks, "end_turn", prompt_size)
        words = _user_request(content)
        tool = self._tool_for(words, tools, system)
        if tool is not None:
            name, tool_input, preface = tool
            digest = hashlib.sha1(json.dumps([len(messages), words, name]).encode()).hexdigest()[:20]
            blocks = [ContentBlock("text", text=preface),
                      ContentBlock("tool_use", name=name, input=tool_input, id=f"toolu_{digest}")]
            return self._reply(blocks, "tool_use", prompt_size)
        return self._reply([ContentBlock("text", text=self._plain(words, system, messages))], "end_turn", prompt_size)

    # -- moves -----------------------------------------------------------------------------
    def _tool_for(self, words: str, tools: set, system: str):
        workdir_match = _WORKDIR.search(system)
        workdir = workdir_match.group(1).rstrip("/") if workdir_match else ""
        file_match = _FILE_NAME.search(words)
        if _CREATE.search(words) and file_match and "Write" in tools:
            name = file_match.group(1)
            path = name if name.startswith("/") or not workdir else f"{workdir}/{name}"
            return "Write", {"file_path": path, "content": file_body(name, words)}, f"Creating {name}."
        if _LIST.search(words):
            if "Bash" in tools:
                return "Bash", {"command": "ls -la", "description": "List the files in the workspace"}, \
                    "Listing the workspace."
            if "Glob" in tools:
                return "Glob", {"pattern": "**/*"}, "Listing the workspace."
        if file_match and _READ.search(words) and "Read" in tools:
            name = file_match.group(1)
            path = name if name.startswith("/") or not workdir else f"{workdir}/{name}"
            return "Read", {"file_path": path}, f"Reading {name}."
        return None

    @staticmethod
    def _requests(messages: list) -> list[str]:
        """The user's own requests in this conversation, oldest first (tool results are not requests)."""
        found = []
        for message in messages:
            if message.get("role") == "user" and not _tool_results(message.get("content")):
                words = _user_request(message.get("content"))
                if words:
                    found.append(words)
        return found

    def _current_request(self, messages: list) -> str:
        requests = self._requests(messages)
        return requests[-1] if requests else ""

    def _before(self, messages: list) -> str:
        earlier = self._requests(messages)[:-1]
        if not earlier:
            return "Earlier in this conversation: nothing; this request is the first I received."
        quoted = "\n".join(f"{n}. \"{r if len(r) <= 200 else r[:200] + ' ...'}\"" for n, r in enumerate(earlier, 1))
        return f"Earlier in this conversation you asked (quoted from the messages I received):\n{quoted}"

    def _closing(self, messages: list, results: list[dict]) -> str:
        calls = {}
        for message in messages:
            if message.get("role") == "assistant" and isinstance(message.get("content"), list):
                for block in message["content"]:
                    if isinstance(block, dict) and block.get("type") == "tool_use":
                        calls[block.get("id")] = block
        lines = []
        for result in results:
            call = calls.get(result.get("tool_use_id"), {})
            output = _result_text(result).strip()
            if len(output) > 1500:
                output = output[:1500] + " ..."
            failed = " (failed)" if result.get("is_error") else ""
            target = call.get("input", {}).get("file_path") or call.get("input", {}).get("command") or ""
            if call.get("name") == "Write" and not failed:
                lines.append(f"Done: wrote {target.rsplit('/', 1)[-1]}.")
            else:
                # Fenced, as a model writes tool output in Markdown: its line breaks survive the
                # notebook's Markdown rendering and the chat's display.
                lines.append(f"{call.get('name', 'Tool')} {target}{failed}:\n```\n{output}\n```")
        return "\n".join(lines) or "Done."

    def _plain(self, words: str, system: str, messages: list) -> str:
        # Memory context may arrive in the system prompt or in any earlier message.
        haystack = system + "\n" + "\n".join(_text_of(m.get("content")) for m in messages)
        # The newest wins: a resumed conversation carries its first turn's context too.
        memory = ([m for m in MEMORY_TAG.finditer(haystack) if m.group(1).strip()] or [None])[-1]
        said = words if len(words) <= 300 else words[:300] + " ..."
        text = f"[{MODEL_ID}] I am a deterministic stand-in model and cannot reason. You said: \"{said}\"."
        if _BEFORE.search(words):
            text += "\n" + self._before(messages)
        if memory and memory.group(1).strip():
            text += f"\nMemory context I was given:\n{memory.group(1).strip()}"
        else:
            text += "\nI was given no memory context."
        return text

    @staticmethod
    def _reply(blocks: list[ContentBlock], stop: str, prompt_size: int) -> Reply:
        # Token counts are estimates (4 characters a token): the stand-in has no tokenizer.
        out = sum(len(b.text) + len(json.dumps(b.input)) for b in blocks)
        return Reply(blocks, stop, _estimate_tokens(prompt_size), _estimate_tokens(out))


def message_json(reply: Reply, message_id: str) -> dict:
    """The whole Anthropic message (what InvokeModel answers)."""
    content = []
    for b in reply.blocks:
        if b.kind == "text":
            content.append({"type": "text", "text": b.text})
        else:
            content.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
    return {
        "id": message_id, "type": "message", "role": "assistant", "model": MODEL_ID,
        "content": content, "stop_reason": reply.stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def stream_events(reply: Reply, message_id: str) -> list[dict]:
    """The same message as Anthropic's stream events (what InvokeModelWithResponseStream carries)."""
    events: list[dict] = [{
        "type": "message_start",
        "message": {"id": message_id, "type": "message", "role": "assistant", "model": MODEL_ID,
                    "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1}},
    }]
    for index, b in enumerate(reply.blocks):
        if b.kind == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            # A few deltas rather than one, so streaming consumers see text arrive in pieces.
            for piece in re.findall(r".{1,40}", b.text, flags=re.DOTALL):
                events.append({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": piece}})
        else:
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {"type": "tool_use", "id": b.id, "name": b.name, "input": {}}})
            events.append({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": json.dumps(b.input)}})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                   "usage": {"output_tokens": reply.output_tokens}})
    events.append({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": reply.input_tokens, "outputTokenCount": reply.output_tokens,
        "invocationLatency": 1, "firstByteLatency": 1}})
    return events
