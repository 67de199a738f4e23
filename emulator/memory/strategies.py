"""The long-term strategies, run locally without a language model: plain, predictable rules.

AWS runs an LLM over new events to extract memory records. Locally the built-in strategies are
approximated by rules a workshop attendee can predict:

- semantic: declarative sentences the user states ("I work on a Flask app", "our database is
  Postgres", "The cache sits in Redis 7") become facts in the third person ("The user works on a
  Flask app."); what a request says in passing ("Could you add a Makefile for my Django project?")
  becomes "The user has a Django project."; what the assistant reports having done ("I created
  hello.py") becomes a fact about the assistant. Questions, hypotheticals, one-off tasks and
  passing states ("the build is failing") are not facts. A sentence that states a preference keeps
  the facts it also states ("I love hiking with my dog Rex": "The user has a dog named Rex.").
- user preference: sentences saying what the user prefers, likes, avoids, always or never does,
  and standing instructions ("Keep lines under 100 characters", "Name branches feature/<ticket>
  please"), told apart from one-off tasks ("Run the tests", "Use the staging database for this one").
- summary: one running summary per session listing what the user asked and the assistant did.
- episodic (episodes.py): one episode per session in AWS's XML shape (situation, intent, assessment, justification,
  reflection), and reflections across a strategy's episodes (how many met a problem, requests that recur,
  problems met before).

With a model upstream (WORKSHOP_MODEL_UPSTREAM), semantic and preference extraction ask that model first,
as AWS does, and fall back to these rules when it cannot answer (model_extraction.py).

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


# Present-tense verbs that end like a past tense ("I need" is "The user needs", not "The user need").
_BASE_IN_EED = {"need", "feed", "seed", "speed", "proceed", "succeed", "exceed", "heed", "breed", "embed"}


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
    if lower in _PAST_OR_MODAL or (lower.endswith("ed") and lower not in _BASE_IN_EED):
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


# Verbs that state how things are, for sentences whose subject is not the user ("The cache sits in Redis").
_STATING_VERB = re.compile(
    r"\b(is|are|was|were|has|have|sits?|lives?|runs?|uses?|holds?|follows?|ships?|contains?|depends?|"
    r"serves?|targets?|stores?|stored|hosted|built|written|managed|generated|tagged|deployed|based|located|"
    r"called|named|backed|powered|connects?|talks?|reads?|listens?|exposes?|relies|consists?)\b",
    re.IGNORECASE)
# Words that make a sentence a guess, a wish or a hypothetical rather than a statement.
_UNSURE = re.compile(r"\b(would|could|might|maybe|perhaps|probably|should|wonder|if|unless|suppose|whether)\b",
                     re.IGNORECASE)
# Openings that point at something in the conversation rather than state a lasting fact.
_DEICTIC = re.compile(r"^(it|it's|this|that|that's|there|these|those|here|yes|no|sure|now|so|well|also)\b",
                      re.IGNORECASE)
# A passing state is not something to remember about the user's world.
_TRANSIENT = re.compile(r"\b(failing|fails|failed|broken|crash\w*|errors?|slow|down|stuck|not working|"
                        r"doesn't work|does not work)\b", re.IGNORECASE)
# The base form of verbs a task or an instruction starts with ("Add ...", "Keep ...").
_IMPERATIVE = re.compile(
    r"^(add|create|run|fix|show|delete|remove|open|rename|bump|format|explain|deploy|check|write|make|keep|"
    r"name|use|stick|update|install|refactor|move|change|set|build|implement|generate|list|read|print|tell|"
    r"give|help|let|look|find|test|lint|commit|push|merge|stop|start|try|go|put|call|send|clean|split|wrap|"
    r"sort|describe|review|document|migrate|speed|indent|prefix|limit|follow|prefer|avoid|always|never|"
    r"don'?t|do not|be|stay|pin|include|exclude|skip|ignore|drop|replace|convert|add)\b", re.IGNORECASE)
# "Test fixtures are stored ...": a noun that looks like a verb, followed by the sentence's own verb.
_NOUN_THEN_VERB = re.compile(r"^\w+(?:\s+\w+)?\s+(is|are|was|were|has|have|live|lives|run|runs|sit|sits)\b",
                             re.IGNORECASE)
# Instructions that hold beyond the task at hand: their verb, then a bare object ("Keep lines ...",
# "Name branches ...", "Stick to ..."); "Use the staging database for this one" names a particular thing.
_STANDING_VERB = re.compile(r"^(keep|name|use|stick to|write|prefer|indent|prefix|limit|wrap|sort|pin|"
                            r"follow|put|format|spell|call|end|start|structure|order|group|tag)\s+(\S+)",
                            re.IGNORECASE)
_DETERMINER = re.compile(r"^(a|an|the|this|that|these|those|it|me|him|her|them|us|my|our|your|his|its|one|"
                         r"some|any|\S+\.\w{1,6})$", re.IGNORECASE)
_STANDING_OPENING = re.compile(r"^(always|never|avoid|don'?t|do not|make sure|be sure|ensure|from now on|"
                               r"going forward|in general|by default|whenever|every time)\b", re.IGNORECASE)
_STANDING_SCOPE = re.compile(r"\b(from now on|going forward|in (?:the )?future|whenever|every time|by default|"
                             r"in general|at all times|every|all)\b", re.IGNORECASE)
_ONE_OFF = re.compile(r"\b(this one|this time|for now|just this|right now|today|this (?:file|function|pr|task))\b",
                      re.IGNORECASE)
# What a request or question says in passing about the user's things: "my Django project", "our MySQL 8
# replica". Only named things count (a capitalised or versioned word), so "my code" says nothing.
_OWNED = re.compile(r"\b(my|our)\s+((?:[A-Z][\w.+#-]*|\d[\w.]*)(?:\s+(?:[A-Z][\w.+#-]*|\d[\w.]*)){0,3}"
                    r"(?:\s+(?!and\b|or\b|to\b|for\b|with\b|in\b|on\b)[a-z][\w-]*)?)")
_TRAILING_PLEASE = re.compile(r"[,\s]+please[.!]*$", re.IGNORECASE)
_LEADING_FILLER = re.compile(r"^(?:(?:please|also|and|now|oh|ok|okay)[,\s]+)+", re.IGNORECASE)


def _bare(sentence: str) -> str:
    """The sentence without a polite "please" at either end or a filler word in front."""
    text = _TRAILING_PLEASE.sub("", sentence.strip())
    return _LEADING_FILLER.sub("", text).strip()


def _imperative(sentence: str) -> bool:
    text = _bare(sentence)
    return bool(_IMPERATIVE.match(text)) and not _NOUN_THEN_VERB.match(text)


def standing_instruction(sentence: str) -> bool:
    """An instruction meant for all later work ("Keep lines under 100 characters"), not a one-off task."""
    text = _bare(sentence)
    if _ONE_OFF.search(text):
        return False
    if _STANDING_OPENING.match(text):
        return True
    verb = _STANDING_VERB.match(text)
    if verb and not _DETERMINER.match(verb.group(2)):
        return True
    return _imperative(text) and bool(_STANDING_SCOPE.search(text))


def _instruction(sentence: str) -> str:
    """ "Don't add comments" -> "The user wants the assistant not to add comments."."""
    text = _bare(sentence)
    scope = re.match(r"^(from now on|going forward|in general|by default)[,\s]+", text, re.IGNORECASE)
    if scope:
        text = text[scope.end():].rstrip(".!") + " " + scope.group(1).lower()
    negated = re.match(r"^(?:don'?t|do not)\s+", text, re.IGNORECASE)
    if negated:
        return _finish("The user wants the assistant not to " + text[negated.end():])
    return _finish("The user wants the assistant to " + _lower_first(text))


def _owned_things(sentence: str) -> list[str]:
    facts = []
    for m in _OWNED.finditer(sentence):
        owner = "The user's team" if m.group(1).lower() == "our" else "The user"
        thing = m.group(2).strip()
        article = "an" if thing[:1].lower() in "aeiou" else "a"
        facts.append(f"{owner} has {article} {thing}.")
    return facts


# What AWS's semantic strategy keeps from a sentence that states a preference: the facts it also carries.
# "I love hiking in the Alps with my dog Rex" is a preference (hiking) and a fact (the user has a dog, Rex);
# "I enjoy working at Stripe" says where the user works. What a preference alone says ("I like tabs") stays a
# preference only.
_NAMED_RELATION = re.compile(r"\b(my|our)\s+([a-z]+)\s+((?:[A-Z][a-z]+)(?:\s+[A-Z][a-z]+)?)\b")
_LIKING = r"^I\s+(?:really\s+|also\s+|just\s+)?(?:love|like|enjoy|hate|dislike|prefer)\s+"
# A liked activity that is also what the user does, when it names a thing: "I enjoy living in Berlin".
_LIKED_ACTIVITY = re.compile(_LIKING + r"(living|working|studying|building|maintaining|using|running|teaching|"
                             r"developing)\b\s*(.*)$", re.IGNORECASE)
_GERUND_VERB = {"living": "lives", "working": "works", "studying": "studies", "building": "builds",
                "maintaining": "maintains", "using": "uses", "running": "runs", "teaching": "teaches",
                "developing": "develops"}
# "I hate the legacy Perl scripts my team maintains": what the user's team does with the thing.
_TEAM_CLAUSE = re.compile(_LIKING + r"(the\s+.+?)\s+(my|our)\s+(team|company|group|org|department)\s+"
                          r"(\w+s)[.!]?$", re.IGNORECASE)
# "I like Vim since I have used it for ten years": the reason is a fact, with "it" the thing liked.
_LIKED_BECAUSE = re.compile(_LIKING + r"(\S+)\s*,?\s+(?:since|because|as)\s+(I\s+.+)$", re.IGNORECASE)
# "I like Go, and our whole backend is written in Go": a second clause with its own subject.
_NEXT_CLAUSE = re.compile(r",?\s+(?:and|but)\s+(?=(?:I|my|our|we|the)\b)|;\s+", re.IGNORECASE)
_NAMED = re.compile(r"\b(?:[A-Z][\w.+#-]*|\d[\w.]*)")


def _facts_in_preference(sentence: str) -> list[str]:
    """The facts a preference sentence also states (see _NAMED_RELATION and below); none for a guess or wish."""
    if _UNSURE.search(sentence):
        return []
    facts = []
    for m in _NAMED_RELATION.finditer(sentence):
        owner = "The user's team" if m.group(1).lower() == "our" else "The user"
        facts.append(f"{owner} has {'an' if m.group(2)[0] in 'aeiou' else 'a'} {m.group(2)} named {m.group(3)}.")
    activity = _LIKED_ACTIVITY.match(sentence)
    if activity and _NAMED.search(activity.group(2)):
        facts.append(about_user(f"The user {_GERUND_VERB[activity.group(1).lower()]} {activity.group(2)}"))
    team = _TEAM_CLAUSE.match(sentence)
    if team:
        owner = "The user's team" if team.group(3).lower() == "team" else f"The user's {team.group(3).lower()}"
        facts.append(_finish(f"{owner} {team.group(4)} {team.group(1)}"))
    reason = _LIKED_BECAUSE.match(sentence)
    if reason and _NAMED.match(reason.group(1)):
        clause = re.sub(r"\bit\b", reason.group(1).strip(",."), reason.group(2))
        if _user_fact(clause):
            facts.append(about_user(clause))
    clauses = _NEXT_CLAUSE.split(sentence)
    for clause in clauses[1:]:
        clause = clause.strip()
        if clause and _user_fact(clause) and not standing_instruction(clause):
            facts.append(about_user(clause))
    return facts


def _user_fact(sentence: str) -> bool:
    """A declarative sentence about the user's world, with the user as its subject or not."""
    if _PREFERENCE.search(sentence) or _NOT_A_FACT.match(sentence) or _REQUEST.match(sentence):
        return False
    # "My team ships a mobile app": a first-person statement is a fact whatever its verb.
    if re.match(r"^(i|i'm|i've|my|we|we're|our)\b", sentence, re.IGNORECASE):
        return not _TRANSIENT.search(sentence)
    if _FACT_SUBJECT.match(sentence) and _FACT_VERB.search(sentence) and not _TRANSIENT.search(sentence):
        return True
    # Any other subject ("The mobile client is built with Flutter", "Production runs on EC2").
    return (len(sentence.split()) >= 4 and not _imperative(sentence) and not _DEICTIC.match(sentence)
            and not _UNSURE.search(sentence) and not _TRANSIENT.search(sentence)
            and bool(_STATING_VERB.search(sentence)))


