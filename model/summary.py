"""Maps -> the numbers a clinician reads: image scores (EASI convention), labels, affected area."""

from __future__ import annotations

import numpy as np

MIN_AREA = 0.005


def easi_scores(maps: np.ndarray, valid: np.ndarray | None, threshold: float, min_area: float = MIN_AREA) -> np.ndarray:
    """Per-sign image score: mean severity over affected pixels (>= threshold), 0 if none.

    A sign covering less than `min_area` of the image (0.5 %: a few specks, below EASI's
    smallest area band of 1-9 %) counts as absent, so isolated false-positive pixels do
    not turn "none" into "mild".
    maps: (S, H, W) severities on 0..max_score; valid: (H, W) bool or None (all valid).
    Returns (S,) float64.
    """
    s = maps.reshape(maps.shape[0], -1).astype(np.float32)
    if valid is not None:
        s = s[:, valid.reshape(-1)]
    affected = s >= threshold
    n = affected.sum(1)
    total = np.where(affected, s, 0).sum(1, dtype=np.float64)
    return np.where(n > max(min_area * s.shape[1], 0), total / np.maximum(n, 1), 0.0)


def affected_fraction(maps: np.ndarray, valid: np.ndarray | None, threshold: float, skin: np.ndarray | None = None) -> np.ndarray:
    """(S,) fraction of skin pixels (all valid pixels when no skin estimate) at or above threshold."""
    region = np.ones(maps.shape[1:], bool) if valid is None else valid.astype(bool)
    if skin is not None:
        region = region & skin
    n = max(int(region.sum()), 1)
    return (maps[:, region] >= threshold).sum(1) / n


def label_for(score: float, thresholds: tuple[float, ...] | list[float], names: tuple[str, ...] | list[str]) -> str:
    return names[int(np.digitize(score, thresholds))]
