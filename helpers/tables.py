"""DataFrames for people: chosen columns in a fixed order, readable times, and tables that fit where they are shown.

In a notebook a table must fit a 1000 px column: left-aligned, long values wrapped (never cut to `...`),
line breaks kept, and no 0..n index where it means nothing. On a terminal it must fit the terminal's
width. `html()` and `text()` render a DataFrame that way; `use_readable_tables()` makes every DataFrame
a notebook shows render through `html()`.
"""
from __future__ import annotations

import datetime as dt
import html as _html
import shutil
import textwrap
from typing import Iterable

# Inline styles, not a stylesheet: JupyterLab keeps style attributes of trusted output, and they
# override its own `td { text-align: right }` without a selector fight.
_TABLE = "border-collapse:collapse;width:auto;max-width:100%;table-layout:auto;margin:0"
_CELL = ("text-align:left;vertical-align:top;white-space:pre-wrap;overflow-wrap:break-word;"
         "padding:2px 8px;border-bottom:1px solid #e0e0e0")
# A cell whose longest word is longer than this (an ARN, a digest) may break anywhere; shorter words stay
# whole. `anywhere` on every cell would let the browser squeeze short columns into broken words, and
# on none would let one ARN push the table wider than the column. The budget is shared by the columns.
_WORDS_BUDGET = 120
_HEAD = _CELL + ";font-weight:bold;border-bottom:1px solid #9e9e9e"
_CAPTION = "caption-side:top;text-align:left;color:#555;padding:0 0 4px 0;white-space:pre-wrap;overflow-wrap:anywhere"


def frame(rows: Iterable[dict], columns: list[str], *, sort_by: str | list[str] | None = None,
          ascending: bool = True):
    """A DataFrame of `rows` with exactly `columns`, in that order (missing values are empty)."""
    import pandas as pd

    df = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)
    for column in columns:
        if len(df) and df[column].map(lambda v: isinstance(v, dt.datetime)).all():
            df[column] = pd.to_datetime(df[column], utc=True).dt.tz_convert(None)
    # Sort on full precision, then show whole seconds: rows a millisecond apart keep their order.
    if sort_by is not None and len(df):
        df = df.sort_values(sort_by, ascending=ascending, kind="stable")
    for column in df.columns:
        if str(df[column].dtype).startswith("datetime64"):
            df[column] = df[column].dt.floor("s")
    return df.reset_index(drop=True)


def _meaningful_index(df) -> bool:
    """False for the 0..n-1 a DataFrame gets by default: it numbers rows and says nothing about them."""
    import pandas as pd

    index = df.index
    return not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None)


