"""`python -m proof [--profile short|long] [--only a,b]`: run the proof sections and print one JSON document."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from . import PROFILES, SECTIONS, Report


def run_section(name: str, profile) -> Report:
    module = importlib.import_module(f"proof.{name}")
    return module.run(profile).finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proof", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument("--only", default="", help="comma-separated section names (default: all): " + ", ".join(SECTIONS))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    profile = PROFILES[args.profile]
    started = time.time()
    sections = {}
    for name in names:
        print(f"proof: {name} ({profile.name})...", file=sys.stderr, flush=True)
        sections[name] = run_section(name, profile).as_dict()
    doc = {
        "profile": profile.name,
        "seconds": round(time.time() - started, 1),
        "ok": all(s["ok"] for s in sections.values()),
        "sections": sections,
    }
    print(json.dumps(doc, indent=2, default=str))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
