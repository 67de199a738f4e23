"""The long-term strategies, run locally without a language model: plain, predictable rules.

AWS runs an LLM over new events to extract memory records. Locally the same three built-in
strategies are approximated by rules a workshop attendee can predict:

- semantic: declarative sentences the user states ("I work on a Flask app", "our database is
  Postgres") become facts in the third person ("The user works on a Flask app."); what the
  assistant reports having done ("I created hello.py") becomes a fact about the assistant.
- user preference: sentences saying what the user prefers, likes, avoids, always or never does.
- summary: one running summary per session listing what the user asked and the assistant did.

Deduplication happens in the model (exact text and near-identical embeddings).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SEMANTIC = "SEMANTIC"
SUMMARIZATION = "SUMMARIZATION"
USER_PREFERENCE = "USER_PREFERENCE"
CUSTOM = "CUSTOM"
EPISODIC = "EPISODIC"

# The API's union member for each strategy input, and the type it is reported as.
INPUT_TYPES = {
    "semanticMemoryStrategy": SEMANTIC,
    "summaryMemoryStrategy": SUMMARIZATION,
    "userPreferenceMemoryStrategy": USER_PREFERENCE,
    "customMemoryStrategy": CUSTOM,
    "episodicMemoryStrategy": EPISODIC,
}

MAX_SENTENCE = 300
MAX_SUMMARY = 4000


@dataclass(frozen=True)
class Turn:
    role: str  # USER, ASSISTANT, TOOL, OTHER
    text: str


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")
_PREFERENCE = re.compile(
    r"\b(prefer|prefers|preferred|preference|like|likes|love|loves|enjoy|hate|hates|dislike|dislikes|"
    r"avoid|avoids|always|never|rather|favou?rite|don'?t (?:want|like|use)|do not (?:want|like|use)|"
    r"please (?:use|keep|write|don'?t|do not|avoid))\b",
    re.IGNORECASE,
)
# A statement of fact about the user or their work: first person, or "our/the project ...".
_FACT_SUBJECT = re.compile(r"^(i|i'm|i've|my|we|we're|our|the project|the repo|the team|the codebase)\b",
                           re.IGNORECASE)
_FACT_VERB = re.compile(
    r"\b(am|is|are|was|were|'m|'s|'re|have|has|had|use|uses|used|work|works|worked|live|lives|build|"
    r"builds|built|run|runs|maintain|maintains|own|owns|need|needs|study|studies|write|writes|"
    r"deploy|deploys|called|named|based|located)\b",
    re.IGNORECASE,
)
_NOT_A_FACT = re.compile(r"^(can|could|would|will|should|please|let's|lets|how|what|why|when|where|which|"
                         r"who|do|does|is|are|hi|hello|hey|thanks|thank you|ok|okay)\b", re.IGNORECASE)
# First-person sentences that ask for something rather than state something.
_REQUEST = re.compile(r"^i(?:'d| would)? (?:want|need|would like|'d like|like) (?:you|to)\b|^i'd like\b|"
                      r"^i (?:wonder|think you|hope you)\b", re.IGNORECASE)
# What the assistant reports having done, e.g. "I created hello.py that prints hi."
_ASSISTANT_DID = re.compile(
    r"^i(?:'ve| have)?\s+(created|wrote|added|updated|fixed|changed|removed|deleted|renamed|ran|"
    r"installed|configured|saved|generated|built|refactored|implemented)\b",
    re.IGNORECASE,
)

_THIRD_PERSON = {"am": "is", "'m": "is", "have": "has", "'ve": "has", "do": "does", "go": "goes",
                 "was": "was", "were": "was"}
_PAST_OR_MODAL = {"was", "had", "will", "would", "can", "could", "should", "must", "might", "may",
                  "did", "used"}


def sentences(text: str) -> list[str]:
    parts = (p.strip(" \t-*•") for p in _SENTENCE_SPLIT.split(text or ""))
    return [p for p in parts if 3 <= len(p) <= MAX_SENTENCE and re.search(r"[A-Za-z]", p)]


def _finish(sentence: str) -> str:
    sentence = sentence.strip().rstrip(";,:")
    if not sentence.endswith((".", "!")):
        sentence += "."
    return sentence[0].upper() + sentence[1:]


def _verb_third_person(verb: str) -> str:
    lower = verb.lower()
    if lower in _THIRD_PERSON:
        return _THIRD_PERSON[lower]
    if lower in _PAST_OR_MODAL or lower.endswith("ed"):
        return verb
    if re.search(r"(s|sh|ch|x|z|o)$", lower):
        return verb + "es"
    if re.search(r"[^aeiou]y$", lower):
        return verb[:-1] + "ies"
    return verb + "s"


def about_user(sentence: str) -> str:
    """Rewrite a first-person sentence in the third person: "I use vim" -> "The user uses vim."."""
    text = sentence.strip()
    text = re.sub(r"^I'm\b", "The user is", text, flags=re.IGNORECASE)
    text = re.sub(r"^I've\b", "The user has", text, flags=re.IGNORECASE)
    text = re.sub(r"^I'd\b", "The user would", text, flags=re.IGNORECASE)

    def subject_verb(m: re.Match) -> str:
        adverb = m.group(1) or ""
        return f"The user {adverb}{_verb_third_person(m.group(2))}"

    text = re.sub(r"^I\s+((?:really |usually |always |never |also |mostly |generally |don't |do not )?)(\S+)",
                  lambda m: _negation(m) if re.match(r"(don't|do not)", m.group(1) or "", re.I)
                  else subject_verb(m), text, flags=re.IGNORECASE)
    text = re.sub(r"^We're\b", "The user's team is", text, flags=re.IGNORECASE)
    text = re.sub(r"^We\s+(\S+)", lambda m: f"The user's team {_verb_third_person(m.group(1))}", text,
                  flags=re.IGNORECASE)
    text = re.sub(r"^Our\b", "The user's", text, flags=re.IGNORECASE)
    text = re.sub(r"^My\b", "The user's", text, flags=re.IGNORECASE)
    text = re.sub(r"\bmy\b", "their", text)
    text = re.sub(r"\bme\b", "them", text)
    text = re.sub(r"\bI'm\b", "they are", text)
    text = re.sub(r"\bI\b", "they", text)
    return _finish(text)


def _negation(m: re.Match) -> str:
    return f"The user does not {m.group(2)}"


def about_assistant(sentence: str) -> str:
    text = re.sub(r"^I(?:'ve| have)?\s+", "The assistant ", sentence.strip(), flags=re.IGNORECASE)
    return _finish(text)


def extract_facts(turns: list[Turn]) -> list[str]:
    """Facts stated in these turns, each a short third-person sentence."""
    facts: list[str] = []
    for turn in turns:
        for sentence in sentences(turn.text):
            if sentence.endswith("?"):
                continue
            if turn.role == "USER":
                if _PREFERENCE.search(sentence) or _NOT_A_FACT.match(sentence):
                    continue
                if _REQUEST.match(sentence):
                    continue
                # "My team ships a mobile app": a first-person statement is a fact whatever its verb;
                # "The project uses Go" needs a verb that states something.
                first_person = re.match(r"^(i|i'm|i've|my|we|we're|our)\b", sentence, re.IGNORECASE)
                if first_person or (_FACT_SUBJECT.match(sentence) and _FACT_VERB.search(sentence)):
                    facts.append(about_user(sentence))
            elif turn.role == "ASSISTANT" and _ASSISTANT_DID.match(sentence):
                facts.append(about_assistant(sentence))
    return _unique(facts)


def extract_preferences(turns: list[Turn]) -> list[str]:
    """What the user says they prefer, like, avoid, always or never do."""
    found: list[str] = []
    for turn in turns:
        if turn.role != "USER":
            continue
        for sentence in sentences(turn.text):
            if sentence.endswith("?") or not _PREFERENCE.search(sentence):
                continue
            if re.match(r"^(please|always|never|avoid|don'?t|do not|use)\b", sentence, re.IGNORECASE):
                # An instruction ("Always use type hints") is the user's standing preference.
                instruction = re.sub(r"^please\s+", "", sentence, flags=re.IGNORECASE)
                found.append(_finish("The user wants the assistant to " + _lower_first(instruction)))
            else:
                found.append(about_user(sentence))
    return _unique(found)


def summarize(turns: list[Turn]) -> str:
    """A running summary of one session: what the user asked and what the assistant did."""
    asked = [_first_sentence(t.text) for t in turns if t.role == "USER" and t.text.strip()]
    did = [_first_sentence(t.text) for t in turns if t.role == "ASSISTANT" and t.text.strip()]
    if not asked and not did:
        return ""
    count = sum(1 for t in turns if t.role == "USER")
    lines = [f"Session of {count} user turn{'s' if count != 1 else ''}."]
    if asked:
        lines.append("The user: " + " | ".join(asked))
    if did:
        lines.append("The assistant: " + " | ".join(did))
    text = " ".join(lines)
    if len(text) > MAX_SUMMARY:
        # Keep the start and the most recent part of the session, as a person skimming would.
        text = text[: MAX_SUMMARY // 2] + " ... " + text[-(MAX_SUMMARY // 2):]
    return text


_GREETING = re.compile(r"^(hi|hello|hey|thanks|thank you|ok|okay|great|sure)\b[^a-z]*$", re.IGNORECASE)


def _first_sentence(text: str) -> str:
    parts = [p for p in sentences(text) if not _GREETING.match(p)]
    first = parts[0] if parts else text.strip()
    return first if len(first) <= 160 else first[:157] + "..."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def normalise(text: str) -> str:
    """The form two records are compared in for exact duplicates."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _unique(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        key = normalise(item)
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out
