"""Run the workshop's notebooks in order with papermill (what `make workshop` does) and summarise them.

Each notebook `notebooks/NN_*.ipynb` runs in a fresh kernel with cwd notebooks/ and WORKSHOP_TARGET /
AWS_ENDPOINT_URL in its environment; its executed copy goes to runs/. With TARGET=local the emulator
is started first (state in .workshop/emulator), or reused when one already answers. The run stops
at the first failing notebook and exits non-zero with the failing cell's one-line cause.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import aws, config
from .config import PROJECT_ROOT
from .errors import ConfigError

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "runs"
_NOTEBOOK_NAME = re.compile(r"^(\d\d)_[\w-]+\.ipynb$")


@dataclass
class NotebookRun:
    """One notebook's run: status is "ok", "failed" or "not run" (after an earlier failure)."""

    notebook: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    output: str | None = None


def discover(notebooks_dir: Path = NOTEBOOKS_DIR, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order; `only` keeps those whose number or name is listed."""
    found = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb") if _NOTEBOOK_NAME.match(p.name))
    if not only:
        return found
    wanted = [w.strip() for w in only if w.strip()]
    chosen = [p for p in found if any(p.name[:2] == w or p.stem == w or p.name == w for w in wanted)]
    unknown = [w for w in wanted if not any(p.name[:2] == w or p.stem == w or p.name == w for p in found)]
    if unknown:
        raise ConfigError(f"No notebook matches {', '.join(unknown)} in {notebooks_dir}.",
                          hint=f"Choose from: {', '.join(p.name[:2] for p in found) or '(none)'}.")
    return chosen


@contextlib.contextmanager
def _environment(values: dict[str, str | None]):
    """Set (or, for None, remove) environment variables for the kernels papermill starts, then restore."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def one_line_cause(exc: BaseException) -> str:
    """The failing cell's error as one line: `Name: message (cell In [N])`."""
    ename = getattr(exc, "ename", None)
    if ename:
        evalue = (getattr(exc, "evalue", "") or "").strip().splitlines()
        count = getattr(exc, "exec_count", None)
        where = f" (cell In [{count}])" if count is not None else ""
        return f"{ename}: {evalue[0] if evalue else ''}{where}"
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def run_notebooks(target: str | None = None, region: str | None = None, only: list[str] | None = None,
                  notebooks_dir: Path = NOTEBOOKS_DIR, output_dir: Path = RUNS_DIR,
                  cell_timeout: float = 1800.0, echo=print, inject_parameters: bool = True) -> list[NotebookRun]:
    """Run the notebooks in order, each in a fresh kernel; stop at the first failure.

    The target and region reach each kernel through its environment, and also as injected parameters
    (papermill's cell after the `parameters` cell). With `inject_parameters=False` the notebooks run
    exactly as stored, as a reader opening them would run them: the tests do that, so one run also
    proves the stored parameters work.
    """
    import papermill

    settings = config.load(target=target, region=region)
    notebooks = discover(notebooks_dir, only)
    if not notebooks:
        raise ConfigError(f"There are no notebooks NN_*.ipynb in {notebooks_dir}.", hint="Run from the repository.")
    env: dict[str, str | None] = {"WORKSHOP_TARGET": settings.target}
    if settings.is_local:
        health = aws.ensure_emulator(settings)
        echo(f"Emulator at {settings.endpoint_url} (pid {health.get('pid')}, state in {health.get('state_dir')})")
        env["AWS_ENDPOINT_URL"] = settings.endpoint_url
    else:
        echo(f"Target aws, region {settings.region}")
        env["AWS_ENDPOINT_URL"] = None  # real AWS: no endpoint left over from a local run
    env["AWS_REGION"] = settings.region
    parameters = {"TARGET": settings.target, "REGION": settings.region}

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    failed = False
    with _environment(env):
        for index, path in enumerate(notebooks, 1):
            if failed:
                runs.append(NotebookRun(path.name, "not run"))
                continue
            out = output_dir / path.name
            echo(f"[{index}/{len(notebooks)}] {path.name} ...")
            start = time.monotonic()
            try:
                papermill.execute_notebook(
                    str(path), str(out), parameters=parameters if inject_parameters else None, cwd=str(path.parent),
                    kernel_name="python3",
                    progress_bar=False, log_output=False, execution_timeout=cell_timeout,
                )
            except Exception as exc:  # papermill's own and the kernel's (dead kernel, timeout): report, stop
                runs.append(NotebookRun(path.name, "failed", time.monotonic() - start, one_line_cause(exc), str(out)))
                failed = True
            else:
                runs.append(NotebookRun(path.name, "ok", time.monotonic() - start, None, str(out)))
            echo(f"    {runs[-1].status} in {runs[-1].seconds:.1f}s" + (f": {runs[-1].error}" if runs[-1].error else ""))
    (output_dir / "summary.json").write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")
    return runs


def summary_table(runs: list[NotebookRun]) -> str:
    """A plain-text table: notebook, seconds, status, and the error of a failed one."""
    rows = [("notebook", "seconds", "status")] + [(r.notebook, f"{r.seconds:.1f}", r.status) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) if i != 1 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = sum(r.seconds for r in runs)
    lines.append(f"total {total:.1f}s")
    for r in runs:
        if r.error:
            lines.append(f"{r.notebook} failed: {r.error}")
            lines.append(f"  executed copy: {r.output}")
    return "\n".join(lines)


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["workshop", *sys.argv[1:]]))
