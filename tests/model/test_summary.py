"""Image scores from maps: the median over the affected area, and the minimum area."""

from __future__ import annotations

import numpy as np
import pytest

from model.scoring.summary import MIN_AREA, easi_scores


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
    maps = np.zeros((1, 100, 100), np.float32)
    n = int(MIN_AREA * maps.size)
    maps.reshape(-1)[:n] = 2.0  # exactly the minimum area: still absent
    assert easi_scores(maps, None, 0.5)[0] == 0.0
    maps.reshape(-1)[: n + 1] = 2.0
    assert easi_scores(maps, None, 0.5)[0] == pytest.approx(2.0)
    assert easi_scores(maps, None, 0.5, min_area=0.0)[0] == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ["uniform", "levels", "peaked", "constant"])
@pytest.mark.parametrize("n", [4096, 4097, 50_001, 65_536])
def test_fast_median_equals_numpy(kind: str, n: int) -> None:
    from model.scoring.summary import median

    rng = np.random.default_rng(n)
    v = {"uniform": rng.random(n) * 2.5 + 0.5,
         "levels": np.round(rng.random(n) * 5 + 1) / 2,  # many ties, as in bf16 maps
         "peaked": np.clip(rng.normal(2.0, 0.2, n), 0.5, 3.0),
         "constant": np.full(n, 1.75)}[kind].astype(np.float32)
    assert median(v, 0.5) == float(np.median(v))
    assert median(v[:100], 0.5) == float(np.median(v[:100]))  # small arrays: numpy itself


def test_affected_fraction_over_valid_skin() -> None:
    from model.scoring.summary import affected_fraction

    maps = np.zeros((2, 4, 5), np.float32)
    maps[0, :2] = 1.0  # top half affected in sign 0
    maps[1, :, 0] = 3.0  # first column in sign 1
    assert affected_fraction(maps, None, 0.5).tolist() == [0.5, 0.2]
    valid = np.ones((4, 5), bool)
    valid[3] = False  # bottom row not annotated
    skin = np.ones((4, 5), bool)
    skin[:, 4] = False  # last column not skin
    np.testing.assert_allclose(affected_fraction(maps, valid, 0.5), [10 / 15, 3 / 15])
    np.testing.assert_allclose(affected_fraction(maps, valid, 0.5, skin=skin), [8 / 12, 3 / 12])
    np.testing.assert_allclose(affected_fraction(maps, None, 0.5, skin=skin), [8 / 16, 4 / 16])
    assert affected_fraction(maps, np.zeros((4, 5), bool), 0.5).tolist() == [0.0, 0.0]
