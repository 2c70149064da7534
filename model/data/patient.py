"""The patient's age and sex: what is allowed, and how the tabular branch receives them.

The one definition behind the manifest reader, the Python API, the CLI, saliency and the
dashboard. Either value may be unknown (None, blank or "unknown"); the network has a learned
"unknown" for each (model/nets/tabular.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from model.errors import DermsevError

MAX_AGE = 130.0
SEXES: tuple[str, ...] = ("F", "M")
SEX_CODES = {None: 0, "F": 1, "M": 2}  # the tabular branch's embedding rows; 0 = unknown
_UNKNOWN = ("", "unknown", "none", "nan")


def check_age(age: object, what: str = "age") -> float | None:
    """Years on 0..MAX_AGE as a float, or None when unknown (None, '' or 'unknown').

    Raises DermsevError with a plain message ("age 200 is out of range: must be a number of
    years from 0 to 130, or left unknown") for anything else: negative, too large, NaN, a
    bool, text.
    """
    if age is None or (isinstance(age, str) and age.strip().lower() in _UNKNOWN):
        return None
    rule = f"must be a number of years from 0 to {MAX_AGE:g}, or left unknown"
    shown = age.strip() if isinstance(age, str) else age
    if isinstance(age, bool):
        raise DermsevError(f"{what} {shown!r} is not a number: {rule}")
    try:
        years = float(age)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DermsevError(f"{what} {shown!r} is not a number: {rule}") from None
    if math.isnan(years):
        raise DermsevError(f"{what} {shown!r} is not a number: {rule}")
    if not 0 <= years <= MAX_AGE:
        raise DermsevError(f"{what} {shown!r} is out of range: {rule}")
    return years


def check_sex(sex: object, what: str = "sex") -> str | None:
    """'F' or 'M' (any case), or None when unknown (None, '' or 'unknown')."""
    if sex is None or (isinstance(sex, str) and sex.strip().lower() in _UNKNOWN):
        return None
    if isinstance(sex, str) and sex.strip().upper() in SEXES:
        return sex.strip().upper()
    raise DermsevError(f"{what} must be {' or '.join(SEXES)}, or left unknown; got {sex!r}")


def encode_tabular(age: object, sex: object) -> tuple[float, int]:
    """(age, sex), checked -> (age in years, NaN if unknown; sex code 0 unknown, 1 F, 2 M)."""
    a = check_age(age)
    return (math.nan if a is None else a), SEX_CODES[check_sex(sex)]


def encode_tabular_batch(age: object, sex: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`encode_tabular` for a batch of n images: (n,) float32 ages (NaN unknown) and (n,) int64
    sex codes. age, sex: one value for every image (as `encode_tabular` takes it) or a sequence
    (list, tuple, 1-D array) of n values, one per image, each as `encode_tabular` takes it."""
    ages, sexes = _per_image(age, n, "age"), _per_image(sex, n, "sex")
    codes = [encode_tabular(a, s) for a, s in zip(ages, sexes, strict=True)]
    return np.array([a for a, _ in codes], np.float32), np.array([s for _, s in codes], np.int64)


def _per_image(value: object, n: int, what: str) -> Sequence[object]:
    """One value, repeated n times, or a sequence of n values (a string is one value)."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0):
        if len(value) != n:
            raise ValueError(f"{what}: {len(value)} values for a batch of {n} images")
        return list(value)
    return [value] * n
