"""Accounts, roles and sign-in (no streamlit: the page's widgets are in dashboard/view_auth.py).

Who must sign in: nobody when the server listens on this computer only (server.address
localhost, 127.0.0.1 or ::1) and DERMSEV_AUTH is unset: the page then has one local user,
LOCAL_USER, with every right, and says so. Sign-in is required when the server listens beyond
localhost (0.0.0.0, an interface's address, or no address: all interfaces) or when
DERMSEV_AUTH is `local` (accounts below) or `oidc` (Streamlit's st.login; the account, named
by the identity's e-mail, must still be added here to get a role).

Accounts live in the store's users table, passwords as argon2id hashes (never logged).
Failed sign-ins are slowed per user name, whether or not the name exists, and the message
never says which it was.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select

from dashboard import audit
from dashboard.store import tables as t
from dashboard.store.engine import write

AUTH_ENV = "DERMSEV_AUTH"
IDLE_ENV = "DERMSEV_IDLE_MINUTES"
MODES = ("local", "oidc")
LOOPBACK = ("localhost", "127.0.0.1", "::1")
ROLES = ("clinician", "admin", "reviewer")
RIGHTS = {  # what each role may do on the page
    "clinician": frozenset({"assess", "save", "export", "history"}),
    "admin": frozenset({"assess", "save", "export", "history", "audit", "users", "models"}),
    "reviewer": frozenset({"history"}),
}
NAME = re.compile(r"[A-Za-z0-9._@+-]{1,254}")  # also keeps names inert in the page's markdown
OIDC_HASH = "!oidc"  # an account that signs in through the identity provider only
MIN_PASSWORD = 10
FREE_FAILURES = 3  # failed sign-ins in a row before each further try must wait
MAX_WAIT_S = 300
WRONG = "Wrong user name or password."
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, right: str) -> bool:
        return right in RIGHTS.get(self.role, frozenset())


LOCAL_USER = User("local", "admin")


class SignInError(ValueError):
    """A refused sign-in; the message is safe to show (it never says whether the name exists)."""


def sign_in_mode(address: str | None, setting: str | None = None,
                 headers: dict | None = None) -> str | None:  # fmt: skip
    """None (no sign-in: local single user), "local" or "oidc".

    address: the server's server.address ("" or None: all interfaces);
    setting: $DERMSEV_AUTH (none/local/oidc; `none` cannot turn sign-in off beyond localhost);
    headers: the browser's request headers: a request relayed by a proxy (X-Forwarded-For,
    Forwarded) or for a host name other than localhost needs sign-in even on a loopback address.
    """
    setting = (os.environ.get(AUTH_ENV, "") if setting is None else setting).strip().lower()
    if setting and setting not in (*MODES, "none"):
        raise ValueError(f"{AUTH_ENV} must be one of none, local, oidc; got {setting!r}")
    if setting in MODES:
        return setting
    return None if _local(address, headers or {}) else "local"


def _local(address: str | None, headers: dict) -> bool:
    if (address or "").strip() not in LOOPBACK:
        return False
    lower = {k.lower(): v for k, v in headers.items()}
    if "x-forwarded-for" in lower or "forwarded" in lower:
        return False
    host = lower.get("host", "localhost").strip()
    name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
    return name in LOOPBACK


def idle_limit_s() -> float:
    """Seconds without any interaction after which a signed-in session ends (default 15 min)."""
    minutes = float(os.environ.get(IDLE_ENV, "") or 15)
    if minutes <= 0:
        raise ValueError(f"{IDLE_ENV} must be a positive number of minutes, got {minutes:g}")
    return minutes * 60


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


class Throttle:
    """Failed sign-ins per user name (existing or not), in this process: after FREE_FAILURES
    in a row, each try must wait 2, 4, 8 ... s (at most MAX_WAIT_S) after the last failure."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._failed: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, name: str) -> float:
        with self._lock:
            n, last = self._failed.get(name.lower(), (0, 0.0))
        if n < FREE_FAILURES:
            return 0.0
        return max(0.0, min(2.0 ** (n - FREE_FAILURES + 1), MAX_WAIT_S) - (self.clock() - last))

    def failed(self, name: str) -> None:
        with self._lock:
            n, _ = self._failed.get(name.lower(), (0, 0.0))
            self._failed[name.lower()] = (n + 1, self.clock())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failed.pop(name.lower(), None)


