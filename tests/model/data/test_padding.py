"""Padding to the U-Net's multiple of 32: sizes, and an image padded at the bottom and right."""

from __future__ import annotations

import numpy as np
import pytest

from model.data.padding import MULTIPLE, is_multiple, pad_chw, padded


def test_multiple_is_32() -> None:
    assert MULTIPLE == 32


@pytest.mark.parametrize(
    "n, expected", [(1, 32), (31, 32), (32, 32), (33, 64), (64, 64), (65, 96), (500, 512)]
)
def test_padded(n: int, expected: int) -> None:
    assert padded(n) == expected


@pytest.mark.parametrize(
    "n, expected",
    [
        (0, False),
        (16, False),
        (31, False),
        (32, True),
        (48, False),
        (64, True),
        (96, True),
        (100, False),
    ],
)
def test_is_multiple(n: int, expected: bool) -> None:
    assert is_multiple(n) is expected


@pytest.mark.parametrize("h, w, c", [(20, 45, 3), (32, 32, 1), (33, 64, 6), (1, 1, 2)])
def test_pad_chw(h: int, w: int, c: int) -> None:
    x = np.random.default_rng(0).integers(1, 256, size=(h, w, c)).astype(np.uint8)
    out = pad_chw(x)
    assert out.shape == (c, padded(h), padded(w)) and out.dtype == np.float32
    assert is_multiple(out.shape[1]) and is_multiple(out.shape[2])
    # the content keeps its place at the top left; zeros fill the bottom and right
    np.testing.assert_array_equal(out[:, :h, :w], x.transpose(2, 0, 1).astype(np.float32))
    assert not out[:, h:, :].any() and not out[:, :, w:].any()


def test_pad_chw_keeps_float_values_and_does_not_alias() -> None:
    x = np.linspace(-1.5, 2.5, 10 * 7 * 2, dtype=np.float64).reshape(10, 7, 2)
    out = pad_chw(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :10, :7], x.transpose(2, 0, 1).astype(np.float32))
    assert not out[:, 10:, :].any() and not out[:, :, 7:].any()
    out[:] = 0
    assert x.any()  # the input is untouched
