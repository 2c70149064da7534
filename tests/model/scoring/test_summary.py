"""The summary a clinician reads: affected area over valid skin, and labels."""

from __future__ import annotations

import numpy as np


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