THROTTLE = Throttle()


class Accounts:
    """The users table of a store's database (engine)."""

    def __init__(self, engine: Engine, throttle: Throttle = THROTTLE) -> None:
        self.engine = engine
        self.throttle = throttle

    def add(self, name: str, password: str | None, role: str, actor: str) -> None:
        """A new account; password None = an OIDC account (signs in through the provider)."""
        name = name.strip()
        if not NAME.fullmatch(name):
            raise ValueError("a user name is 1-254 letters, digits or . _ @ + - (an e-mail fits)")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        secret = OIDC_HASH if password is None else _hasher.hash(check_password(password))
        with write(self.engine) as conn:
            if conn.execute(select(t.users.c.id).where(t.users.c.username == name)).first():
                raise ValueError(f"user {name} exists already")
            conn.execute(t.users.insert().values(username=name, password_hash=secret, role=role,
                                                 disabled=False, created_at=audit.now(), failed=0))  # fmt: skip
            conn.execute(t.audit.insert().values(at=audit.now(), actor=actor, action="user-add",
                                                 detail=f"{name} ({role}{', OIDC' if password is None else ''})"))  # fmt: skip

    def list(self) -> list[dict]:
        """Every account: name, role, disabled, sign-in (password/oidc), created, failed."""
        u = t.users
        with self.engine.connect() as conn:
            rows = conn.execute(select(u).order_by(u.c.username)).mappings().all()
        return [{"name": r["username"], "role": r["role"], "disabled": bool(r["disabled"]),
                 "sign-in": "oidc" if r["password_hash"] == OIDC_HASH else "password",
                 "created": r["created_at"], "failed sign-ins": r["failed"]} for r in rows]  # fmt: skip

    def set_disabled(self, name: str, disabled: bool, actor: str) -> None:
        self._update(name, actor, "user-disable" if disabled else "user-enable", disabled=disabled)

    def reset_password(self, name: str, password: str, actor: str) -> None:
        self._update(name, actor, "user-password",
                     password_hash=_hasher.hash(check_password(password)), failed=0)  # fmt: skip

    def _update(self, name: str, actor: str, action: str, **values) -> None:
        with write(self.engine) as conn:
            done = conn.execute(t.users.update().where(t.users.c.username == name).values(**values))
            if done.rowcount != 1:
                raise ValueError(f"no user {name}")
            conn.execute(t.audit.insert().values(at=audit.now(), actor=actor, action=action, detail=name))

    def sign_in(self, name: str, password: str) -> User:
        """The user, or SignInError (same message for a wrong password, an unknown or disabled
        name; slowed after repeated failures)."""
        name = name.strip()
        wait = self.throttle.wait_s(name)
        if wait > 0:
            raise SignInError(f"Too many failed sign-ins for this name: try again in {wait:.0f} s.")
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == name)).mappings().first()
        ok = False
        try:  # hash even for an unknown name, so the answer takes as long either way
            ok = _hasher.verify(row["password_hash"] if row and row["password_hash"] != OIDC_HASH else _DUMMY,
                                password) and row is not None and not row["disabled"]  # fmt: skip
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            self.throttle.failed(name)
            with write(self.engine) as conn:
                if row is not None:
                    conn.execute(t.users.update().where(t.users.c.id == row["id"])
                                 .values(failed=t.users.c.failed + 1, failed_at=audit.now()))  # fmt: skip
                conn.execute(t.audit.insert().values(at=audit.now(), actor=name[:254],
                                                     action="sign-in-failed", detail=""))  # fmt: skip
            raise SignInError(WRONG)
        self.throttle.succeeded(name)
        with write(self.engine) as conn:
            conn.execute(t.users.update().where(t.users.c.id == row["id"]).values(failed=0))
            conn.execute(t.audit.insert().values(at=audit.now(), actor=name, action="sign-in", detail="password"))
        return User(name, row["role"])

    def oidc_user(self, email: str) -> User | None:
        """The role of an identity the provider vouched for (None: not added, or disabled)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.users).where(t.users.c.username == email)).mappings().first()
        if row is None or row["disabled"]:
            return None
        return User(email, row["role"])