# Set by model_extraction.configure when the emulator has a model upstream: extract(turns, kind, append=None,
# strict=False) -> a list of records, or None when the model could not answer (the rules below answer instead);
# with strict=True it raises ExtractionFailed instead of answering None.
model_extractor = None


class ExtractionFailed(Exception):
    """A strategy's extraction could not run; the message says why (it becomes the job's failureReason)."""


def _by_model(turns: list[Turn], kind: str, append: str | None, strict: bool) -> list[str] | None:
    if model_extractor is None:
        return None
    found = model_extractor(turns, kind, append=append, strict=strict)
    return None if found is None else _unique(found)


def extract_facts(turns: list[Turn], append: str | None = None, strict: bool = False) -> list[str]:
    """Facts stated in these turns: the model's when there is one that answers, else the rules'.

    `append` is a custom strategy's appendToPrompt; `strict` (a custom strategy's own model) makes a model that
    cannot answer fail the extraction, as on AWS, instead of handing it to the rules."""
    found = _by_model(turns, "facts", append, strict)
    return rule_facts(turns) if found is None else found


def extract_preferences(turns: list[Turn], append: str | None = None, strict: bool = False) -> list[str]:
    """Preferences stated in these turns: the model's when there is one that answers, else the rules'."""
    found = _by_model(turns, "preferences", append, strict)
    return rule_preferences(turns) if found is None else found


