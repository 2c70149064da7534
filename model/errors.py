"""User-facing errors: raised where bad input is read, shown as one line by the CLI and page."""

from __future__ import annotations


class DermsevError(ValueError):
    """An error the user caused and can fix; the message names the file/row and the problem."""
