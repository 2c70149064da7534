"""Image scores (model/data/scores.py): reported = median over the affected area with the 1 % rule,
both softened into ramps; training target = mean over the mask."""

from __future__ import annotations

import numpy as np
import pytest

from model.data.scores import MIN_AREA, easi_scores, mask_image_score, mask_scores


def test_score_is_the_median_over_the_affected_area() -> None:
    # a severe plaque (3.0) of 60 pixels with a 40-pixel rim ramping 0.5 -> 2.9, on 900 healthy pixels
    row = np.concatenate([np.full(60, 3.0), np.linspace(0.5, 2.9, 40), np.zeros(900)]).astype(np.float32)
    maps = np.stack([row, np.zeros_like(row)]).reshape(2, 10, 100)
    scores = easi_scores(maps, None, 0.5)
    assert scores[0] == pytest.approx(3.0)  # the mean would be 2.48: "moderate"
    assert row[row >= 0.5].mean() == pytest.approx(2.48)
    assert scores[1] == 0.0


def test_only_valid_pixels_count() -> None:
    maps = np.zeros((1, 10, 10), np.float32)
    maps[0, :5] = 2.0
    maps[0, 5:] = 1.0
    valid = np.zeros((10, 10), bool)
    valid[:4] = True
    assert easi_scores(maps, valid, 0.5)[0] == pytest.approx(2.0)
    assert easi_scores(maps, None, 0.5)[0] == pytest.approx(1.5)


def test_a_few_specks_count_as_absent() -> None:
    """Hard (soften=0), a patch of exactly the minimum area is absent and one pixel more counts in
    full; softened, the presence ramps from half the minimum area to 1.5 times it."""
    maps = np.zeros((1, 100, 100), np.float32)
    n = int(MIN_AREA * maps.size)
    maps.reshape(-1)[:n] = 2.0  # exactly the minimum area
    assert easi_scores(maps, None, 0.5, soften=0)[0] == 0.0
    assert easi_scores(maps, None, 0.5)[0] == pytest.approx(1.0)  # half way up the ramp
    maps.reshape(-1)[: n + 1] = 2.0
    assert easi_scores(maps, None, 0.5, soften=0)[0] == pytest.approx(2.0)
    assert easi_scores(maps, None, 0.5, min_area=0.0)[0] == pytest.approx(2.0)
    maps[:] = 0
    maps.reshape(-1)[: n // 2] = 2.0  # half the minimum area: absent
    assert easi_scores(maps, None, 0.5)[0] == 0.0
    maps.reshape(-1)[: 3 * n // 2] = 2.0  # 1.5 times it: in full
    assert easi_scores(maps, None, 0.5)[0] == pytest.approx(2.0)


def test_the_soft_score_moves_as_little_as_the_map() -> None:
    """A patch that grows, or brightens across the threshold, moves the soft score by a little at a
    time; the hard rules jump by the patch's whole level (0 -> 2 and 0 -> 0.5)."""
    maps = np.zeros((1, 100, 100), np.float32)
    flat = maps.reshape(-1)
    grow_soft, grow_hard = [], []
    for px in range(40, 170, 2):  # 0.4 % .. 1.7 % of the image at severity 2
        flat[:] = 0
        flat[:px] = 2.0
        grow_soft.append(easi_scores(maps, None, 0.5)[0])
        grow_hard.append(easi_scores(maps, None, 0.5, soften=0)[0])
    assert grow_soft[0] == 0 and grow_soft[-1] == pytest.approx(2.0)
    assert np.all(np.diff(grow_soft) >= 0) and np.abs(np.diff(grow_soft)).max() < 0.05
    assert np.abs(np.diff(grow_hard)).max() == pytest.approx(2.0)
    fade_soft, fade_hard = [], []
    for level in np.linspace(0.2, 0.9, 71):  # a faint patch on 10 % of the image
        flat[:] = 0
        flat[:1000] = level
        fade_soft.append(easi_scores(maps, None, 0.5)[0])
        fade_hard.append(easi_scores(maps, None, 0.5, soften=0)[0])
    assert fade_soft[0] == 0 and fade_soft[-1] == pytest.approx(0.9)
    # steps of 0.01 in the map: at most 0.1 in the score (steepest where the presence ramps up)
    assert np.all(np.diff(fade_soft) >= 0) and np.abs(np.diff(fade_soft)).max() < 0.1
    assert np.abs(np.diff(fade_hard)).max() >= 0.5


def test_soften_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="soften must be in"):
        easi_scores(np.zeros((1, 4, 4), np.float32), None, 0.5, soften=1.0)


def test_weighted_median_matches_numpy_on_equal_weights() -> None:
    from model.data.scores import weighted_median

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 10, 1001, 4096, 50_001, 65_536):
        v = rng.random(n).astype(np.float32)
        assert weighted_median(v, np.ones(n, np.float32)) == pytest.approx(float(np.median(v)))
    # a heavy value pulls the median to itself
    assert weighted_median(np.array([0.6, 1.0, 2.0], np.float32), np.array([0.1, 0.1, 1.0])) == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ["uniform", "levels", "peaked", "constant"])
@pytest.mark.parametrize("n", [4096, 4097, 50_001, 65_536])
def test_fast_median_equals_numpy(kind: str, n: int) -> None:
    from model.data.scores import median

    rng = np.random.default_rng(n)
    v = {"uniform": rng.random(n) * 2.5 + 0.5,
         "levels": np.round(rng.random(n) * 5 + 1) / 2,  # many ties, as in bf16 maps
         "peaked": np.clip(rng.normal(2.0, 0.2, n), 0.5, 3.0),
         "constant": np.full(n, 1.75)}[kind].astype(np.float32)
    assert median(v, 0.5) == float(np.median(v))
    assert median(v[:100], 0.5) == float(np.median(v[:100]))  # small arrays: numpy itself


def test_reported_score_and_training_target_differ_on_a_soft_rim() -> None:
    """The same lesion: a crisp mask's mean (training target) and a predicted map's median
    (reported) agree on the plaque's level; on a map with a soft rim only the median does."""
    import torch

    mask = np.zeros((10, 100), np.uint8)
    mask[:, :10] = 3  # a severe plaque on 10 % of the image
    assert mask_image_score(mask) == 3.0
    target, annotated = mask_scores(torch.from_numpy(mask)[None, None])
    assert target.item() == 3.0 and annotated.item()
    pred = mask.astype(np.float32)
    pred[:, 10:16] = np.linspace(2.9, 0.5, 6)  # the rim a network predicts around it
    assert easi_scores(pred[None], None, 0.5)[0] == pytest.approx(3.0)
    assert mask_image_score(np.round(pred).astype(np.uint8)) < 3.0  # a mean is pulled down


@pytest.mark.parametrize("n", [4096, 20_000, 65_536])
@pytest.mark.parametrize("levels", [False, True])
def test_fast_weighted_median_equals_a_full_sort(n: int, levels: bool) -> None:
    from model.data.scores import weighted_median

    rng = np.random.default_rng(n + levels)
    v = (rng.random(n) * 3).astype(np.float32)
    if levels:  # many ties, as in bf16 maps
        v = np.round(v * 4) / 4
    w = np.clip((v - 0.25) / 0.5, 0, 1).astype(np.float32)  # the soft rule's weights
    order = np.argsort(v, kind="stable")
    c = np.cumsum(w[order], dtype=np.float64)
    expected = float(v[order][np.searchsorted(c, c[-1] / 2)])
    assert weighted_median(v, w) == expected
