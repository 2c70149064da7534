"""Sign-in on the page (widgets only; the rules are in dashboard/auth.py), and the admin's
audit tab."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import audit, auth
from dashboard.auth import LOCAL_USER, Accounts, SignInError, User
from dashboard.store.errors import STORE_ERRORS, describe

clock = time.monotonic  # idle time is measured with this (tests move it)

LOCAL_NOTE = ("**Single local user, no sign-in.** This server listens on this computer only "
              "(localhost): anyone using a browser here sees and edits every patient. To serve "
              "a clinic network, sign-in is switched on (README: Accounts).")  # fmt: skip


def current_user(store) -> User:
    """The signed-in user. Draws the sign-in form and stops the page until someone signs in;
    ends a session idle for longer than $DERMSEV_IDLE_MINUTES (default 15)."""
    mode = auth.sign_in_mode(st.get_option("server.address"), headers=dict(st.context.headers or {}))
    if mode is None:
        st.sidebar.info(LOCAL_NOTE)
        return LOCAL_USER
    s, now = st.session_state, clock()
    user: User | None = s.get("auth_user")
    if user is not None and now - s.get("auth_seen", now) > auth.idle_limit_s():
        audit.record(store.engine, user.name, "sign-out", detail="idle")
        s.auth_user = user = None
        s.auth_note = f"Signed out after {auth.idle_limit_s() / 60:g} minutes without activity."
        if mode == "oidc":
            st.logout()
    if user is None:
        user = _oidc(store) if mode == "oidc" else _password_form(store)
        if user is None:
            st.stop()
        s.auth_user, s.auth_seen = user, now
        s.pop("sign_in_password", None)  # the typed password is not kept in the session
        st.rerun()  # draw the page afresh, without the sign-in form
    s.auth_seen = now
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            audit.record(store.engine, user.name, "sign-out")
            s.auth_user = None
            if mode == "oidc":
                st.logout()
            st.rerun()
    return user


def _password_form(store) -> User | None:
    st.title("Sign in")
    if note := st.session_state.pop("auth_note", None):
        st.info(note)
    try:
        if not Accounts(store.engine).list():
            st.info("This server needs sign-in (it listens beyond localhost, or DERMSEV_AUTH is "
                    "set) and has no accounts yet: an administrator adds one on the server with "
                    "`dermsev users add NAME --role admin`.")  # fmt: skip
    except STORE_ERRORS as exc:
        st.error(describe(exc, "read the accounts"))
    with st.form("sign_in"):
        name = st.text_input("User name", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        if not st.form_submit_button("Sign in", type="primary"):
            return None
    try:
        return Accounts(store.engine).sign_in(name, password)
    except SignInError as exc:
        st.error(str(exc))
    except STORE_ERRORS as exc:
        st.error(describe(exc, "check your password"))
    return None


def _oidc(store) -> User | None:
    if not st.user.is_logged_in:
        st.title("Sign in")
        st.button("Sign in with your clinic account", on_click=st.login, type="primary")
        return None
    email = str(st.user.get("email") or "")
    user = Accounts(store.engine).oidc_user(email)
    if user is None:
        st.error(f"{email or 'This account'} has no access to dermsev. Ask an administrator to "
                 "add it (`dermsev users add EMAIL --oidc --role clinician`).")  # fmt: skip
        st.button("Sign out", on_click=st.logout)
        return None
    audit.record(store.engine, user.name, "sign-in", detail="oidc")
    return user


def audit_tab(store, user: User) -> None:
    """The audit trail for an administrator: filter, read, download (the download is audited)."""
    c = st.columns(3)
    actor = c[0].text_input("User", key="audit_actor").strip()
    action = c[1].selectbox("Action", ["", *audit.ACTIONS], key="audit_action",
                            format_func=lambda a: a or "any")  # fmt: skip
    who = c[2].text_input("Patient pseudonym", key="audit_patient").strip()
    try:
        trail = audit.entries(store.engine, actor=actor, action=action, pseudonym=who)
    except STORE_ERRORS as exc:
        st.error(describe(exc, "read the audit trail"))
        return
    if trail.empty:
        st.info("No entries" + (" match these filters." if actor or action or who else " yet."))
        return
    st.caption(f"{len(trail)} entries, newest first. The trail is append-only: nobody, an "
               "administrator included, can change or delete an entry.")  # fmt: skip
    st.dataframe(trail, hide_index=True)
    st.download_button("Download the audit trail (CSV)", audit.to_csv(trail), "dermsev-audit.csv",
                       mime="text/csv", key="audit_csv", on_click=audit.record,
                       args=(store.engine, user.name, "export"),
                       kwargs={"detail": f"audit trail, {len(trail)} entries"})  # fmt: skip


def record_export(store, user: User, pseudonym: str, fmt: str) -> None:
    """A download button's on_click: the export, with the visit saved by then (if any)."""
    audit.record(store.engine, user.name, "export", visit_id=st.session_state.get("saved_visit"),
                 pseudonym=pseudonym, detail=fmt)  # fmt: skip


def users_tab(store, user: User) -> None:
    """Accounts for an administrator: list, add, disable or enable, set a new password (the
    same operations as `dermsev users`, audited the same way)."""
    accounts = Accounts(store.engine)
    if note := st.session_state.pop("account_note", None):
        st.success(note)
    rows = accounts.list()
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.info("No accounts yet.")
    with st.form("add_user", clear_on_submit=True):
        c = st.columns([1.5, 1, 1.5, 1.5])
        name = c[0].text_input("User name (or e-mail for OIDC)", key="new_user_name")
        role = c[1].selectbox("Role", auth.ROLES, key="new_user_role")
        password = c[2].text_input("Password (10+ characters)", type="password", key="new_user_password")
        oidc = c[3].checkbox("Signs in through the clinic's provider (OIDC), no password", key="new_user_oidc")
        if st.form_submit_button("Add user"):
            _account_change(lambda: accounts.add(name, None if oidc else password, role, actor=user.name),
                            f"Added {name} ({role}).")  # fmt: skip
    if not rows:
        return
    c = st.columns([1.5, 1, 1.5, 1])
    who = c[0].selectbox("Account", [r["name"] for r in rows], key="manage_user")
    disabled = next(r["disabled"] for r in rows if r["name"] == who)
    if c[1].button("Enable" if disabled else "Disable", key="toggle_user"):
        _account_change(lambda: accounts.set_disabled(who, not disabled, actor=user.name),
                        f"{who} {'enabled' if disabled else 'disabled'}.")  # fmt: skip
    new = c[2].text_input("New password", type="password", key="reset_password")
    if c[3].button("Set password", key="set_password"):
        _account_change(lambda: accounts.reset_password(who, new, actor=user.name),
                        f"New password set for {who}.")  # fmt: skip


def _account_change(change, done: str) -> None:
    try:
        change()
    except ValueError as exc:
        st.error(str(exc)[:1].upper() + str(exc)[1:] + ".")
        return
    except STORE_ERRORS as exc:
        st.error(describe(exc, "change the account"))
        return
    st.session_state.account_note = done
    st.rerun()  # redraw the table with the change
