"""Browser-test fixtures: a real `streamlit run` server and Debian's chromium via Playwright.

The server gets its own free port, a temporary data folder and a model directory: the bundled
demo model when it exists, else the tiny random model from tests/conftest.py. Chromium is
Debian's (/usr/bin/chromium, or $DERMSEV_CHROMIUM); `playwright install` is never needed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "model" / "assets" / "demo"
CHROMIUM = os.environ.get("DERMSEV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SERVER_START_TIMEOUT = 90  # s; `streamlit run` imports torch on 2 busy cores
SERVER_LOGS: list[Path] = []  # the running servers' logs, printed when a test fails


def _tests_helpers():
    """tests/conftest.py as a plain module (pytest imports every conftest as `conftest`)."""
    name = "dermsev_tests_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def demo_model_ready() -> bool:
    return (DEMO_DIR / "config.json").is_file() and (DEMO_DIR / "model.safetensors").is_file()


@pytest.fixture(scope="session")
def e2e_model_dir(tmp_path_factory) -> str:
    """$DERMSEV_E2E_MODEL, else the bundled demo model ("", as `make run` serves it), else a
    tiny random MODEL_DIR."""
    if os.environ.get("DERMSEV_E2E_MODEL"):
        return os.environ["DERMSEV_E2E_MODEL"]
    if demo_model_ready():
        return ""
    out = tmp_path_factory.mktemp("e2e_model") / "tiny"
    return str(_tests_helpers().write_tiny_model(out))


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium; missing is a failure (CI installs it in .ci/run), never a skip."""
    found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if not found:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium "
            "(`apt-get install -y chromium`, as .ci/run does) or DERMSEV_CHROMIUM=/path/to/chromium.",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as resp:
            return resp.status == 200 and resp.read().strip() == b"ok"
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started (its process group, by PID), politely then firmly."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def e2e_work(tmp_path_factory) -> Path:
    """The server's folder: its log, and its data folder `data` (the patient store)."""
    return tmp_path_factory.mktemp("e2e_server")


@pytest.fixture(scope="session")
def streamlit_server(e2e_work, e2e_model_dir):
    """`streamlit run dashboard/app.py` on a free localhost port; yields its base URL."""
    work = e2e_work
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DERMSEV_MODEL": e2e_model_dir,
        "DERMSEV_DATA": str(work / "data"),
        "HF_HUB_OFFLINE": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    streamlit = ROOT / ".venv" / "bin" / "streamlit"
    cmd = [str(streamlit)] if streamlit.exists() else [sys.executable, "-m", "streamlit"]
    cmd += [
        "run", "dashboard/app.py", "--server.port", str(port), "--server.headless", "true",
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log_path = work / "streamlit.log"
    SERVER_LOGS.append(log_path)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        start = time.monotonic()
        deadline = start + SERVER_START_TIMEOUT
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.poll() is not None else "not healthy"
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(
                    f"streamlit server {why} after {time.monotonic() - start:.0f} s; log:\n{tail}",
                    pytrace=False,
                )
            time.sleep(0.5)  # polling the health endpoint, not waiting on the page
        yield url
    finally:
        _stop(proc)
        SERVER_LOGS.remove(log_path)


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser, request, tmp_path):
    """A 1400x1000 page; on a failed test, a screenshot and the server log's tail are printed."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            shot = tmp_path / "failure.png"
            pg.screenshot(path=str(shot))
            print(f"page at failure: {shot}")
            for log in SERVER_LOGS:
                print(f"--- {log} (tail) ---\n{log.read_text(errors='replace')[-4000:]}")
    finally:
        context.close()


@pytest.fixture(scope="session")
def skin_photo(tmp_path_factory) -> Path:
    """One synthetic close-up skin photo (256 px PNG, all four signs present) from model.synth.generator."""
    from model.synth.generator import generate

    ds = generate(tmp_path_factory.mktemp("e2e_photo") / "ds", n=1, size=256, seed=5, workers=1)
    return next((ds / "images").glob("*.png"))
