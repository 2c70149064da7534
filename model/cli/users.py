"""`dermsev users add|list|disable|enable|reset-password`: the dashboard's accounts.

Works on the store the server uses ($DERMSEV_DATA, $DERMSEV_DATABASE_URL). Passwords are read
from the terminal without echo (or, with --password-stdin, one line of standard input), hashed
with argon2id and never printed or logged. Every change goes into the audit trail as
"cli:<login name>".
"""

from __future__ import annotations

import getpass
import sys

from model.errors import DermsevError

ROLES = ("clinician", "admin", "reviewer")  # dashboard.auth.ROLES; checked there too


def add_parser(sub) -> None:
    p = sub.add_parser("users", help="the dashboard's accounts (sign-in, roles)")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = acts.add_parser("add", help="a new account")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="clinician")
    add.add_argument("--oidc", action="store_true",
                     help="signs in through the identity provider (st.login); NAME is its e-mail")  # fmt: skip
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    acts.add_parser("list", help="every account and its role")
    for name, what in (("disable", "stop an account signing in"), ("enable", "allow it again")):
        acts.add_parser(name, help=what).add_argument("name")
    reset = acts.add_parser("reset-password", help="set a new password")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise DermsevError("the two passwords differ")
    return first


def run(args) -> None:
    from dashboard.auth import Accounts
    from dashboard.history import HistoryStore

    accounts = Accounts(HistoryStore().engine)
    actor = f"cli:{getpass.getuser()}"
    try:
        if args.action == "list":
            rows = accounts.list()
            print(f"{'name':30s} {'role':10s} {'sign-in':9s} {'status':9s} failed")
            for r in rows:
                print(f"{r['name']:30s} {r['role']:10s} {r['sign-in']:9s} "
                      f"{'disabled' if r['disabled'] else 'active':9s} {r['failed sign-ins']}")  # fmt: skip
        elif args.action == "add":
            password = None if args.oidc else _password(args.password_stdin)
            accounts.add(args.name, password, args.role, actor=actor)
            print(f"added {args.name} ({args.role})")
        elif args.action == "reset-password":
            accounts.reset_password(args.name, _password(args.password_stdin), actor=actor)
            print(f"new password set for {args.name}")
        else:
            accounts.set_disabled(args.name, args.action == "disable", actor=actor)
            print(f"{args.name} {args.action}d")
    except ValueError as exc:
        raise DermsevError(str(exc)) from None
