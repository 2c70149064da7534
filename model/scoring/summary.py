"""Maps -> the numbers a clinician reads: labels and affected area (image scores: model/data/scores.py)."""

from __future__ import annotations

import numpy as np

from model.data.scores import MIN_AREA, easi_scores  # noqa: F401  (the reported score, re-exported)


def affected_fraction(maps: np.ndarray, valid: np.ndarray | None, threshold: float, skin: np.ndarray | None = None) -> np.ndarray:
    """(S,) fraction of skin pixels (all valid pixels when no skin estimate) at or above threshold."""
    region = None if valid is None else valid.astype(bool)
    if skin is not None:
        region = skin if region is None else region & skin
    hit = (maps >= threshold).reshape(maps.shape[0], -1)
    if region is None:
        return hit.mean(1)
    return (hit & region.reshape(1, -1)).sum(1) / max(int(region.sum()), 1)


def label_for(score: float, thresholds: tuple[float, ...] | list[float], names: tuple[str, ...] | list[str]) -> str:
    return names[int(np.digitize(score, thresholds))]
