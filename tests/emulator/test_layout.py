"""The emulator's layout rules (issue 9): settings from one module, small modules, thin responses, (account, region)."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

EMULATOR = Path(__file__).resolve().parents[2] / "emulator"
MODULES = sorted(p for p in EMULATOR.rglob("*.py") if "__pycache__" not in p.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _reads_environment(node: ast.AST) -> bool:
    """os.environ (read in any way) or os.getenv."""
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
            and node.attr in ("environ", "getenv", "environb"))


def _environment_reads(path: Path) -> list[str]:
    """The functions (or <module>) of this file that read os.environ or os.getenv."""
    tree = _tree(path)
    enclosing: dict[ast.AST, str] = {}
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                enclosing[node] = func.name  # outer functions are walked first: the innermost name wins
    return [enclosing.get(node, "<module>") for node in ast.walk(tree) if _reads_environment(node)]


def test_only_core_settings_reads_the_emulators_settings_from_the_environment():
    # The supervisor copies an allowlist of the emulator's environment into each agent's: that is not a setting.
    allowed = {("runtime/supervisor.py", "_environment")}
    found = {(path.relative_to(EMULATOR).as_posix(), where) for path in MODULES for where in _environment_reads(path)}
    elsewhere = {(module, where) for module, where in found if module != "core/settings.py"}
    assert elsewhere - allowed == set(), "read the setting in emulator/core/settings.py instead"
    assert ("core/settings.py", "_float_env") in found  # the check sees reads where they are


def test_no_emulator_module_is_over_500_lines_without_saying_why_at_its_top():
    too_long = []
    for path in MODULES:
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(_tree(path)) or ""
        if lines > 500 and "Longer than 500 lines because" not in doc:
            too_long.append(f"{path.relative_to(EMULATOR)} ({lines} lines)")
    assert not too_long, f"split these by job, or say at their top why not: {too_long}"


# What a responses.py needs is the request's parameters and the backend; these would mean it keeps state
# (locks, databases, files, processes) or reads settings, which belong in models and core/settings.
_STATE_OR_RULES = {"os", "sqlite3", "threading", "subprocess", "secrets", "shutil", "numpy"}


@pytest.mark.parametrize("path", sorted(EMULATOR.glob("*/responses.py")), ids=lambda p: p.parent.name)
def test_a_responses_module_parses_calls_the_backend_and_serialises_only(path):
    imported = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & _STATE_OR_RULES, (
        f"{path.relative_to(EMULATOR)} imports {sorted(imported & _STATE_OR_RULES)}: state and rules go in models")


def _backends():
    from emulator.bedrock.models import BedrockBackend
    from emulator.memory.models import MemoryBackend
    from emulator.runtime.images import ImageStore
    from emulator.runtime.models import RuntimeBackend
    from emulator.runtime.store import RuntimeStore

    return [MemoryBackend, RuntimeBackend, RuntimeStore, ImageStore, BedrockBackend]


def test_every_backend_takes_the_account_before_the_region():
    wrong = []
    for cls in _backends():
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            names = list(inspect.signature(fn).parameters)
            account = next((i for i, n in enumerate(names) if n in ("account", "account_id")), None)
            region = next((i for i, n in enumerate(names) if n in ("region", "region_name")), None)
            if account is not None and region is not None and account > region:
                wrong.append(f"{cls.__name__}.{name}{tuple(names)}")
    assert not wrong, f"moto keys state by account, then region: {wrong}"


def test_one_backend_failing_to_close_still_lets_the_others_close(caplog):
    from emulator.core.backend import Backend, close_all

    closed = []

    def broken():
        closed.append("broken")
        raise RuntimeError("disk gone")

    close_all([Backend("first", {}, close=lambda: closed.append("first")), Backend("broken", {}, close=broken),
               Backend("last", {}, close=lambda: closed.append("last"))])
    assert closed == ["last", "broken", "first"]  # newest first, and past the failure
    assert "broken backend" in caplog.text and "disk gone" in caplog.text