def rule_facts(turns: list[Turn]) -> list[str]:
    """Facts stated in these turns, each a short third-person sentence."""
    facts: list[str] = []
    for turn in turns:
        for sentence in sentences(turn.text):
            if turn.role == "USER":
                if _user_fact(sentence) and not sentence.endswith("?") and not standing_instruction(sentence):
                    facts.append(about_user(sentence))
                elif not re.match(r"^(if|unless|suppose|imagine)\b", sentence, re.IGNORECASE):
                    # A request or question still says what the user works on.
                    facts.extend(_owned_things(sentence))
                    if _PREFERENCE.search(sentence) and not sentence.endswith("?"):
                        facts.extend(_facts_in_preference(sentence))
            elif turn.role == "ASSISTANT" and not sentence.endswith("?") and _ASSISTANT_DID.match(sentence):
                facts.append(about_assistant(sentence))
    return _unique(facts)


def rule_preferences(turns: list[Turn]) -> list[str]:
    """What the user says they prefer, like, avoid, always or never do, and their standing instructions."""
    found: list[str] = []
    for turn in turns:
        if turn.role != "USER":
            continue
        for sentence in sentences(turn.text):
            if sentence.endswith("?") or _REQUEST.match(sentence):
                continue
            if standing_instruction(sentence):
                # An instruction ("Always use type hints") is the user's standing preference.
                found.append(_instruction(sentence))
            elif _PREFERENCE.search(sentence) and not _imperative(sentence) and not _ONE_OFF.search(sentence):
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
