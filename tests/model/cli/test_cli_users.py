"""`dermsev users`: add, list, disable, enable, reset-password on the dashboard's store."""

from __future__ import annotations

import io

import pytest

from model.cli import main

PASSWORD = "correct horse 42"


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DERMSEV_DATA", str(tmp_path))
    monkeypatch.delenv("DERMSEV_DATABASE_URL", raising=False)

    def run(*argv, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["users", *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_users_commands(cli, tmp_path):
    assert cli("add", "dr_lee", "--role", "clinician", "--password-stdin", stdin=PASSWORD + "\n")[:2] == (
        0, "added dr_lee (clinician)\n")
    assert cli("add", "ana@clinic.org", "--oidc", "--role", "admin")[0] == 0
    code, out, _ = cli("list")
    assert code == 0 and PASSWORD not in out
    lines = out.splitlines()
    assert lines[1].split() == ["ana@clinic.org", "admin", "oidc", "active", "0"]
    assert lines[2].split() == ["dr_lee", "clinician", "password", "active", "0"]
    assert cli("disable", "dr_lee")[1] == "dr_lee disabled\n"
    assert "disabled" in cli("list")[1].splitlines()[2]
    assert cli("enable", "dr_lee")[0] == 0
    assert cli("reset-password", "dr_lee", "--password-stdin", stdin="another long one\n")[0] == 0
    from dashboard.auth import Accounts
    from dashboard.history import HistoryStore

    assert Accounts(HistoryStore(tmp_path).engine).sign_in("dr_lee", "another long one").role == "clinician"
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("history.sqlite3*"))  # with the WAL
    assert PASSWORD.encode() not in raw and b"another long one" not in raw


def test_users_errors_are_one_line(cli):
    code, _, err = cli("add", "x", "--password-stdin", stdin="short\n")
    assert code == 2 and err == "dermsev users: error: a password needs at least 10 characters\n"
    code, _, err = cli("disable", "ghost")
    assert code == 2 and err == "dermsev users: error: no user ghost\n"
