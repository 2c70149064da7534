"""Test-time augmentation's views and their un-flipping (model/inference/tta.py)."""

from __future__ import annotations

import numpy as np
import pytest

from model.inference.tta import VIEWS, unflip, views


def test_views_are_the_photo_flipped_left_right_and_upside_down():
    x = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)  # (C, H, W)
    v = views(x)
    assert v.shape == (VIEWS, 2, 2, 3) and v.flags.c_contiguous
    np.testing.assert_array_equal(v[0], x)
    np.testing.assert_array_equal(v[1, 0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(v[2, 0], [[3, 4, 5], [0, 1, 2]])


def test_unflip_puts_each_view_back_onto_the_photo():
    x = np.random.default_rng(0).random((4, 5, 7), dtype=np.float32)
    back = unflip(views(x))  # a network that copies its input: every view is the photo again
    assert back.shape == (VIEWS, 4, 5, 7)
    for v in back:
        np.testing.assert_array_equal(v, x)


def test_ill_args():
    with pytest.raises(ValueError, match="3 views, got 2"):
        unflip(np.zeros((2, 1, 4, 4), np.float32))
