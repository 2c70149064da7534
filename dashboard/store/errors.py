"""What the page says when the store cannot be written or read: one sentence a clinician can
act on, never a traceback (the full error goes to the server log)."""

from __future__ import annotations

import errno

from sqlalchemy.exc import SQLAlchemyError

STORE_ERRORS = (SQLAlchemyError, OSError)

_FULL = ("database or disk is full", "no space left", "disk full")
_READ_ONLY = ("readonly database", "read-only", "unable to open database", "permission denied")
_UNREACHABLE = ("connection refused", "could not connect", "connection failed", "timeout expired")


def describe(exc: BaseException, action: str = "save the visit") -> str:
    """A page message for a failed store operation (`action`: what was being done)."""
    message = str(getattr(exc, "orig", None) or exc).lower()
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or any(s in message for s in _FULL):
        return (f"Could not {action}: the disk that holds the patient store is full. Nothing "
                "was saved. Ask your administrator to free space, then try again.")  # fmt: skip
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or any(s in message for s in _READ_ONLY):
        return (f"Could not {action}: the patient store's folder is read-only or not writable "
                "by the server. Nothing was saved. Ask your administrator to check the data "
                "folder (DERMSEV_DATA) and its permissions.")  # fmt: skip
    if "database is locked" in message:
        return (f"Could not {action}: the patient store is busy (another server is writing). "
                "Nothing was saved; try again in a moment.")  # fmt: skip
    if any(s in message for s in _UNREACHABLE):
        return (f"Could not {action}: the patient database cannot be reached. Nothing was "
                "saved. Ask your administrator to check the database server.")  # fmt: skip
    return f"Could not {action} ({exc.__class__.__name__}). Nothing was saved; the server log has the details."
