"""DataFrames for people: chosen columns in a fixed order, readable times, long text kept whole."""
from __future__ import annotations

import datetime as dt
from typing import Iterable


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


def show_full_text():
    """Pandas display options so that notebook tables show whole sentences, not `...`."""
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)
    pd.set_option("display.width", 200)
