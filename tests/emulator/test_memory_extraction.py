"""The local semantic and user-preference rules find what people say, and invent nothing they did not."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.memory import model_extraction
from emulator.memory.strategies import Turn, extract_facts, extract_preferences

ROOT = Path(__file__).resolve().parents[2]


def facts(*user: str) -> list[str]:
    return extract_facts([Turn("USER", text) for text in user])


def prefs(*user: str) -> list[str]:
    return extract_preferences([Turn("USER", text) for text in user])


@pytest.mark.parametrize("said", ["The cache sits in Redis 7 on port 6380.",
                                  "The mobile client is built with Flutter.",
                                  "Production runs on three EC2 instances behind an ALB.",
                                  "Test fixtures are stored in tests/data as JSON."])
def test_a_fact_whose_subject_is_not_the_user_is_kept(said):
    assert facts(said) == [said]


def test_a_contrast_keeps_both_sides():
    assert facts("We version with SemVer, not CalVer.") == ["The user's team versions with SemVer, not CalVer."]


@pytest.mark.parametrize("request_, fact", [
    ("Could you add a Makefile for my Django project?", "The user has a Django project."),
    ("Can you tune the report query on our MySQL 8 replica?", "The user's team has a MySQL 8 replica."),
    ("Please add retries to my Node service.", "The user has a Node service."),
])
def test_a_request_still_says_what_the_user_works_on(request_, fact):
    assert fact in facts(request_)
    assert prefs(request_) == []


def test_only_named_things_in_a_request_become_facts():
    assert facts("Can you clean up my code?", "Fix my tests please.") == []


@pytest.mark.parametrize("said, preference", [
    ("Name branches feature/<ticket> please.", "The user wants the assistant to name branches feature/<ticket>."),
    ("Keep lines under 100 characters.", "The user wants the assistant to keep lines under 100 characters."),
    ("Stick to functional components.", "The user wants the assistant to stick to functional components."),
    ("Don't add comments that restate the code.",
     "The user wants the assistant not to add comments that restate the code."),
    ("From now on, write shell scripts with set -euo pipefail.",
     "The user wants the assistant to write shell scripts with set -euo pipefail from now on."),
])
def test_a_standing_instruction_is_a_preference_without_a_preference_verb(said, preference):
    assert prefs(said) == [preference]
    assert facts(said) == []


@pytest.mark.parametrize("said", [
    "Run the tests in tests/unit.", "Now delete the build folder and show me the files.", "Fix the typo in README.md.",
    "Use the staging database for this one.", "Please use the staging database.", "Format the whole package.",
    "I'd like you to add a health check endpoint.", "Should I use tabs or spaces in YAML?",
    "Is it better to use poetry or uv?", "Keep it short."])
def test_a_one_off_task_request_or_question_is_no_preference(said):
    assert prefs(said) == []


@pytest.mark.parametrize("said", ["The build is failing on main.", "It is probably the new linter.",
                                  "This is great, thanks!", "If we moved to Kafka, the consumers would change.",
                                  "The tests might be flaky.", "Explain how consumer groups work."])
def test_passing_states_guesses_and_tasks_are_no_facts(said):
    assert facts(said) == []


def test_what_the_assistant_advises_is_not_the_users_preference():
    turns = [Turn("USER", "How should I structure the config module?"),
             Turn("ASSISTANT", "I recommend a single settings object. Always load it from the environment.")]
    assert extract_preferences(turns) == []


def test_a_first_person_present_verb_ending_in_eed_is_conjugated():
    assert facts("I need Python 3.12 for this repo.") == ["The user needs Python 3.12 for this repo."]


def test_the_extraction_benchmark_prints_before_and_after_for_both_sets():
    done = subprocess.run([sys.executable, "bench/bench_extraction.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["sets"]) == {"dev", "heldout", "blind"}
    for figures in report["sets"].values():
        for when in ("before", "after"):
            assert 0 <= figures[when]["semantic"]["recall"] <= 1
            assert figures[when]["user_preference"]["false_preferences"] >= 0
        # The change this benchmark guards: more found, nothing invented.
        assert figures["after"]["semantic"]["recall"] > figures["before"]["semantic"]["recall"]
        assert figures["after"]["user_preference"]["recall"] > figures["before"]["user_preference"]["recall"]
        assert figures["after"]["user_preference"]["false_preferences"] == 0


@pytest.mark.parametrize("answer, items", [
    ('{"facts": ["The user uses Go."]}', ["The user uses Go."]),
    ('Sure! {"facts": []} Hope that helps.', []),
    ('{"preferences": ["x"]}', None),  # the wrong list
    ('{"facts": "The user uses Go."}', None),  # not a list
    ("I cannot do that.", None),
    ('{"facts": ["The user uses Go.", 3]}', None),
])
def test_only_the_json_list_asked_for_counts_as_the_models_extraction(answer, items):
    assert model_extraction.parse(answer, "facts") == items


def test_without_an_upstream_the_rules_alone_extract(monkeypatch):
    model_extraction.configure(None)
    assert facts("The cache sits in Redis 7.") == ["The cache sits in Redis 7."]
    monkeypatch.setattr("emulator.memory.strategies.model_extractor", lambda turns, kind, **_: None)
    assert facts("The cache sits in Redis 7.") == ["The cache sits in Redis 7."]  # the model could not answer
    monkeypatch.setattr("emulator.memory.strategies.model_extractor", lambda turns, kind, **_: ["The model's fact."])
    assert facts("The cache sits in Redis 7.") == ["The model's fact."]


@pytest.mark.parametrize("said, fact, preference", [
    ("I love hiking in the Alps with my dog Rex.", "The user has a dog named Rex.",
     "The user loves hiking in the Alps with their dog Rex."),
    ("I enjoy working at Stripe on the payments API.", "The user works at Stripe on the payments API.",
     "The user enjoys working at Stripe on the payments API."),
    ("I hate the legacy Perl scripts my team maintains.", "The user's team maintains the legacy Perl scripts.",
     "The user hates the legacy Perl scripts their team maintains."),
    ("I like Vim since I have used it for ten years.", "The user has used Vim for ten years.",
     "The user likes Vim since they have used it for ten years."),
    ("I like Go, and our whole backend is written in Go.", "The user's whole backend is written in Go.",
     "The user likes Go, and our whole backend is written in Go."),
])
def test_a_preference_that_states_a_fact_is_kept_as_both(said, fact, preference):
    assert facts(said) == [fact]
    assert prefs(said) == [preference]


@pytest.mark.parametrize("said", ["I like concise commit messages.", "I like working in small teams.",
                                  "I would love a dog named Rex.", "I really enjoy writing tests first."])
def test_a_preference_alone_is_no_fact(said):
    assert facts(said) == []
    assert prefs(said) != []
