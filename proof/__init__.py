"""The proof suite: the emulator and the agent attacked with load, faults and bad input, reported as figures.

Each section is a module here with `run(profile) -> Report`; `python -m proof` (`make proof`) runs them all
and prints one JSON document. tests/proof runs the short profile of every section inside `make test`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Profile:
    """How hard a run pushes: `short` fits inside `make test`, `long` is for people (still bounded in time)."""

    name: str
    # A scale factor sections apply to their own counts (examples per operation, attendees, trials, ...).
    scale: int
    # The wall-clock budget of one section, in seconds; a section stops generating work when it is spent.
    section_seconds: float


PROFILES = {
    "short": Profile("short", scale=1, section_seconds=60.0),
    "long": Profile("long", scale=10, section_seconds=600.0),
}


@dataclass
class Report:
    """One section's figures, and the problems that make it fail (a figure over its limit, a lost write)."""

    section: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def expect_zero(self, name: str, value: int, detail: str = "") -> None:
        """Record a figure that must be 0 (5xx, hangs, lost writes, escapes); a non-zero one is a problem."""
        self.figures[name] = value
        if value:
            self.problems.append(f"{self.section}: {name} = {value}" + (f" ({detail})" if detail else ""))

    def expect_equal(self, name: str, value: Any, expected: Any, detail: str = "") -> None:
        self.figures[name] = value
        if value != expected:
            self.problems.append(f"{self.section}: {name} = {value}, expected {expected}" + (f" ({detail})" if detail else ""))

    def finish(self) -> "Report":
        self.seconds = round(time.monotonic() - self.started, 1)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": self.seconds, "figures": self.figures, "problems": self.problems}


# The sections, in the order they run: a module name under proof/ each.
SECTIONS: tuple[str, ...] = ("fuzz_emulator", "faults_emulator", "load", "model_faults", "agent_input", "agent_faults")
