"""Reading an executed notebook: the values it recorded (helpers.record), and, for what is about display, its text."""
from __future__ import annotations

from typing import Any

from helpers.recording import recorded


def recorded_value(executed, name: str) -> Any:
    """The value the notebook recorded as `name`; an AssertionError naming the ones it did record if not."""
    values = recorded(executed)
    assert name in values, f"the notebook recorded no {name!r}; it recorded {sorted(values)}"
    return values[name]


def cell_text(executed, source_contains: str) -> str:
    """Everything the first code cell whose source contains `source_contains` showed, as text.

    For checks about what a reader sees (a table is shown, a message names the endpoint); values a check
    compares are recorded with helpers.record and read with recorded_value.
    """
    for cell in executed.cells:
        if cell.cell_type == "code" and source_contains in cell.source:
            parts = []
            for output in cell.get("outputs", []):
                if "text" in output:
                    parts.append(output["text"])
                for kind in ("text/plain", "text/html"):
                    if kind in output.get("data", {}):
                        parts.append(output["data"][kind])
            return "\n".join(parts)
    raise AssertionError(f"no code cell contains {source_contains!r}")
