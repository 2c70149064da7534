"""Evaluation metrics (SPEC's evaluate JSON), accumulated image by image.

pixel_*: over annotated pixels (mask != 255); accuracy: thresholded label equals the integer
truth; image_*: over images with an image-level truth; qwk: quadratic weighted kappa of image
labels; affected_dice: Dice of predicted (>= first threshold) vs true (mask >= 1) pixels.
A metric with no data is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.data.io import IGNORE

METRIC_KEYS = ("pixel_mae", "pixel_accuracy", "image_mae", "image_accuracy", "qwk", "affected_dice")


def to_labels(values: np.ndarray, thresholds: tuple[float, ...] | list[float]) -> np.ndarray:
    """Continuous severities -> integer label indices (0..len(thresholds))."""
    return np.digitize(np.asarray(values, dtype=np.float64), np.asarray(thresholds, dtype=np.float64))


def quadratic_weighted_kappa(a: np.ndarray, b: np.ndarray, n_levels: int) -> float | None:
    """Cohen's kappa with quadratic weights between two integer label vectors.

    None when undefined (no data); 1.0 when both raters agree perfectly even if constant.
    """
    a, b = np.asarray(a, int), np.asarray(b, int)
    if a.size == 0:
        return None
    observed = np.zeros((n_levels, n_levels))
    np.add.at(observed, (a, b), 1)
    i, j = np.meshgrid(np.arange(n_levels), np.arange(n_levels), indexing="ij")
    weights = (i - j) ** 2 / max(n_levels - 1, 1) ** 2
    expected = np.outer(observed.sum(1), observed.sum(0)) / a.size
    denom = (weights * expected).sum()
    if denom == 0:
        return 1.0 if (weights * observed).sum() == 0 else 0.0
    return float(1 - (weights * observed).sum() / denom)


@dataclass
class SignAccumulator:
    thresholds: tuple[float, ...]
    abs_err: float = 0.0
    n_pix: int = 0
    n_correct: int = 0
    inter: int = 0
    pred_pos: int = 0
    true_pos: int = 0
    pred_scores: list[float] = field(default_factory=list)
    true_scores: list[float] = field(default_factory=list)

    def add(self, pred_map: np.ndarray, mask: np.ndarray | None, pred_score: float, true_score: float | None) -> None:
        """pred_map: (H, W) float severities; mask: (H, W) uint8 truth with IGNORE, or None."""
        if mask is not None:
            valid = mask != IGNORE
            if valid.any():
                p = pred_map[valid].astype(np.float32)
                t = mask[valid].astype(np.float32)
                self.abs_err += float(np.abs(p - t).sum(dtype=np.float64))
                self.n_pix += int(valid.sum())
                self.n_correct += int((to_labels(p, self.thresholds) == t).sum())
                pp, tp = p >= self.thresholds[0], t >= 1
                self.inter += int((pp & tp).sum())
                self.pred_pos += int(pp.sum())
                self.true_pos += int(tp.sum())
        if true_score is not None:
            self.pred_scores.append(float(pred_score))
            self.true_scores.append(float(true_score))

    def confusion(self) -> np.ndarray:
        n = len(self.thresholds) + 1
        cm = np.zeros((n, n), int)
        if self.true_scores:
            np.add.at(cm, (to_labels(self.true_scores, self.thresholds), to_labels(self.pred_scores, self.thresholds)), 1)
        return cm

    def result(self) -> dict[str, float | None]:
        n_img = len(self.true_scores)
        ps, ts = np.array(self.pred_scores), np.array(self.true_scores)
        pl, tl = to_labels(ps, self.thresholds), to_labels(ts, self.thresholds)
        dice_den = self.pred_pos + self.true_pos
        return {
            "pixel_mae": self.abs_err / self.n_pix if self.n_pix else None,
            "pixel_accuracy": self.n_correct / self.n_pix if self.n_pix else None,
            "image_mae": float(np.abs(ps - ts).mean()) if n_img else None,
            "image_accuracy": float((pl == tl).mean()) if n_img else None,
            "qwk": quadratic_weighted_kappa(tl, pl, len(self.thresholds) + 1) if n_img else None,
            "affected_dice": (2 * self.inter / dice_den if dice_den else (1.0 if self.n_pix else None)),
        }


@dataclass
class SkinDice:
    """Dice of a predicted skin mask against a true one, pooled over the pixels whose skin is
    known: 2 |pred & truth| / (|pred| + |truth|).

    add(pred, truth): pred bool, truth uint8 (1 skin, 0 not, IGNORE unknown), same shape.
    """

    overlap: int = 0  # 2 |pred & truth|
    total: int = 0  # |pred| + |truth|
    n_images: int = 0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        known = truth != IGNORE
        skin, pred = (truth == 1) & known, pred.astype(bool) & known
        self.overlap += 2 * int((pred & skin).sum())
        self.total += int(pred.sum() + skin.sum())
        self.n_images += 1

    def result(self) -> float | None:
        return self.overlap / self.total if self.total else None


def mean_over_signs(per_sign: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        vals = [m[key] for m in per_sign.values() if m.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    return out