def _cell(value) -> str:
    """One value as a person reads it: no `NaN`/`None`, times to the second, lists as comma lists."""
    import pandas as pd

    if value is None or (not isinstance(value, (list, tuple, dict, set)) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S") + ("" if value.tzinfo is None else f" {value.tzname()}")
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def constant_columns(df, keep: Iterable[str] = ()) -> dict[str, str]:
    """Columns that hold the same text on every row (of two or more): shown once, above the table."""
    if len(df) < 2:
        return {}
    found = {}
    for column in df.columns:
        # A yes/no column is read row by row (is every row ok?): it stays, however alike its rows are.
        if column in keep or str(df[column].dtype) == "bool":
            continue
        values = {_cell(v) for v in df[column]}
        if len(values) == 1:
            only = values.pop()
            if only:
                found[str(column)] = only
    return found


def _empty_columns(df) -> set[str]:
    """Columns with nothing on any row: a header over blanks says nothing."""
    if not len(df):
        return set()
    return {str(c) for c in df.columns if all(_cell(v) == "" for v in df[c])}


def html(df, *, caption: str | None = None, fold_constant: bool = True) -> str:
    """`df` as an HTML table that fits a notebook column: left-aligned, wrapped, line breaks kept.

    A column with one value on every row is said once in the caption instead of on each row; the
    index is shown only when it is not the default 0..n-1.
    """
    folded = constant_columns(df) if fold_constant else {}
    empty = _empty_columns(df)
    # Keep at least one column: a table of only constant columns reads best as it is.
    if len(folded) + len(empty) >= len(df.columns):
        folded, empty = {}, set()
    lines = [caption] if caption else []
    lines += [f"{name}: {value}" for name, value in folded.items()]
    columns = [c for c in df.columns if str(c) not in folded and str(c) not in empty]
    show_index = _meaningful_index(df)
    head = ([f"<th style='{_HEAD}'>{_html.escape(str(df.index.name or ''))}</th>"] if show_index else []) + \
        [f"<th style='{_HEAD}'>{_html.escape(str(c))}</th>" for c in columns]
    body = []
    longest_word = max(12, _WORDS_BUDGET // max(len(columns) + show_index, 1))
    for label, row in zip(df.index, df[columns].itertuples(index=False, name=None)):
        cells = ([f"<th style='{_HEAD};border-bottom:1px solid #e0e0e0'>{_html.escape(_cell(label))}</th>"]
                 if show_index else [])
        cells += [f"<td style='{_cell_style(text, longest_word)}'>{_html.escape(text)}</td>"
                  for text in map(_cell, row)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f"<tr><td style='{_CELL};color:#777' colspan='{max(len(head), 1)}'>(none)</td></tr>")
    cap = (f"<caption style='{_CAPTION}'>{'<br>'.join(_html.escape(line) for line in lines)}</caption>"
           if lines else "")
    return (f"<table class='workshop-table' style='{_TABLE}'>{cap}<thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _cell_style(text: str, longest_word: int) -> str:
    if max((len(word) for word in text.split()), default=0) > longest_word:
        return _CELL.replace("overflow-wrap:break-word", "overflow-wrap:anywhere")
    return _CELL


def text(df, width: int | None = None, *, indent: str = "  ", fold_constant: bool = True) -> str:
    """`df` as plain text no wider than `width` (the terminal's, by default): long values wrap onto more lines."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    folded = constant_columns(df) if fold_constant else {}
    empty = _empty_columns(df)
    if len(folded) + len(empty) >= len(df.columns):
        folded, empty = {}, set()
    columns = [c for c in df.columns if str(c) not in folded and str(c) not in empty]
    header = [str(c) for c in columns]
    rows = [[_cell(v) for v in row] for row in df[columns].itertuples(index=False, name=None)]
    if _meaningful_index(df):
        header = [str(df.index.name or "")] + header
        rows = [[_cell(label)] + row for label, row in zip(df.index, rows)]
    out = [f"{indent}{name}: {value}" for name, value in folded.items()]
    if not rows:
        return "\n".join(out + [f"{indent}(none)"])
    natural = [max(len(line) for cell in [h] + [r[i] for r in rows] for line in (cell.splitlines() or [""]))
               for i, h in enumerate(header)]
    widths = _fit(natural, [len(h) for h in header], width - len(indent) - 2 * (len(header) - 1))
    for row in [header, ["-" * w for w in widths]] + rows:
        wrapped = [_wrap(cell, w) for cell, w in zip(row, widths)]
        for n in range(max(len(lines) for lines in wrapped)):
            parts = [(lines[n] if n < len(lines) else "").ljust(w) for lines, w in zip(wrapped, widths)]
            out.append((indent + "  ".join(parts)).rstrip())
    return "\n".join(out)


def _fit(natural: list[int], headers: list[int], room: int) -> list[int]:
    """Column widths that add up to at most `room`: the widest columns give way first."""
    widths = list(natural)
    floor = [max(min(h, 12), 8) for h in headers]  # narrower than this, a column is unreadable
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floor[i])
        if widths[widest] <= floor[widest]:
            break  # cannot shrink further: the terminal is narrower than the table can be
        widths[widest] -= 1
    return widths


def _wrap(cell: str, width: int) -> list[str]:
    lines = []
    for line in cell.splitlines() or [""]:
        lines += textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False,
                               replace_whitespace=False, drop_whitespace=True) or [""]
    return lines


def use_readable_tables() -> None:
    """Every DataFrame this notebook shows renders through `html()`: whole, wrapped, left-aligned."""
    import pandas as pd

    # The plain-text form too shows whole values, for papermill's copies and the terminal.
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.width", 200)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, html)

