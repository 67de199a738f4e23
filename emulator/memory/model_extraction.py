"""Long-term extraction by the upstream model (WORKSHOP_MODEL_UPSTREAM), as AWS extracts with a model.

AWS's built-in semantic and user-preference strategies run a model over new events
(docs.aws.amazon.com/bedrock-agentcore/latest/devguide/memory-strategies.html). With a real model behind the
emulator, the local strategies ask it too; when it cannot answer, or answers something other than the JSON
asked for, the caller falls back to the rules in strategies.py and a warning says why.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Callable

from ..bedrock.upstream import Upstream
from ..core.errors import ServiceError
from ..core.settings import ModelUpstream

log = logging.getLogger(__name__)

# Marks extraction requests in the upstream's logs (and lets a test's fake upstream tell them apart).
MARKER = "You extract long-term memory records for a coding assistant."
PROMPTS = {
    "facts": MARKER + (
        " From the conversation, list the lasting facts the user states about themselves, their team, projects,"
        " tools and environment, including facts said in passing inside a request, and what the assistant"
        " reports having done. Write each as one short self-contained sentence in the third person"
        " (\"The user ...\", \"The assistant ...\"). Leave out questions, one-off tasks, guesses, passing states"
        " and preferences or instructions. Answer with JSON only: {\"facts\": [\"...\"]}, an empty list when"
        " there are none."),
    "preferences": MARKER + (
        " From the conversation, list the user's lasting preferences and standing instructions: what they like,"
        " avoid, or want done from now on. Never list a preference the user did not state, a one-off task, or"
        " what the assistant suggests. Write each as one short sentence (\"The user prefers ...\", \"The user"
        " wants the assistant to ...\"). Answer with JSON only: {\"preferences\": [\"...\"]}, an empty list"
        " when there are none."),
}
MAX_ITEMS = 20
MAX_ITEM = 300

Extractor = Callable[..., "list[str] | None"]


def parse(text: str, kind: str) -> list[str] | None:
    """The list under `kind` in the first JSON object of the answer; None when there is none."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        doc = json.loads(text[start:end + 1])
    except ValueError:
        return None
    items = doc.get(kind) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return None
    cleaned = [re.sub(r"\s+", " ", i).strip() for i in items]
    return [i for i in cleaned if 3 <= len(i) <= MAX_ITEM][:MAX_ITEMS]


def make_extractor(config: ModelUpstream) -> Extractor:
    client = Upstream(config)

    def extract(turns: list, kind: str, append: str | None = None, strict: bool = False) -> list[str] | None:
        """The model's records; None (or, with strict, ExtractionFailed) when it cannot answer.

        `append` is a custom strategy's appendToPrompt, added after the built-in instructions as AWS appends it
        (CustomMemoryStrategyInput's overrides in botocore's bedrock-agentcore-control model)."""
        from .strategies import ExtractionFailed

        lines = [f"{t.role}: {t.text}" for t in turns if t.role in ("USER", "ASSISTANT") and t.text.strip()]
        if not lines:
            return []
        system = PROMPTS[kind] + (f"\n\n{append}" if append else "")
        doc = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1024, "system": system,
               "messages": [{"role": "user", "content": "<conversation>\n" + "\n".join(lines) + "\n</conversation>"}]}
        try:
            message, _ = client.message(doc)
        except ServiceError as e:
            if strict:
                raise ExtractionFailed(f"the model could not extract {kind}: {e.code}: {e.message}") from e
            log.warning("memory: the model could not extract %s (%s); the local rules extract them instead",
                        kind, e.message)
            return None
        text = "".join(b.get("text", "") for b in message.get("content") or [] if isinstance(b, dict)
                       and b.get("type") == "text")
        items = parse(text, kind)
        if items is None and strict:
            raise ExtractionFailed(f"the model's answer held no JSON list of {kind}: {text[:200]!r}")
        if items is None:
            log.warning("memory: the model's answer held no JSON list of %s (%r); the local rules extract them "
                        "instead", kind, text[:200])
        return items

    return extract


def configure(config: ModelUpstream | None) -> None:
    """Point the strategies at the upstream model, or (None) back at the rules alone."""
    from . import strategies

    strategies.model_extractor = make_extractor(config) if config else None
