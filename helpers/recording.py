"""Values a notebook records for whoever runs it (tests, CI), shown to the reader as usual.

`record(name, value)` displays `value` as the cell would (its HTML, Markdown or text) and adds a JSON
copy under a media type of its own, so a test reads the value back from the executed notebook instead
of scraping rendered text. recommenders' notebooks do the same through scrapbook's glue.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

MEDIA_TYPE = "application/vnd.workshop.record+json"


def record(name: str, value: Any, *, says: str | None = None) -> None:
    """Show `value` and record it as `name`; outside a notebook, print its text.

    `says` is what the reader sees instead, for a value that is data for a check (a bool, a pair of
    flags) and would show as a bare `True` or `(True, False)`.
    """
    if not isinstance(name, str) or not name.isidentifier():
        from .errors import WorkshopError

        raise WorkshopError(f"record name {name!r} is not a plain name.", hint="Use letters, digits and '_'.")
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # helpers copied into a project without Jupyter
        print(says if says is not None else str(value))
        return
    shell = get_ipython()
    if shell is None:
        print(says if says is not None else str(value))
        return
    # The notebook's own formatters, so a recorded value looks as it would at the end of a cell
    # (a DataFrame through helpers.tables, a result through its _repr_html_ or _repr_markdown_).
    bundle = {"text/plain": says} if says is not None else shell.display_formatter.format(value)[0]
    bundle[MEDIA_TYPE] = {"name": name, "value": jsonable(value)}
    display(bundle, raw=True)

def jsonable(value: Any) -> Any:
    """`value` as JSON data: tables as lists of rows, dataclasses as dicts, enums as their values."""
    if hasattr(value, "to_json") and hasattr(value, "columns"):  # a DataFrame, without importing pandas here
        return json.loads(value.to_json(orient="records", date_format="iso"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        value = value.value
    return json.loads(json.dumps(value, default=str))


def recorded(notebook: dict) -> dict[str, Any]:
    """Every value an executed notebook (nbformat's dict) recorded, by name; a later record of a name wins."""
    values: dict[str, Any] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            doc = output.get("data", {}).get(MEDIA_TYPE)
            if doc is not None:
                values[doc["name"]] = doc["value"]
    return values
