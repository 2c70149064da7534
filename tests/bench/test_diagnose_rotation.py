"""bench/diagnose_rotation.py: the content a photo and its turn share, and where false positives lie."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("diagnose_rotation", _ROOT / "bench" / "diagnose_rotation.py")
diag = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diag)


def test_shared_content_is_what_the_turn_keeps() -> None:
    from bench.degrade import rotate

    h, w = 96, 128
    clean, turned = diag.shared_content(h, w, 7)
    # about 1 - tan(7 deg) * (h/w + w/h) / 2 of the frame, the same share both ways
    assert 0.85 < clean.mean() < 0.95
    assert abs(clean.mean() - turned.mean()) < 0.01
    assert not turned[0, 0] and not turned[-1, -1] and turned[h // 2, w // 2]
    # The turned frame's shared pixels are those a white photo, turned with a black border,
    # keeps white; the clean photo's are those that come back white when turned back.
    import cv2

    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 7, 1.0)
    white = np.full((h, w), 255, np.uint8)
    fwd = cv2.warpAffine(white, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    back = cv2.warpAffine(white, cv2.invertAffineTransform(m), (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    assert (fwd == turned).mean() > 0.99 and (back == clean).mean() > 0.99
    assert (rotate(np.dstack([white] * 3), 7)[..., 0] > 0).all()  # the benchmark fills the rest by reflection
    # quarter turns lose nothing
    assert all(m.all() for m in diag.shared_content(64, 64, 90))


def test_edge_distance() -> None:
    d = diag.edge_distance(5, 7)
    assert d[0].max() == 0 and d[:, -1].max() == 0
    assert d[2, 3] == 2 and d.max() == 2


def test_affected_weight_follows_the_score_ramp() -> None:
    w = diag.affected_weight(np.array([0.0, 0.25, 0.5, 0.75, 2.0], np.float32), 0.5)  # scores.affected_weight
    np.testing.assert_allclose(w, [0, 0, 0.5, 1, 1])


def test_profile_finds_false_positives_at_a_dark_edge() -> None:
    n, h, w = 3, 80, 80
    weights = np.zeros((n, h, w), np.float32)
    greys = np.full((n, h, w), 150.0, np.float32)
    greys[:, :, :10] = 60.0  # a dark strip along the left edge...
    weights[:, :, :10] = 0.5  # ...read as the sign
    greys[:, 40:50, 40:50] = 60.0  # the same darkness inside is not
    skins = np.ones((n, h, w), bool)
    prof = diag.false_positive_profile(weights, skins, greys)
    edge = dict(prof["edge"])
    assert edge[(0, 8)] > 0.1 and edge[(32, 64)] == 0.0
    assert np.isnan(edge[(64, None)])  # an 80 px frame has no pixel 64 px inside
    dark = prof["brightness"][0]  # relative brightness under 0.7
    assert dark[0] == (0.0, 0.7)
    assert dark[2] == pytest.approx(0.5) and dark[3] == 0.0  # at the edge / inside
    assert prof["brightness"][3][1] > 0.5  # most of the skin is at the median's brightness
    # no skin in a bin: nan, not a crash
    assert np.isnan(diag.false_positive_profile(weights, np.zeros_like(skins), greys)["edge"][0][1])


def test_drift_counts_changes_over_the_target() -> None:
    a = np.zeros((20, 2))
    b = np.zeros((20, 2))
    b[:3, 1] = 0.5
    med, p95, big = diag.drift(a, b)
    assert med.tolist() == [0.0, 0.0]
    assert p95[1] > 0.3 and p95[0] == 0
    assert big.tolist() == [0, 3]
