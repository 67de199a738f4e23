"""The runner behind `make workshop`: order, fresh kernels with the target's environment, stop at the first failure."""
from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.__main__ import main
from helpers.workshop import NotebookRun, discover, summary_table


def _notebook(path, *sources):
    nb = new_notebook(cells=[new_markdown_cell("# test")] + [new_code_cell(s) for s in sources])
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "00_first.ipynb", 'TARGET = "aws"',
              "import os\nprint('target', TARGET)\nprint('env', os.environ['WORKSHOP_TARGET'], "
              "os.environ['AWS_ENDPOINT_URL'])\nprint('cwd', os.getcwd())")
    _notebook(folder / "01_fails.ipynb", 'TARGET = "aws"',
              "from helpers.errors import StackError\n"
              "raise StackError('Stack s is in ROLLBACK_COMPLETE.', hint='Delete it and deploy again.')")
    _notebook(folder / "02_after.ipynb", 'TARGET = "aws"', "print('should not run')")
    (folder / "notes.ipynb").write_text("{}")  # not numbered: never run
    return folder


def _outputs(path) -> list[dict]:
    return [o for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_discover_finds_numbered_notebooks_in_order(notebooks):
    assert [p.name for p in discover(notebooks)] == ["00_first.ipynb", "01_fails.ipynb", "02_after.ipynb"]
    assert [p.name for p in discover(notebooks, ["02", "00_first"])] == ["00_first.ipynb", "02_after.ipynb"]


def test_an_unknown_selection_is_a_one_line_error(notebooks, local_env, capsys):
    assert main(["workshop", "--notebooks", str(notebooks), "--only", "00,42"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "No notebook matches 42" in err and "00, 01, 02" in err


@pytest.mark.slow
def test_runner_stops_at_the_first_failure_with_its_one_line_cause(notebooks, local_env, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["workshop", "--notebooks", str(notebooks), "--output", str(out)]) == 1
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["notebook"], r["status"]) for r in summary] == [
        ("00_first.ipynb", "ok"), ("01_fails.ipynb", "failed"), ("02_after.ipynb", "not run")]
    cause = "StackError: Stack s is in ROLLBACK_COMPLETE. Delete it and deploy again. (cell In [3])"
    assert summary[1]["error"] == cause
    assert cause in printed and "notebook" in printed and "seconds" in printed
    assert not (out / "02_after.ipynb").exists()

    # A fresh kernel per notebook, in notebooks/, with the target in its parameters and environment.
    first = "".join(o.get("text", "") for o in _outputs(out / "00_first.ipynb"))
    assert "target local" in first
    assert f"env local {local_env.endpoint}" in first
    assert f"cwd {notebooks}" in first

    # The WorkshopError shows as one line, and papermill still recorded the cell as failed.
    [error] = [o for o in _outputs(out / "01_fails.ipynb") if o["output_type"] == "error"]
    assert error["ename"] == "StackError"
    assert error["traceback"] == ["StackError: Stack s is in ROLLBACK_COMPLETE. Delete it and deploy again."]


@pytest.mark.slow
def test_only_runs_the_selected_notebooks(notebooks, local_env, tmp_path):
    out = tmp_path / "runs"
    assert main(["workshop", "--notebooks", str(notebooks), "--output", str(out), "--only", "00"]) == 0
    assert [r["notebook"] for r in json.loads((out / "summary.json").read_text())] == ["00_first.ipynb"]


def test_summary_table_has_a_row_per_notebook_and_the_failure():
    table = summary_table([NotebookRun("00_a.ipynb", "ok", 1.25), NotebookRun("01_b.ipynb", "failed", 2.0, "X: y")])
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "seconds", "status"]
    assert lines[2].split() == ["00_a.ipynb", "1.2", "ok"]
    assert "01_b.ipynb failed: X: y" in table


def test_an_aws_error_in_a_notebook_shows_as_one_line_and_still_fails_the_cell(tmp_path, local_env):
    folder = tmp_path / "nb"
    folder.mkdir()
    _notebook(folder / "00_aws.ipynb", 'TARGET = "local"',
              "import helpers\nimport boto3\nfrom botocore.exceptions import ClientError\n"
              "raise ClientError({'Error': {'Code': 'AccessDeniedException', 'Message': 'not allowed'}},"
              " 'CreateMemory')")
    out = tmp_path / "runs"
    assert main(["workshop", "--notebooks", str(folder), "--output", str(out)]) == 1
    [error] = [o for o in _outputs(out / "00_aws.ipynb") if o["output_type"] == "error"]
    assert error["ename"] == "ClientError"
    assert error["traceback"] == ["AWS refused CreateMemory (AccessDeniedException): not allowed "
                                  "Your credentials lack a permission this step needs; the message names it."]
