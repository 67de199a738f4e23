"""The episodic strategy, run locally without a language model: an episode per session and reflections across
episodes, in the XML shape of AWS's episodic records, by plain rules (the sentence rules live in strategies.py)."""
from __future__ import annotations

import html
import re

from .strategies import MAX_SUMMARY, Turn, _bare, _first_sentence, _imperative, sentences

# AWS's episodic strategy answers XML: each episode split into situation, intent, assessment, justification and an
# episode-level reflection; reflections across episodes name patterns and lessons (devguide:
# episodic-memory-strategy). AWS's model also decides when an episode is complete; locally a session is one
# episode, rewritten as the session grows, as the summary is.
EPISODE_TAGS = ("situation", "intent", "assessment", "justification", "reflection")
_TROUBLE = re.compile(r"\b(error|errors|failed|fails|failing|failure|exception|traceback|cannot|could not|"
                      r"couldn't|denied|not found|timed out|timeout)\b", re.IGNORECASE)


def _xml(tag: str, text: str) -> str:
    return f"<{tag}>{html.escape(text, quote=False)}</{tag}>"


def episode(turns: list[Turn]) -> str:
    """One session as an episode, in the XML shape of AWS's episodic records."""
    asked = [_first_sentence(t.text) for t in turns if t.role == "USER" and t.text.strip()]
    did = [_first_sentence(t.text) for t in turns if t.role == "ASSISTANT" and t.text.strip()]
    if not asked and not did:
        return ""
    trouble = [s for t in turns if t.role in ("ASSISTANT", "TOOL") for s in sentences(t.text) if _TROUBLE.search(s)]
    last = next((t for t in reversed(turns) if t.role in ("ASSISTANT", "TOOL") and t.text.strip()), None)
    ended_badly = last is not None and bool(_TROUBLE.search(last.text))
    tools = sum(1 for t in turns if t.role == "TOOL")
    if ended_badly:
        assessment = "The episode ended on a problem: " + _clip(trouble[-1])
    elif trouble:
        assessment = "The assistant met a problem and went on past it: " + _clip(trouble[0])
    elif did:
        assessment = "The assistant answered without reporting a problem."
    else:
        assessment = "The assistant has not answered yet."
    parts = {
        "situation": "The user started with: " + (asked[0] if asked else "no request"),
        "intent": "The user asked: " + (" | ".join(asked) if asked else "nothing"),
        "assessment": assessment,
        "justification": "The assistant: " + (" | ".join(did) if did else "no answer")
                         + (f" ({tools} tool result{'s' if tools != 1 else ''})" if tools else ""),
        "reflection": ("Problems met: " + " | ".join(_clip(t) for t in trouble[:3])) if trouble
                      else "No problem was reported in this episode.",
    }
    text = "<episode>" + "".join(_xml(tag, parts[tag]) for tag in EPISODE_TAGS) + "</episode>"
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY - 10] + "</episode>"


def episode_part(text: str, tag: str) -> str:
    m = re.search(f"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return html.unescape(m.group(1)) if m else ""


def reflect(episodes: list[str]) -> str:
    """Insights across episodes: how many met problems, which requests recur, and the problems met before."""
    if not episodes:
        return ""
    troubled = [e for e in episodes if episode_part(e, "reflection").startswith("Problems met")]
    verbs: dict[str, int] = {}
    for e in episodes:
        for ask in episode_part(e, "intent").removeprefix("The user asked: ").split(" | "):
            word = _bare(ask).split(" ", 1)[0].lower().strip(".,!?")
            if _imperative(ask) and word:
                verbs[word] = verbs.get(word, 0) + 1
    recurring = sorted((w for w, n in verbs.items() if n > 1), key=lambda w: (-verbs[w], w))
    n = len(episodes)
    parts = [_xml("insight", f"Across {n} episode{'s' if n != 1 else ''}, {len(troubled)} met a problem.")]
    if recurring:
        parts.append(_xml("pattern", "Requests that recur: " + ", ".join(f"{w} ({verbs[w]})" for w in recurring)))
    if troubled:
        lessons = [episode_part(e, "reflection").removeprefix("Problems met: ") for e in troubled[-3:]]
        parts.append(_xml("lesson", "Problems met before: " + " | ".join(lessons)))
    return "<reflection>" + "".join(parts) + "</reflection>"


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
