"""The page with accounts: the local single user, sign-in, roles, idle expiry, the audit tab
(AppTest, fake model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import audit, auth
from dashboard.auth import Accounts
from dashboard.history import HistoryStore

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PASSWORD = "correct horse 42"


@pytest.fixture
def start(monkeypatch, tmp_path, fake_predictor):
    """start(auth=None) -> a running AppTest; the store is at tmp_path/data."""
    import model.inference

    monkeypatch.setenv("DERMSEV_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DERMSEV_MODEL", raising=False)
    monkeypatch.delenv(auth.AUTH_ENV, raising=False)
    monkeypatch.setattr(model.inference, "load_model", lambda model_dir=None: fake_predictor)
    monkeypatch.setattr(auth, "THROTTLE", auth.Throttle())

    def run(mode=None):
        if mode:
            monkeypatch.setenv(auth.AUTH_ENV, mode)
        st.cache_resource.clear()
        at = AppTest.from_file(APP, default_timeout=30)
        at.run()
        assert not at.exception, at.exception
        return at

    yield run
    st.cache_resource.clear()


def _store(tmp_path):
    return HistoryStore(tmp_path / "data")


def _sign_in(at, name, password):
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    at.button[0].click()  # the form's submit button
    at.run()


def test_localhost_is_one_local_user_and_says_so(start, tmp_path):
    at = start()
    assert any("Single local user, no sign-in" in i.value for i in at.sidebar.info)
    assert [t.label for t in at.tabs] == ["Assessment", "History", "Audit", "Users"]


def test_sign_in_required_when_configured(start, tmp_path):
    Accounts(_store(tmp_path).engine).add("dr_lee", PASSWORD, "clinician", actor="test")
    at = start("local")
    assert at.title[0].value == "Sign in" and not at.tabs
    _sign_in(at, "dr_lee", "wrong password!")
    assert [e.value for e in at.error] == [auth.WRONG]
    _sign_in(at, "ghost", PASSWORD)
    assert [e.value for e in at.error] == [auth.WRONG]  # same words: no hint the name is unknown
    _sign_in(at, "dr_lee", PASSWORD)
    assert at.title[0].value == "Skin severity assessment"
    assert "sign_in_password" not in at.session_state
    assert [t.label for t in at.tabs] == ["Assessment", "History"]  # no audit for a clinician
    assert any("Signed in as **dr_lee** (clinician)" in c.value for c in at.sidebar.caption)
    trail = audit.entries(_store(tmp_path).engine)
    assert list(trail.action) == ["sign-in", "sign-in-failed", "sign-in-failed", "user-add"]


def test_reviewer_reads_history_only(start, tmp_path, make_assessment):
    store = _store(tmp_path)
    store.save(make_assessment(pseudonym="PT-0042"), assessor="dr_lee")
    Accounts(store.engine).add("rev", PASSWORD, "reviewer", actor="test")
    at = start("local")
    _sign_in(at, "rev", PASSWORD)
    assert [t.label for t in at.tabs] == ["History"]
    # Opening the page shows no patient, and logs no view, until one is chosen.
    assert not at.dataframe and at.selectbox(key="history_patient").value is None
    assert audit.entries(store.engine, action="view").empty
    at.selectbox(key="history_patient").set_value("PT-0042").run()
    assert at.dataframe and not [b for b in at.button if b.key == "erase"]
    views = audit.entries(store.engine, action="view")
    assert list(views.actor) == ["rev"] and list(views.pseudonym) == ["PT-0042"]
    at.run()  # a rerun is not another view
    assert len(audit.entries(store.engine, action="view")) == 1


def test_idle_session_expires(start, tmp_path, monkeypatch):
    from dashboard import view_auth

    Accounts(_store(tmp_path).engine).add("dr_lee", PASSWORD, "admin", actor="test")
    monkeypatch.setenv(auth.IDLE_ENV, "15")
    clock = [1000.0]
    monkeypatch.setattr(view_auth, "clock", lambda: clock[0])
    at = start("local")
    _sign_in(at, "dr_lee", PASSWORD)
    clock[0] += 14 * 60  # active within the limit: still signed in
    at.run()
    assert [t.label for t in at.tabs] == ["Assessment", "History", "Audit", "Users"]
    clock[0] += 15 * 60 + 1
    at.run()
    assert at.title[0].value == "Sign in"
    assert any("Signed out after 15 minutes without activity" in i.value for i in at.info)
    assert audit.entries(_store(tmp_path).engine).action.iloc[0] == "sign-out"


def test_save_export_and_the_audit_tab(start, tmp_path, downloads):
    from test_app import fill, png  # the page's own form helpers

    at = start()
    fill(at, [("a.png", png(0), "image/png")])
    at.button(key="save").click()
    at.run()
    store = _store(tmp_path)
    [visit] = store.visits("PT-0042")
    assert visit.assessor == "local"
    csv_button = next(b for b in at.download_button if b.label == "CSV summary")
    csv_button.click()
    at.run()
    trail = audit.entries(store.engine)
    # newest first: the CSV download, the History tab showing PT-0042 after the save, the save
    assert list(trail.action) == ["export", "view", "save"]
    assert (trail.visit_id.iloc[0], trail.detail.iloc[0], trail.actor.iloc[0]) == (visit.id, "csv", "local")
    next(b for b in at.download_button if b.label == "FHIR bundle").click()
    at.run()
    assert audit.entries(store.engine).detail.iloc[0] == "fhir"
    shown = next(d for d in at.dataframe if "action" in d.value.columns).value
    assert set(shown.action) >= {"save", "view"}
    assert "dermsev-audit.csv" in downloads


def test_full_disk_at_save_is_a_page_message(start, tmp_path, monkeypatch):
    import errno

    from test_app import fill, png

    from dashboard import history

    at = start()
    fill(at, [("a.png", png(0), "image/png")])

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(history, "clean_image", full)
    at.button(key="save").click()
    at.run()
    assert not at.exception
    assert any(e.value.startswith("Could not save the visit: the disk that holds the patient store is full")
               for e in at.error)  # fmt: skip
    assert _store(tmp_path).visits("PT-0042") == []


def test_read_only_store_is_a_page_message(start, tmp_path, monkeypatch):
    path = _store(tmp_path).path  # an existing store, then opened read-only
    monkeypatch.setenv("DERMSEV_DATABASE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")
    at = start()
    assert any("the patient store's folder is read-only" in e.value for e in at.error)
    assert not at.tabs


class FakeIdentity(dict):
    """Stands in for st.user: what the identity provider said."""

    @property
    def is_logged_in(self) -> bool:
        return "email" in self


def test_oidc_sign_in_needs_an_account(start, tmp_path, monkeypatch):
    identity = FakeIdentity()
    monkeypatch.setattr(st, "user", identity)
    at = start("oidc")
    assert at.title[0].value == "Sign in"
    assert [b.label for b in at.button] == ["Sign in with your clinic account"]
    identity["email"] = "eve@elsewhere.org"  # the provider knows her; dermsev does not
    at.run()
    assert any("eve@elsewhere.org has no access to dermsev" in e.value for e in at.error)
    assert not at.tabs
    Accounts(_store(tmp_path).engine).add("ana@clinic.org", None, "reviewer", actor="test")
    identity["email"] = "ana@clinic.org"
    at.run()
    assert [t.label for t in at.tabs] == ["History"]
    assert any("Signed in as **ana@clinic.org** (reviewer)" in c.value for c in at.sidebar.caption)
    trail = audit.entries(_store(tmp_path).engine)
    assert (trail.action.iloc[0], trail.actor.iloc[0], trail.detail.iloc[0]) == ("sign-in", "ana@clinic.org", "oidc")


def test_admin_manages_accounts_on_the_page(start, tmp_path):
    at = start()  # the local user is an admin
    at.text_input(key="new_user_name").input("dr_lee")
    at.selectbox(key="new_user_role").set_value("clinician")
    at.text_input(key="new_user_password").input("short")
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert any(e.value == "A password needs at least 10 characters." for e in at.error)
    at.text_input(key="new_user_name").input("dr_lee")
    at.text_input(key="new_user_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert any(s.value == "Added dr_lee (clinician)." for s in at.success)
    accounts = Accounts(_store(tmp_path).engine)
    assert accounts.sign_in("dr_lee", PASSWORD).role == "clinician"
    at.button(key="toggle_user").click()
    at.run()
    assert accounts.list()[0]["disabled"] and at.button(key="toggle_user").label == "Enable"
    at.button(key="toggle_user").click()
    at.run()
    at.text_input(key="reset_password").input("a different passphrase")
    at.button(key="set_password").click()
    at.run()
    assert accounts.sign_in("dr_lee", "a different passphrase").name == "dr_lee"
    trail = audit.entries(_store(tmp_path).engine)
    changes = trail[trail.actor == "local"]
    assert list(changes.action)[::-1] == ["user-add", "user-disable", "user-enable", "user-password"]
