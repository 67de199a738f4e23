"""Walk every notebook, 00 to 99, in JupyterLab in headless Chromium, as an attendee does, and screenshot each.

Not a test (the browser test checks 05 and 07 in `make test`): a tool for looking at the whole workshop as
a person sees it. `.venv/bin/python -m tests.browser.walk` starts its own emulator and JupyterLab on free
ports, runs each notebook with Run All, types two messages into 07's chat, and saves screenshots of the
notebook column, screen by screen, under runs/screenshots/walk/. It prints, per notebook, the outputs that
are wider than the column and the Python reprs of helpers objects it saw.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from helpers import workshop as runner
from tests.browser.test_jupyterlab import (CHROMIUM, PANEL, SCREENSHOTS, Lab, _chat, _history_text, helpers_reprs,
                                           run_all, too_wide)
from tests.support.emulator import EmulatorProcess

OUT = SCREENSHOTS / "walk"


def screens(page, stem: str) -> int:
    """Screenshots of the notebook panel from top to bottom, one screen each; how many were taken."""
    scroller = f"{PANEL} .jp-WindowedPanel-outer"
    height = page.evaluate(f"() => document.querySelector('{scroller}').scrollHeight")
    view = page.evaluate(f"() => document.querySelector('{scroller}').clientHeight")
    n, top = 0, 0
    while True:
        page.evaluate(f"(y) => document.querySelector('{scroller}').scrollTo(0, y)", top)
        time.sleep(0.3)
        page.screenshot(path=str(OUT / f"{stem}_{n:02d}.png"))
        n += 1
        top += view - 80
        if top >= height - view // 2 or n >= 30:  # the notebook ends in a blank half screen
            return n


def chat_by_hand(page) -> None:
    chat = _chat(page)
    for message in ("What files are in the workspace?", "What did I ask you before?"):
        chat.locator("input[placeholder^='Ask the agent']").fill(message)
        chat.locator("button", has_text="Send").click()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if message in _history_text(chat) and chat.locator("button", has_text="Send").is_enabled():
                break
        chat.screenshot(path=str(OUT / f"07_chat_{message.split()[1].lower()}.png"))


def main() -> int:
    import tempfile

    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="walk-"))
    emulator = EmulatorProcess(base / "emulator", env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    root = base / "notebooks"
    root.mkdir()
    env = {**os.environ, "WORKSHOP_TARGET": "local", "AWS_ENDPOINT_URL": emulator.endpoint,
           "WORKSHOP_STATE_DIR": str(base / "state"), "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-ws")}
    env.pop("AWS_REGION", None), env.pop("AWS_DEFAULT_REGION", None)
    notebooks = runner.discover(runner.NOTEBOOKS_DIR)
    for notebook in notebooks:
        shutil.copy(notebook, root / notebook.name)
    for name, doc in (("notebook-extension/tracker", {"windowingMode": "none"}),
                      ("apputils-extension/notification", {"fetchNews": "false"})):
        path = root / ".lab-settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    server = Lab(root, env, base / "jupyterlab.log")
    findings = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1432, "height": 1000})
            for notebook in notebooks:
                started = time.monotonic()
                run_all(page, server, notebook.name, timeout=300)
                if notebook.name.startswith("07"):
                    chat_by_hand(page)
                findings[notebook.stem] = {"seconds": round(time.monotonic() - started, 1),
                                           "too_wide": too_wide(page), "reprs": helpers_reprs(page),
                                           "screens": screens(page, notebook.stem)}
                print(notebook.stem, json.dumps(findings[notebook.stem]), flush=True)
            browser.close()
    finally:
        server.stop()
        emulator.stop()
    bad = {k: v for k, v in findings.items() if v["too_wide"] or v["reprs"]}
    print(f"screenshots in {OUT}; notebooks with findings: {sorted(bad) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
