"""helpers.tables: tables fit where they are shown (a 1000 px notebook column, a terminal) and keep every value whole."""
from __future__ import annotations

import re

import pandas as pd
from IPython.core.interactiveshell import InteractiveShell

from helpers import tables

LONG = "bedrock-agentcore:CreateEvent, bedrock-agentcore:ListEvents, " * 5 + "the end"
ROWS = pd.DataFrame({"policy": ["agent-runtime"] * 3, "sid": ["A", "B", "C"],
                     "actions": [LONG, "s3:GetObject", "line one\nline two"]})


def test_html_is_left_aligned_wraps_long_values_and_keeps_line_breaks():
    shown = tables.html(ROWS)
    cells = re.findall(r"<td style='([^']*)'>", shown)
    assert cells and all("text-align:left" in c and "white-space:pre-wrap" in c for c in cells)
    # Short words stay whole; a run longer than a column can hold (an ARN) may break anywhere.
    arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/ClaudeCodeAgentMemory-abc"
    styles = {text: style for style, text in
              re.findall(r"<td style='([^']*)'>([^<]*)</td>", tables.html(pd.DataFrame({"r": [arn, "s3:Get"], "a": ["a", "b"], "b": ["c", "d"], "c": ["e", "f"]})))}
    assert "overflow-wrap:anywhere" in styles[arn] and "overflow-wrap:break-word" in styles["s3:Get"]
    assert LONG.rstrip() in shown.replace("&#x27;", "'") and "..." not in shown  # whole, not cut
    assert "line one\nline two" in shown  # a real line break, which pre-wrap shows as one
    assert "max-width:100%" in shown


def test_html_leaves_out_a_meaningless_index_and_says_a_repeated_value_once():
    shown = tables.html(ROWS)
    assert ">0<" not in shown and ">2<" not in shown  # no 0..n row numbers
    assert shown.count("agent-runtime") == 1 and "policy: agent-runtime" in shown
    assert ">condition<" not in tables.html(ROWS.assign(condition=""))  # a column of blanks says nothing
    named = tables.html(ROWS.set_index("sid"))
    assert ">A<" in named and ">sid<" in named  # an index that names rows is kept


def test_text_fits_the_width_and_keeps_every_value_whole():
    shown = tables.text(ROWS, width=60)
    assert max(len(line) for line in shown.splitlines()) <= 60
    assert "the end" in shown and "line two" in shown
    assert "".join(shown.split()).count("bedrock-agentcore:CreateEvent") == 5


def test_a_notebook_shows_every_dataframe_through_html():
    shell = InteractiveShell.instance()
    try:
        tables.use_readable_tables()
        data, _ = shell.display_formatter.format(ROWS)
        assert data["text/html"] == tables.html(ROWS)
    finally:
        InteractiveShell.clear_instance()
