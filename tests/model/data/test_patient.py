"""Age and sex: what is accepted, what is refused with which message, and the tabular encoding."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from model.data.patient import check_age, check_sex, encode_tabular, encode_tabular_batch
from model.errors import DermsevError

RULE = "must be a number of years from 0 to 130, or left unknown"


@pytest.mark.parametrize(
    "age, expected",
    [
        (None, None),
        ("", None),
        ("unknown", None),
        (" Unknown ", None),
        (0, 0.0),
        (45.5, 45.5),
        ("45", 45.0),
        (130, 130.0),
    ],
)
def test_check_age_accepts(age: object, expected: float | None) -> None:
    got = check_age(age)
    assert got == expected
    assert got is None or type(got) is float


@pytest.mark.parametrize(
    "age, message",
    [
        (-1, f"age -1 is out of range: {RULE}"),
        (131, f"age 131 is out of range: {RULE}"),
        (math.nan, f"age nan is not a number: {RULE}"),
        (math.inf, f"age inf is out of range: {RULE}"),
        (True, f"age True is not a number: {RULE}"),
        ("forty", f"age 'forty' is not a number: {RULE}"),
        (" forty ", f"age 'forty' is not a number: {RULE}"),  # shown stripped
    ],
)
def test_check_age_refuses(age: object, message: str) -> None:
    with pytest.raises(DermsevError, match=f"^{re.escape(message)}$") as err:
        check_age(age)
    assert "None" not in str(err.value)


def test_check_age_names_the_field() -> None:
    with pytest.raises(DermsevError, match=re.escape(f"--age -5 is out of range: {RULE}")):
        check_age(-5, "--age")


@pytest.mark.parametrize(
    "sex, expected",
    [(None, None), ("", None), ("unknown", None), ("f", "F"), ("F", "F"), (" M ", "M"), ("m", "M")],
)
def test_check_sex_accepts(sex: object, expected: str | None) -> None:
    assert check_sex(sex) == expected


@pytest.mark.parametrize("sex, shown", [("X", "'X'"), ("female", "'female'"), (3, "3")])
def test_check_sex_refuses(sex: object, shown: str) -> None:
    message = f"sex must be F or M, or left unknown; got {shown}"
    with pytest.raises(DermsevError, match=f"^{re.escape(message)}$") as err:
        check_sex(sex)
    assert "None" not in str(err.value)


def test_check_sex_names_the_field() -> None:
    with pytest.raises(
        DermsevError, match=re.escape("--sex must be F or M, or left unknown; got 'X'")
    ):
        check_sex("X", "--sex")


@pytest.mark.parametrize("age, sex", [(None, None), ("", ""), ("unknown", "unknown")])
def test_encode_tabular_unknowns(age: object, sex: object) -> None:
    a, s = encode_tabular(age, sex)
    assert math.isnan(a) and s == 0


@pytest.mark.parametrize(
    "age, sex, expected", [(30, "F", (30.0, 1)), ("30", " f ", (30.0, 1)), (0, "M", (0.0, 2))]
)
def test_encode_tabular_known(age: object, sex: object, expected: tuple[float, int]) -> None:
    assert encode_tabular(age, sex) == expected


def test_encode_tabular_checks_both() -> None:
    with pytest.raises(DermsevError, match=re.escape(f"age 200 is out of range: {RULE}")):
        encode_tabular(200, "F")
    with pytest.raises(
        DermsevError, match=re.escape("sex must be F or M, or left unknown; got 'X'")
    ):
        encode_tabular(30, "X")


def test_encode_tabular_batch_one_value_or_one_per_image() -> None:
    ages, sexes = encode_tabular_batch(40, "F", 3)  # one value for every image
    assert ages.dtype == np.float32 and sexes.dtype == np.int64
    assert ages.tolist() == [40.0] * 3 and sexes.tolist() == [1] * 3
    ages, sexes = encode_tabular_batch([20, None, "75"], np.array(["M", "F", "unknown"]), 3)
    assert ages[[0, 2]].tolist() == [20.0, 75.0] and math.isnan(ages[1])
    assert sexes.tolist() == [2, 1, 0]
    ages, _ = encode_tabular_batch(np.float64(30), None, 2)  # a numpy scalar is one value
    assert ages.tolist() == [30.0, 30.0]


def test_encode_tabular_batch_ill_args() -> None:
    with pytest.raises(ValueError, match="age: 2 values for a batch of 3 images"):
        encode_tabular_batch([20, 30], None, 3)
    with pytest.raises(DermsevError, match=re.escape(f"age 200 is out of range: {RULE}")):
        encode_tabular_batch([20, 200], "F", 2)
