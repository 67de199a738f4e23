"""Every notebook keeps the workshop's conventions: parameters of literals, helpers only, no outputs stored."""
from __future__ import annotations

import ast

import nbformat
import pytest

from helpers.workshop import NOTEBOOKS_DIR, discover

NOTEBOOKS = discover(NOTEBOOKS_DIR)
REQUIRED_PARAMETERS = {"TARGET", "REGION", "STACK_NAME"}


def _read(path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _parse(cell, path):
    source = cell.source
    assert not source.lstrip().startswith(("%", "!")), f"{path.name}: shell or magic cell: {source[:60]!r}"
    return ast.parse(source, filename=path.name)


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return request.param, _read(request.param)


# Parameters the environment can also set, and how helpers.config.load reads them: each must default to None
# in the cell, or its literal would win over the variable (and over WORKSHOP_PREFIX).
ENVIRONMENT_PARAMETERS = {"TARGET": "target", "REGION": "region", "STACK_NAME": "stack_name",
                          "MEMORY_NAME": "memory_name", "MEMORY_ID_PARAMETER": "memory_id_parameter",
                          "RUNTIME_NAME": "runtime_name", "MODEL_ID": "model_id", "PREFIX": "prefix"}


def test_every_parameter_the_environment_can_set_defaults_to_none_and_reaches_config(notebook):
    path, nb = notebook
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in _parse(cell, path).body}
    for name in ENVIRONMENT_PARAMETERS.keys() & values.keys():
        assert values[name] is None, f"{path.name}: {name} = {values[name]!r} would override its environment variable"
    loads = [c.source for c in _code_cells(nb) if "config.load(" in c.source]
    assert loads, f"{path.name}: never builds its settings with config.load"
    for name in ENVIRONMENT_PARAMETERS.keys() & values.keys():
        assert f"{ENVIRONMENT_PARAMETERS[name]}={name}" in loads[0], f"{path.name}: {name} never reaches config.load"


def test_notebooks_are_numbered_and_found():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["00", "01"]
    assert len({p.name[:2] for p in NOTEBOOKS}) == len(NOTEBOOKS), "two notebooks share a number"


def test_notebook_opens_with_a_title_and_runs_on_python3(notebook):
    path, nb = notebook
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), path.name
    assert nb.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(nb)


def test_notebook_has_a_parameters_cell_of_literals_only(notebook):
    path, nb = notebook
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    cell = tagged[0]
    assert cell.cell_type == "code"
    names = set()
    for node in _parse(cell, path).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"{path.name}: parameters cell may only assign names: {ast.unparse(node)}"
        ast.literal_eval(node.value)  # raises for anything but a literal
        names.add(node.targets[0].id)
    assert REQUIRED_PARAMETERS <= names, f"{path.name}: parameters lack {REQUIRED_PARAMETERS - names}"
    # Right after the imports cell, so papermill's injected values precede every use.
    code = _code_cells(nb)
    assert code[1] is cell, f"{path.name}: the parameters cell must be the code cell after the imports"


def test_notebook_imports_only_from_helpers_and_first(notebook):
    path, nb = notebook
    code = _code_cells(nb)
    first = _parse(code[0], path).body
    assert first and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in first), \
        f"{path.name}: the first code cell holds the imports, and only them"
    for cell in code:
        for node in ast.walk(_parse(cell, path)):
            if isinstance(node, ast.ImportFrom):
                assert node.module == "helpers" or (node.module or "").startswith("helpers."), \
                    f"{path.name}: imports from {node.module}; notebooks call helpers only"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] == "helpers", f"{path.name}: imports {alias.name}"
            elif isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
                pytest.fail(f"{path.name}: touches sys.path; helpers is on the venv's path already")


def test_notebook_has_no_writefile_magic_or_polling(notebook):
    path, nb = notebook
    for cell in _code_cells(nb):
        assert "%%writefile" not in cell.source and "sys.path" not in cell.source, path.name
        tree = _parse(cell, path)
        for node in ast.walk(tree):
            assert not isinstance(node, ast.While), f"{path.name}: polls in a cell; helpers.waiters does that"
            if isinstance(node, ast.Attribute) and node.attr == "sleep":
                pytest.fail(f"{path.name}: sleeps in a cell; helpers.waiters does the waiting")


def test_notebook_is_stored_without_outputs(notebook):
    path, nb = notebook
    for cell in _code_cells(nb):
        assert cell.get("outputs") == [], f"{path.name}: stored with outputs; clear them before committing"
        assert cell.get("execution_count") is None, f"{path.name}: stored with execution counts"
