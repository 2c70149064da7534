"""Test-time augmentation's views and turning them back (model/inference/tta.py)."""

from __future__ import annotations

import numpy as np
import pytest

from model.inference.tta import VIEWS, unview, views


def test_views_are_the_photo_turned_by_quarter_turns():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)  # (C, H, W)
    (v,) = views(x)  # square: one batch
    assert v.shape == (VIEWS, 2, 3, 3) and v.flags.c_contiguous
    np.testing.assert_array_equal(v[0], x)
    np.testing.assert_array_equal(v[1, 0], [[2, 5, 8], [1, 4, 7], [0, 3, 6]])  # a quarter turn counter-clockwise
    np.testing.assert_array_equal(v[2, 0], x[0, ::-1, ::-1])


def test_a_tensor_that_is_not_square_gives_two_batches_one_per_shape_with_no_padding():
    x = np.random.default_rng(1).random((2, 3, 5), dtype=np.float32)
    upright, turned = views(x)
    assert upright.shape == (2, 2, 3, 5) and turned.shape == (2, 2, 5, 3)
    np.testing.assert_array_equal(upright[0], x)
    np.testing.assert_array_equal(upright[1], x[:, ::-1, ::-1])
    np.testing.assert_array_equal(turned[0], np.rot90(x, 1, axes=(-2, -1)))


@pytest.mark.parametrize("shape", [(4, 5, 5), (4, 5, 7)])
def test_unview_puts_each_view_back_onto_the_photo(shape):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    back = unview(views(x))  # a network that copies its input: every view is the photo again
    assert back.shape == (VIEWS, *shape)
    for v in back:
        np.testing.assert_array_equal(v, x)


@pytest.mark.parametrize("turn", [1, -1])
@pytest.mark.parametrize("shape", [(3, 4, 4), (3, 4, 6)])
def test_a_photo_turned_either_way_has_the_same_views_in_another_order(turn, shape):
    # what makes the mean of the views' maps follow the photo when it is turned
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    turned = unview(views(np.rot90(x, turn, axes=(-2, -1))))  # each view of the turned photo, turned back
    original = unview(views(x))
    # view k of the turned photo is view k + turn of the photo
    for k in range(VIEWS):
        np.testing.assert_array_equal(np.rot90(turned[k], -turn, axes=(-2, -1)), original[k])
    first = [v for batch in views(np.rot90(x, turn, axes=(-2, -1))) for v in batch]
    second = [v for batch in views(x) for v in batch]
    assert sorted(a.tobytes() + bytes(a.shape) for a in first) == sorted(a.tobytes() + bytes(a.shape) for a in second)


def test_ill_args():
    with pytest.raises(ValueError, match="1 or 2 batches of views, got 3"):
        unview([np.zeros((2, 1, 4, 4), np.float32)] * 3)
    with pytest.raises(ValueError, match="expected 4 views in a batch, got 3"):
        unview([np.zeros((3, 1, 4, 4), np.float32)])


@pytest.fixture(scope="module")
def skin_photos(tmp_path_factory) -> list[np.ndarray]:
    from model.data.io import read_image
    from model.synth.generator import generate

    root = generate(tmp_path_factory.mktemp("tta") / "synth", n=2, size=256, seed=5, workers=1)
    return [read_image(p) for p in sorted((root / "images").glob("*.png"))]


def test_the_demo_models_tta_scores_do_not_move_when_the_photo_is_turned(skin_photos):
    """A clinician's photo taken a quarter turn round gets the same TTA scores, either way,
    square or 4:3; without TTA the same network's scores move."""
    from model.inference.predictor import load_model

    demo = load_model(backend="torch-fp32")
    moved_without = 0.0
    for img in skin_photos:
        for photo in (img, img[32:224]):  # square, and 4:3 (256 x 192: both sides multiples of 32)
            upright, plain_upright = demo.predict(photo, tta=True).scores, demo.predict(photo).scores
            for turn in (1, -1):
                turned = np.ascontiguousarray(np.rot90(photo, turn))
                assert demo.predict(turned, tta=True).scores == pytest.approx(upright, abs=1e-4)
                plain = demo.predict(turned).scores
                moved_without = max(moved_without, *(abs(plain[s] - plain_upright[s]) for s in plain))
    assert moved_without > 0.01
