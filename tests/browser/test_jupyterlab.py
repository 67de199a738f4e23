"""05 and 07 in a real JupyterLab, driven in Debian's Chromium by Playwright, as an attendee meets them.

00-04 run first on this test's own emulator (papermill, as `make workshop` does); then JupyterLab starts
on 127.0.0.1 on a copy of notebooks/, and the browser runs 05 and 07 with Run All, types into the chat,
presses Send and Stop, and looks at what every output shows. Screenshots go to runs/screenshots/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import workshop as runner
from tests.support.emulator import ROOT, EmulatorProcess, free_port

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright cannot download its own browsers here
SCREENSHOTS = ROOT / "runs" / "screenshots"
COLUMN_PX = 1000  # the notebook column an output must fit
HELPERS_REPR = re.compile(r"<helpers\.|\b(?:Settings|Turn|AgentOutput|CommandResult)\(")
# The notebook in front: 05's tab stays open, hidden, while 07 runs.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


class Lab:
    """JupyterLab on 127.0.0.1 over a copy of the notebooks, and one Chromium page on it."""

    def __init__(self, root: Path, env: dict, log: Path):
        self.port, self.token = free_port(), "browser-test"
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
                "jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            args.append("--allow-root")
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(args, env=env, cwd=root, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("JupyterLab did not answer within 60 s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def run_all(page, lab: Lab, notebook: str, timeout: float = 240.0) -> None:
    """Open a notebook, Run All from the menu, and wait until every code cell has run."""
    page.goto(f"{lab.url}/lab/tree/{notebook}?token={lab.token}")
    page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=60_000)
    # The kernel is ready once the status bar names it idle; a Run All before that is lost.
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=60_000)
    started = time.monotonic()
    clicked = None
    while time.monotonic() - started < timeout:
        prompts = page.locator(f"{PANEL} .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        if prompts and all(re.search(r"\[\d+\]", p) for p in prompts):
            return
        if clicked is None or (time.monotonic() - clicked > 10 and all(p.strip() == "[ ]:" for p in prompts)):
            page.locator(f"{PANEL} .jp-Notebook .jp-Cell").first.click()  # the Run menu acts on the focused notebook
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                         has_text=re.compile(r"^Run All Cells$")).click()
            clicked = time.monotonic()
        error = page.locator(f"{PANEL} .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        if error.count():
            raise AssertionError(f"{notebook}: a cell raised: {error.first.inner_text()[:800]}")
        time.sleep(0.5)
    page.screenshot(path=str(SCREENSHOTS / f"{Path(notebook).stem}_timed_out.png"))
    raise AssertionError(f"{notebook}: cells still running after {timeout:.0f}s: {prompts}")


def outputs(page) -> list[dict]:
    """Each output's text and widths, read from the page."""
    return page.evaluate("""(panel) => [...document.querySelectorAll(panel + ' .jp-OutputArea-output')].map(el => {
        const cell = el.closest('.jp-CodeCell');
        const source = cell ? cell.querySelector('.jp-InputArea-editor').innerText : '';
        // A box inside the output may scroll on its own (the chat's history): count its content too.
        let width = el.scrollWidth;
        for (const child of el.querySelectorAll('*')) {
            if (child.clientWidth && child.scrollWidth > child.clientWidth + 1) width = Math.max(width, el.clientWidth + child.scrollWidth - child.clientWidth);
        }
        return {source: source.slice(0, 80), text: el.innerText, width: width, client: el.clientWidth};
    })""", PANEL)


def too_wide(page) -> list[str]:
    """Outputs that scroll sideways or are cut off in the notebook's column."""
    found = outputs(page)
    assert found and all(abs(o["client"] - COLUMN_PX) <= 40 for o in found), \
        f"the output column is not about {COLUMN_PX} px wide: {sorted({o['client'] for o in found})}"
    return [f"{o['source']!r}: {o['width']} px in {o['client']} px" for o in found
            if o["width"] > min(COLUMN_PX, o["client"]) + 1]


