"""Evaluation metrics on hand-computed cases; None where there is no data."""

from __future__ import annotations

import numpy as np
import pytest

from model.scoring.metrics import (
    METRIC_KEYS,
    SignAccumulator,
    mean_over_signs,
    quadratic_weighted_kappa,
    to_labels,
)

THR = (0.5, 1.5, 2.5)


def test_metric_keys_are_specs() -> None:
    assert set(METRIC_KEYS) == {"pixel_mae", "pixel_accuracy", "image_mae", "image_accuracy", "qwk", "affected_dice"}


def test_to_labels_at_the_thresholds() -> None:
    values = [0.0, 0.49, 0.5, 1.49, 1.5, 2.49, 2.5, 3.0]
    np.testing.assert_array_equal(to_labels(values, THR), [0, 0, 1, 1, 2, 2, 3, 3])


@pytest.mark.parametrize(
    "a, b, n_levels, expected",
    [
        ([0, 1, 2, 3], [0, 1, 2, 3], 4, 1.0),  # perfect agreement
        ([2, 2, 2], [2, 2, 2], 4, 1.0),  # constant but identical
        # O = [[1, 1], [0, 2]], W = [[0, 1], [1, 0]], E = outer([2, 2], [1, 3]) / 4
        # sum(W * O) = 1, sum(W * E) = 1.5 + 0.5 = 2 -> 1 - 1/2
        ([0, 0, 1, 1], [0, 1, 1, 1], 2, 0.5),
        # one 3 read as 2: sum(W * O) = 1/9; sum(W * E) = (14 + 6 + 2 * 6) / 36 = 8/9 -> 1 - 1/8
        ([0, 1, 2, 3], [0, 1, 2, 2], 4, 0.875),
        ([0, 3], [3, 0], 4, -1.0),  # complete, maximal disagreement
    ],
)
def test_quadratic_weighted_kappa_by_hand(a, b, n_levels: int, expected: float) -> None:
    assert quadratic_weighted_kappa(np.array(a), np.array(b), n_levels) == pytest.approx(expected)
    assert quadratic_weighted_kappa(np.array(b), np.array(a), n_levels) == pytest.approx(expected)


def test_quadratic_weighted_kappa_no_data() -> None:
    assert quadratic_weighted_kappa(np.array([], int), np.array([], int), 4) is None


def test_quadratic_weights_punish_far_errors_more() -> None:
    truth = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    near = np.array([1, 1, 2, 3, 0, 1, 2, 3])
    far = np.array([3, 1, 2, 3, 0, 1, 2, 3])
    assert quadratic_weighted_kappa(truth, near, 4) > quadratic_weighted_kappa(truth, far, 4)


def hand_case() -> SignAccumulator:
    acc = SignAccumulator(THR)
    pred = np.array([[0.7, 1.4, 2.6], [0.6, 3.0, 0.8]], np.float32)
    mask = np.array([[0, 1, 3], [255, 2, 1]], np.uint8)
    # annotated: 0.7|0, 1.4|1, 2.6|3, 3.0|2, 0.8|1 -> errors 0.7 0.4 0.4 1.0 0.2 (sum 2.7)
    # labels 1,1,3,3,1 vs truth 0,1,3,2,1 -> 3 of 5 right
    # affected: predicted 5 (>= 0.5), true 4 (>= 1), both 4 -> Dice 8/9
    acc.add(pred, mask, pred_score=1.6, true_score=1.0)
    acc.add(pred, None, pred_score=2.9, true_score=3.0)  # an image with a score, no mask
    acc.add(pred, np.full((2, 3), 255, np.uint8), pred_score=0.1, true_score=None)  # nothing known
    return acc


def test_sign_accumulator_by_hand() -> None:
    r = hand_case().result()
    assert r["pixel_mae"] == pytest.approx(2.7 / 5)
    assert r["pixel_accuracy"] == pytest.approx(3 / 5)
    assert r["affected_dice"] == pytest.approx(8 / 9)
    assert r["image_mae"] == pytest.approx((0.6 + 0.1) / 2)
    assert r["image_accuracy"] == pytest.approx(1 / 2)  # labels 2 vs 1 wrong, 3 vs 3 right
    # image labels truth [1, 3], predicted [2, 3]: O = e(1,2) + e(3,3); W = (i-j)^2/9
    # E = outer([0,1,0,1], [0,0,1,1]) / 2 -> sum(W*E) = (1/9 + 4/9 + 1/9 + 0) / 2 = 1/3
    assert r["qwk"] == pytest.approx(1 - (1 / 9) / (1 / 3))


def test_confusion_matrix_counts_image_labels() -> None:
    cm = hand_case().confusion()
    expected = np.zeros((4, 4), int)
    expected[1, 2] = expected[3, 3] = 1
    np.testing.assert_array_equal(cm, expected)


def test_no_data_gives_none() -> None:
    acc = SignAccumulator(THR)
    assert all(v is None for v in acc.result().values())
    acc.add(np.ones((2, 2)), np.full((2, 2), 255, np.uint8), 1.0, None)
    assert all(v is None for v in acc.result().values())


def test_only_image_scores_gives_pixel_metrics_none() -> None:
    acc = SignAccumulator(THR)
    acc.add(np.ones((2, 2)), None, 1.2, 1.0)
    r = acc.result()
    assert r["pixel_mae"] is None and r["pixel_accuracy"] is None and r["affected_dice"] is None
    assert r["image_mae"] == pytest.approx(0.2) and r["image_accuracy"] == 1.0


def test_dice_when_nothing_is_affected_anywhere() -> None:
    acc = SignAccumulator(THR)
    acc.add(np.zeros((2, 2)), np.zeros((2, 2), np.uint8), 0.0, 0.0)
    assert acc.result()["affected_dice"] == 1.0  # agreed: no disease


def test_mean_over_signs_skips_none() -> None:
    per_sign = {
        "a": dict.fromkeys(METRIC_KEYS, None) | {"pixel_mae": 0.2, "qwk": 0.5},
        "b": dict.fromkeys(METRIC_KEYS, None) | {"pixel_mae": 0.4},
    }
    m = mean_over_signs(per_sign)
    assert m["pixel_mae"] == pytest.approx(0.3)
    assert m["qwk"] == pytest.approx(0.5)
    assert m["image_mae"] is None
    assert set(m) == set(METRIC_KEYS)


def test_skin_dice_pools_known_pixels_over_images() -> None:
    from model.scoring.metrics import SkinDice

    d = SkinDice()
    assert d.result() is None
    pred = np.array([[True, True, False, True]])
    truth = np.array([[1, 0, 1, 255]], np.uint8)  # the last pixel is unknown: not counted
    d.add(pred, truth)  # overlap 2 * 1, total 2 predicted + 2 true
    assert d.result() == pytest.approx(0.5)
    d.add(np.ones((1, 2), bool), np.ones((1, 2), np.uint8))  # + 2 * 2 over 2 + 2
    assert d.result() == pytest.approx(6 / 8) and d.n_images == 2
