"""Argument checks shared by the importance and probe studies."""

from __future__ import annotations

import numpy as np


def check_whole(name: str, v: object, lo: int) -> int:
    """`v` as an int, or ValueError unless it is a whole number >= lo (bools refused)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be a whole number >= {lo}, got {v!r}")
    return int(v)
