"""`relight`: soft shade anywhere in the frame, from its own random stream."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from model.errors import DermsevError
from model.synth.generator import generate
from model.synth.skin import shade_patches
from tests.model.synth.test_generator import digest, rows_of

SIZE = 96


def read(ds: Path, rel: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.imread(str(ds / rel), flags)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("relight")
    plain = generate(root / "plain", n=6, size=SIZE, seed=3, workers=1)
    lit = generate(root / "lit", n=6, size=SIZE, seed=3, workers=1, relight=1.0)
    return plain, lit


def test_relight_only_darkens_the_same_picture(pair: tuple[Path, Path]):
    plain, lit = pair
    assert (plain / "manifest.csv").read_bytes() == (lit / "manifest.csv").read_bytes()
    darker_inside = 0
    for row in rows_of(plain):
        for col in [c for c in row if c.startswith("mask_")] + ["skin_mask"]:
            assert (read(plain, row[col]) == read(lit, row[col])).all(), col
        a = read(plain, row["image"]).astype(np.int16)
        b = read(lit, row["image"]).astype(np.int16)
        assert (b <= a + 1).all()  # a shade, never a light: the same noise and rounding
        drop = (a - b).mean(axis=2) / np.maximum(a.mean(axis=2), 1)
        q = SIZE // 4
        if drop[q:-q, q:-q].max() > 0.15:  # shade reaches the frame's central half
            darker_inside += 1
    assert darker_inside >= 3


def test_relight_zero_is_the_default_files(pair: tuple[Path, Path], tmp_path: Path):
    plain, _ = pair
    zero = generate(tmp_path / "zero", n=6, size=SIZE, seed=3, workers=1, relight=0.0)
    assert digest(zero) == digest(plain)


def test_shade_patches_lie_anywhere_in_the_frame():
    centre = 0
    for k in range(40):
        shade = shade_patches(np.random.default_rng(k), 64, 64, 0.25)
        assert shade.dtype == np.float32 and shade.shape == (64, 64)
        assert 0.5 <= shade.min() and shade.max() <= 1.0
        y, x = np.unravel_index(int(shade.argmin()), shade.shape)
        centre += bool(16 <= y < 48 and 16 <= x < 48)
    assert 5 <= centre <= 35  # the darkest spot is inside the frame about as often as at its edge


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True, "half"])
def test_relight_refuses_a_bad_chance(tmp_path: Path, bad: object):
    with pytest.raises(DermsevError, match="relight must be a chance between 0 and 1"):
        generate(tmp_path / "x", n=1, size=32, relight=bad)