def helpers_reprs(page) -> list[str]:
    return [f"{o['source']!r}: {HELPERS_REPR.search(o['text']).group(0)}" for o in outputs(page)
            if HELPERS_REPR.search(o["text"])]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """00-04 run against a fresh emulator; JupyterLab serves a copy of notebooks/ with the same environment."""
    emulator = EmulatorProcess(tmp_path_factory.mktemp("browser-emulator"),
                               env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    state_dir, root = tmp_path_factory.mktemp("browser-state"), tmp_path_factory.mktemp("browser-notebooks")
    env = {**os.environ, "WORKSHOP_TARGET": "local", "AWS_ENDPOINT_URL": emulator.endpoint,
           "WORKSHOP_STATE_DIR": str(state_dir), "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-ws")}
    env.pop("AWS_REGION", None), env.pop("AWS_DEFAULT_REGION", None)
    for notebook in runner.discover(runner.NOTEBOOKS_DIR):
        shutil.copy(notebook, root / notebook.name)
    # Run All shows every cell: no windowing that would leave cells out of the page's DOM.
    settings = root / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No "get notified about Jupyter news?" toast over the outputs (and no request for news).
    notices = root / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)
    (notices / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    with pytest.MonkeyPatch.context() as patch:
        for name in ("WORKSHOP_TARGET", "AWS_ENDPOINT_URL", "WORKSHOP_STATE_DIR"):
            patch.setenv(name, env[name])
        patch.delenv("AWS_REGION", raising=False)
        patch.delenv("AWS_DEFAULT_REGION", raising=False)
        results = runner.run_notebooks(target="local", only=["00", "01", "02", "03", "04"],
                                       notebooks_dir=root, output_dir=tmp_path_factory.mktemp("browser-runs"),
                                       echo=lambda *args: None)
    failed = [f"{r.notebook}: {r.error}" for r in results if r.status != "ok"]
    if failed:
        emulator.stop()
        pytest.fail(f"the notebooks before 05 failed: {failed}", pytrace=False)
    server = Lab(root, env, root / "jupyterlab.log")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        # 1432 px wide with the file browser open: the notebook's output column is 1000 px.
        page = browser.new_page(viewport={"width": 1432, "height": 1000})
        try:
            yield server, page
        finally:
            browser.close()
            server.stop()
            emulator.stop()


@pytest.fixture(scope="module")
def notebook_05(lab):
    server, page = lab
    run_all(page, server, "05_invoke_agent.ipynb")
    page.screenshot(path=str(SCREENSHOTS / "05_invoke_agent.png"))
    for n, output in enumerate(page.locator(f"{PANEL} .jp-OutputArea-output").all()):
        output.screenshot(path=str(SCREENSHOTS / f"05_output_{n:02d}.png"))
    return page


@pytest.fixture(scope="module")
def notebook_07(lab, notebook_05):
    server, page = lab
    run_all(page, server, "07_chat.ipynb")
    page.screenshot(path=str(SCREENSHOTS / "07_chat_after_run_all.png"))
    return page


def _chat(page):
    """The last chat widget on the page (07 shows the same chat again at its end)."""
    return page.locator(f"{PANEL} .widget-vbox:has(input[placeholder^='Ask the agent'])").last


def _history_text(chat) -> str:
    return chat.locator(".widget-html").first.inner_text()


def test_05_outputs_fit_the_notebook_column(notebook_05):
    assert too_wide(notebook_05) == []


def test_05_shows_no_python_repr_of_a_helpers_object(notebook_05):
    assert helpers_reprs(notebook_05) == []


def test_05_answer_keeps_the_line_breaks_of_the_ls_output(notebook_05):
    texts = [o["text"] for o in outputs(notebook_05) if "Bash ls -la" in o["text"]]
    assert texts, "05 shows no answer that lists the workspace"
    # One line per file: the row of `hello.py` stands alone, as `ls -la` printed it.
    assert any(re.search(r"(?m)^-[rwx-]{9}.*\bhello\.py\s*$", t) for t in texts), texts[0][:600]
    # The follow-up's second question is answered too: the earlier request, quoted, in the same answer.
    assert any(re.search(r'Earlier in this conversation you asked[^\n]*\s*(?:1\.\s*)?"Create a file hello\.py', t)
               for t in texts), texts[0][-600:]


def test_07_after_run_all_the_chat_is_open_with_the_local_model_s_cues(notebook_07):
    chat = _chat(notebook_07)
    assert chat.locator("input[placeholder^='Ask the agent']").is_enabled()
    assert chat.locator("button", has_text="Send").is_enabled()
    history = _history_text(chat)
    assert "Create a file notes.md" in history  # the unattended demo message, in the same chat


def test_07_the_session_field_shows_its_whole_default_id(notebook_07):
    field = _chat(notebook_07).locator(".widget-text:has(label:has-text('session')) input")
    assert field.evaluate("el => el.scrollWidth <= el.clientWidth"), "the session id is cut off"


def test_07_progress_streams_in_before_the_answer_and_stop_answers(notebook_07):
    page, chat = notebook_07, _chat(notebook_07)
    chat.locator("input[placeholder^='Ask the agent']").fill("What files are in the workspace?")
    chat.locator("button", has_text="Send").click()
    listed = re.compile(r"(?m)^-[rwx-]{9} .*\bnotes\.md\s*$")  # the row of `ls -la` for 07's own file
    after, deadline = [], time.monotonic() + 90
    while time.monotonic() < deadline:
        shown = _history_text(chat)
        if "What files are in the workspace?" in shown:
            after.append(shown.split("What files are in the workspace?")[-1])
            if listed.search(after[-1]) and chat.locator("button", has_text="Send").is_enabled():
                break
        time.sleep(0.05)
    else:
        raise AssertionError(f"no answer in 90 s; the chat shows: {_history_text(chat)[-800:]}")
    streaming = [s for s in after if "working ..." in s and re.search(r"(?m)^> ", s)]
    assert streaming, f"no progress line was shown while the agent was still working: {after[:3]}"
    answer = after[-1]
    assert "Bash ls -la:" in answer and answer.count("Listing the workspace.") == 1, answer[-600:]
    chat.screenshot(path=str(SCREENSHOTS / "07_chat_answer.png"))

    chat.locator("input[placeholder^='Ask the agent']").fill("Create stopped.py that prints never")
    chat.locator("button", has_text="Send").click()
    chat.locator("button:not([disabled])", has_text="Stop").click(timeout=10_000)
    page.wait_for_function(
        "el => /Stopped, and the session|Stop came too late/.test(el.innerText)",
        arg=chat.locator(".widget-html").first.element_handle(), timeout=60_000)
    chat.screenshot(path=str(SCREENSHOTS / "07_chat_stopped.png"))
    assert chat.locator("input[placeholder^='Ask the agent']").is_enabled()


def test_07_draws_no_emoji_that_need_an_emoji_font(notebook_07):
    text = _history_text(_chat(notebook_07))
    assert not re.search("[\U0001F300-\U0001FAFF\u2139\u2600-\u27BF]", text), text[:400]


def test_07_outputs_fit_the_notebook_column(notebook_07):
    assert too_wide(notebook_07) == []


def test_07_shows_no_python_repr_of_a_helpers_object(notebook_07):
    assert helpers_reprs(notebook_07) == []
