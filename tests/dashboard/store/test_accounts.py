"""Accounts, sign-in and the audit trail, on SQLite and PostgreSQL (fixture `make_store`)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dashboard import audit, auth
from dashboard.auth import Accounts, SignInError, Throttle

PASSWORD = "correct horse 42"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def accounts(make_store):
    clock = Clock()
    acc = Accounts(make_store().engine, throttle=Throttle(clock))
    acc.clock = clock
    return acc


def test_add_list_disable_reset(accounts):
    accounts.add("dr_lee", PASSWORD, "clinician", actor="cli:root")
    accounts.add("ana@clinic.org", None, "reviewer", actor="cli:root")
    assert [(u["name"], u["role"], u["sign-in"], u["disabled"]) for u in accounts.list()] == [
        ("ana@clinic.org", "reviewer", "oidc", False), ("dr_lee", "clinician", "password", False)]
    with accounts.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users WHERE username = 'dr_lee'")).scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.sign_in("dr_lee", PASSWORD) == auth.User("dr_lee", "clinician")
    accounts.set_disabled("dr_lee", True, actor="cli:root")
    with pytest.raises(SignInError, match="^Wrong user name or password.$"):
        accounts.sign_in("dr_lee", PASSWORD)
    accounts.set_disabled("dr_lee", False, actor="cli:root")
    accounts.reset_password("dr_lee", "a new long passphrase", actor="cli:root")
    with pytest.raises(SignInError, match="^Wrong user name or password.$"):
        accounts.sign_in("dr_lee", PASSWORD)
    assert accounts.sign_in("dr_lee", "a new long passphrase").role == "clinician"
    actions = list(audit.entries(accounts.engine).action)[::-1]
    assert actions == ["user-add", "user-add", "sign-in", "user-disable", "sign-in-failed",
                       "user-enable", "user-password", "sign-in-failed", "sign-in"]  # fmt: skip


def test_bad_accounts_refused(accounts):
    accounts.add("dr_lee", PASSWORD, "clinician", actor="t")
    with pytest.raises(ValueError, match="user dr_lee exists already"):
        accounts.add("dr_lee", PASSWORD, "admin", actor="t")
    with pytest.raises(ValueError, match="role must be one of clinician, admin, reviewer"):
        accounts.add("x", PASSWORD, "root", actor="t")
    with pytest.raises(ValueError, match="at least 10 characters"):
        accounts.add("y", "short", "clinician", actor="t")
    with pytest.raises(ValueError, match="no user ghost"):
        accounts.reset_password("ghost", PASSWORD, actor="t")
    for odd in ("<b>dr</b>", "dr lee", "x" * 255, "[a](http://x)"):
        with pytest.raises(ValueError, match="a user name is 1-254 letters, digits or"):
            accounts.add(odd, PASSWORD, "clinician", actor="t")
    sql = "'; DROP TABLE users; --"  # a sign-in name is only ever a bound parameter
    with pytest.raises(SignInError, match="^Wrong user name or password.$"):
        accounts.sign_in(sql, PASSWORD)
    assert [u["name"] for u in accounts.list()] == ["dr_lee"]
    assert audit.entries(accounts.engine).actor.iloc[0] == sql  # recorded verbatim


def test_wrong_password_and_unknown_name_look_the_same_and_are_slowed(accounts):
    accounts.add("dr_lee", PASSWORD, "clinician", actor="t")
    messages = set()
    for name in ("dr_lee", "nobody"):
        for _ in range(auth.FREE_FAILURES):
            with pytest.raises(SignInError) as err:
                accounts.sign_in(name, "guess guess guess")
            messages.add(str(err.value))
        # the next try waits, even with the right password, and for a name that does not exist
        with pytest.raises(SignInError, match="Too many failed sign-ins for this name: try again in 2 s"):
            accounts.sign_in(name, PASSWORD)
    assert messages == {auth.WRONG}
    accounts.clock.t += 2.5
    assert accounts.sign_in("dr_lee", PASSWORD).name == "dr_lee"
    with pytest.raises(SignInError, match=auth.WRONG):
        accounts.sign_in("nobody", PASSWORD)
    with pytest.raises(SignInError, match="try again in 4 s"):  # doubling
        accounts.sign_in("nobody", PASSWORD)


def test_oidc_identity_needs_an_account(accounts):
    assert accounts.oidc_user("eve@elsewhere.org") is None
    accounts.add("ana@clinic.org", None, "admin", actor="t")
    assert accounts.oidc_user("ana@clinic.org") == auth.User("ana@clinic.org", "admin")
    with pytest.raises(SignInError, match=auth.WRONG):  # no password sign-in for it
        accounts.sign_in("ana@clinic.org", auth.OIDC_HASH)


@pytest.mark.parametrize(("address", "setting", "mode"), [
    ("localhost", "", None), ("127.0.0.1", "none", None), ("::1", "", None),
    ("0.0.0.0", "", "local"), ("", "", "local"), (None, "", "local"), ("10.0.0.5", "none", "local"),
    ("localhost", "local", "local"), ("localhost", "oidc", "oidc"), ("0.0.0.0", "OIDC", "oidc"),
])  # fmt: skip
def test_sign_in_required_beyond_localhost_or_when_configured(address, setting, mode):
    assert auth.sign_in_mode(address, setting) == mode


@pytest.mark.parametrize(("headers", "mode"), [
    ({"Host": "localhost:8501"}, None), ({"host": "127.0.0.1"}, None), ({"Host": "[::1]:8501"}, None),
    ({"Host": "dermsev.clinic.example"}, "local"), ({"Host": "10.0.0.5:8501"}, "local"),
    ({"Host": "localhost:8501", "X-Forwarded-For": "10.0.0.9"}, "local"),
    ({"Host": "localhost", "Forwarded": "for=10.0.0.9"}, "local"),
])  # fmt: skip
def test_a_proxied_request_needs_sign_in_on_loopback(headers, mode):
    """A reverse proxy on the same machine makes a localhost server reachable from the network."""
    assert auth.sign_in_mode("127.0.0.1", "", headers) == mode


def test_ill_settings(monkeypatch):
    with pytest.raises(ValueError, match="DERMSEV_AUTH must be one of none, local, oidc"):
        auth.sign_in_mode("localhost", "ldap")
    monkeypatch.setenv(auth.IDLE_ENV, "0")
    with pytest.raises(ValueError, match="positive number of minutes"):
        auth.idle_limit_s()
    monkeypatch.setenv(auth.IDLE_ENV, "2.5")
    assert auth.idle_limit_s() == 150


def test_roles():
    assert auth.User("r", "reviewer").may("history") and not auth.User("r", "reviewer").may("save")
    assert auth.User("c", "clinician").may("save") and not auth.User("c", "clinician").may("audit")
    assert auth.LOCAL_USER.may("audit") and auth.LOCAL_USER.may("save")


def test_audit_is_append_only_and_verbatim(make_store, make_assessment):
    store = make_store()
    visit = store.save(make_assessment(), assessor="dr_lee")
    odd = "O'Brien \"x\"; DROP TABLE visits; -- <script>alert(1)</script> " + "é" * 10_000
    audit.record(store.engine, "dr_lee", "export", visit_id=visit, pseudonym="PT-0001", detail=odd)
    audit.record(store.engine, "=cmd|' /C calc'!A0", "view", pseudonym="PT-0001")
    store.delete_patient("PT-0001", actor="admin")
    trail = audit.entries(store.engine)
    assert list(trail.action) == ["delete", "view", "export", "save"]
    assert trail.detail.iloc[2] == odd
    assert trail.visit_id.isna().tolist() == [True, True, False, False] and trail.visit_id.iloc[3] == visit
    assert trail.actor.iloc[3] == "dr_lee" and trail.detail.iloc[0] == f"erased 1 visit(s): {visit}"
    assert list(audit.entries(store.engine, action="export").detail) == [odd]
    csv = audit.to_csv(trail).decode()
    assert "'=cmd|" in csv and "\n=cmd" not in csv
    for sql in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(sql))
    assert len(audit.entries(store.engine)) == 4
    with pytest.raises(ValueError, match="audit action must be one of"):
        audit.record(store.engine, "x", "tamper")
