"""Training losses: masked per-pixel MAE, image-level MAE on pooled scores, skin cross-entropy."""

from __future__ import annotations

import torch
from torch import Tensor

from model.data.io import IGNORE


def _weighted_mean(err: Tensor, use: Tensor, weights: Tensor | None) -> Tensor:
    """sum(err * w) / sum(use * w) over the selected entries; w per sign (dim 1), 1 if None."""
    use = use.float()
    if weights is not None:
        shape = [1, -1] + [1] * (err.dim() - 2)
        use = use * weights.to(err.device, torch.float32).view(shape)
    return (err * use).sum() / use.sum().clamp(min=1e-12)  # 0 (with a graph) when nothing is selected


def masked_mae(pred: Tensor, target: Tensor, weights: Tensor | None = None,
               max_score: float | None = None) -> tuple[Tensor, Tensor]:
    """Mean |pred - target| over annotated pixels.

    pred: (B, S, H, W) float, the unclamped regression; target: (B, S, H, W) uint8 with
    IGNORE = 255. weights: optional (S,) non-negative per-sign weights (a weighted mean; None =
    equal). max_score: the scale's ends are bounds: a prediction below 0 where the truth is 0,
    or above max_score where it is max_score, costs nothing (prediction clamps it to the right
    value; charging for it spent the network's effort on exact 0s and 3s, and cost 0.017 MAE
    on unseen colour combinations: bench/ablate_recipe.py). None: plain MAE.
    Returns (loss, number of annotated pixels); the loss is 0 (with a graph) when none are.
    """
    valid = target != IGNORE
    p, t = pred.float(), target.float()
    err = (p - t).abs()
    if max_score is not None:
        beyond = ((t == 0) & (p < 0)) | ((t == max_score) & (p > max_score))
        err = torch.where(beyond, torch.zeros_like(err), err)
    return _weighted_mean(err, valid, weights), valid.sum()


def image_mae(pooled: Tensor, scores: Tensor, use: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean |pooled - score| over (image, sign) pairs selected by `use`.

    pooled: (B, S) float; scores: (B, S) float, NaN = unknown; use: (B, S) bool;
    weights: optional (S,) per-sign weights as in `masked_mae`.
    """
    use = use & torch.isfinite(scores)
    err = (pooled.float() - torch.nan_to_num(scores)).abs()
    return _weighted_mean(err, use, weights), use.sum()


def skin_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of the skin channel over pixels whose skin is known.

    logits: (B, 1, H, W) float; target: (B, 1, H, W) uint8, 1 skin, 0 not skin, IGNORE unknown.
    The loss is 0 (with a graph) when no pixel is known.
    """
    known = target != IGNORE
    err = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), (target == 1).float(), reduction="none")
    return _weighted_mean(err, known, None)
