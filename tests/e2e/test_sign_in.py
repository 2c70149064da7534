"""A server listening beyond localhost asks for sign-in, in a real browser: `streamlit run` with
--server.address 0.0.0.0, one account made beforehand, a wrong password, then the right one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.auth import WRONG, Accounts
from dashboard.history import HistoryStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse 42"


def _server_helpers():
    """tests/e2e/conftest.py as a plain module (pytest imports every conftest as `conftest`)."""
    name = "dermsev_e2e_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def open_server(tmp_path, e2e_model_dir):
    """`streamlit run` on all interfaces, with an account dr_lee in its store; yields its URL."""
    helpers = _server_helpers()
    Accounts(HistoryStore(tmp_path / "data").engine).add("dr_lee", PASSWORD, "clinician", actor="test")
    port = helpers._free_port()
    env = {**os.environ, "DERMSEV_MODEL": e2e_model_dir, "DERMSEV_DATA": str(tmp_path / "data"),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}  # fmt: skip
    env.pop("DERMSEV_AUTH", None)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
         "--server.address", "0.0.0.0", "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not helpers._healthy(url):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.5)  # polling the health endpoint
        yield url
    finally:
        helpers._stop(proc)
        log.close()


def test_beyond_localhost_sign_in_is_required(page, open_server):
    page.goto(open_server)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=120_000)
    expect(page.locator(".st-key-pseudonym")).to_have_count(0)  # no patient form before sign-in
    page.locator(".st-key-sign_in_name input").fill("dr_lee")
    page.locator(".st-key-sign_in_password input").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(WRONG)).to_be_visible(timeout=60_000)
    page.locator(".st-key-sign_in_password input").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".st-key-pseudonym input")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Signed in as")).to_be_visible()
    expect(page.get_by_role("tab", name="Audit")).to_have_count(0)  # a clinician
