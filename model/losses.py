"""Training losses: masked per-pixel MAE and image-level MAE on pooled scores."""

from __future__ import annotations

import torch
from torch import Tensor

from model.data import IGNORE


def masked_mae(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean |pred - target| over annotated pixels.

    pred: (B, S, H, W) float on 0..max_score; target: (B, S, H, W) uint8 with IGNORE = 255.
    Returns (loss, number of annotated pixels); the loss is 0 (with a graph) when none are.
    """
    valid = target != IGNORE
    n = valid.sum()
    err = (pred.float() - target.float()).abs() * valid
    return err.sum() / n.clamp(min=1), n


def image_mae(pooled: Tensor, scores: Tensor, use: Tensor) -> tuple[Tensor, Tensor]:
    """Mean |pooled - score| over (image, sign) pairs selected by `use`.

    pooled: (B, S) float; scores: (B, S) float, NaN = unknown; use: (B, S) bool.
    """
    use = use & torch.isfinite(scores)
    n = use.sum()
    err = (pooled.float() - torch.nan_to_num(scores)).abs() * use
    return err.sum() / n.clamp(min=1), n
