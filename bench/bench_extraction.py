"""Recall and invented preferences of the local long-term strategies, before and after a change, in one run.

Runs the semantic and user-preference rules of emulator/memory/strategies.py over the conversations in
bench/data/ (a development set the rules were tuned on and a held-out set they were not), and the same rules
as they were at an earlier commit (`--before`, read with `git show`), and prints JSON per set and strategy:

- recall: expected items found / expected items. An item is found when one record of that strategy holds all
  of its key phrases (lower case, punctuation ignored).
- false_preferences: preference records that match nothing the user said in that conversation (neither an
  expected preference nor an expected fact: a convention stated as a fact and filed as a preference is not
  invented). `in_conversations_without_preferences` counts those from conversations where the user stated none.
- unmatched_facts: fact records that match no expected fact (many are harmless, e.g. what the assistant did).

    .venv/bin/python bench/bench_extraction.py [--before <commit>] [--misses]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
RULES = ROOT / "emulator" / "memory" / "strategies.py"
# The branch point of issue 14: the rules as they were before extraction was improved.
BEFORE = "b5d1820b3a607b94a5714e168297c570785d81d4"


def load_rules(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def rules_at(commit: str, workdir: Path):
    source = subprocess.run(["git", "show", f"{commit}:emulator/memory/strategies.py"], cwd=ROOT,
                            capture_output=True, text=True)
    if source.returncode != 0:
        raise SystemExit(f"bench_extraction: cannot read the rules at {commit}: {source.stderr.strip()}")
    path = workdir / "strategies_before.py"
    path.write_text(source.stdout)
    return load_rules(path, "strategies_before")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _matches(record: str, item: list[str]) -> bool:
    padded = f" {_norm(record)} "
    return all(f" {_norm(phrase)} " in padded for phrase in item)


def score(rules, conversations: list[dict]) -> dict:
    totals = {"facts": [0, 0], "preferences": [0, 0]}
    false_prefs, false_in_empty, unmatched_facts = 0, 0, 0
    misses: dict[str, list] = {"facts": [], "preferences": [], "false_preferences": []}
    for conv in conversations:
        turns = [rules.Turn(role, text) for role, text in conv["turns"]]
        # The rules alone, even where an upstream model would extract (older commits have only the rules).
        got = {"facts": getattr(rules, "rule_facts", rules.extract_facts)(turns),
               "preferences": getattr(rules, "rule_preferences", rules.extract_preferences)(turns)}
        for kind in ("facts", "preferences"):
            for item in conv[kind]:
                totals[kind][1] += 1
                if any(_matches(r, item) for r in got[kind]):
                    totals[kind][0] += 1
                else:
                    misses[kind].append({"conversation": conv["id"], "expected": item, "got": got[kind]})
        said = conv["facts"] + conv["preferences"]
        for record in got["preferences"]:
            if not any(_matches(record, item) for item in said):
                false_prefs += 1
                false_in_empty += not conv["preferences"]
                misses["false_preferences"].append({"conversation": conv["id"], "record": record})
        unmatched_facts += sum(1 for r in got["facts"] if not any(_matches(r, i) for i in conv["facts"]))
    return {
        "semantic": {"recall": round(totals["facts"][0] / max(1, totals["facts"][1]), 3),
                     "found": totals["facts"][0], "expected": totals["facts"][1],
                     "unmatched_facts": unmatched_facts},
        "user_preference": {"recall": round(totals["preferences"][0] / max(1, totals["preferences"][1]), 3),
                            "found": totals["preferences"][0], "expected": totals["preferences"][1],
                            "false_preferences": false_prefs,
                            "in_conversations_without_preferences": false_in_empty},
        "_misses": misses,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="commit whose rules are the 'before' figures")
    parser.add_argument("--misses", action="store_true", help="also list what the current rules miss")
    args = parser.parse_args(argv)
    sets = {p.stem.removeprefix("extraction_"): json.loads(p.read_text())["conversations"]
            for p in sorted(DATA.glob("extraction_*.json"))}
    with tempfile.TemporaryDirectory() as tmp:
        before = rules_at(args.before, Path(tmp))
        after = load_rules(RULES, "strategies_after")
        report: dict = {"before_commit": args.before, "sets": {}}
        for name, conversations in sets.items():
            old, new = score(before, conversations), score(after, conversations)
            misses = new.pop("_misses")
            old.pop("_misses")
            report["sets"][name] = {"conversations": len(conversations), "before": old, "after": new}
            if args.misses:
                report["sets"][name]["after_misses"] = misses
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
