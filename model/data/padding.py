"""Padding policy: what size the network accepts, and how an image is brought to it.

The U-Net's encoder halves the resolution up to five times and its decoder adds the skips
back, so H and W must be multiples of MULTIPLE (32). Images are padded at the bottom and
right (the top-left pixel keeps its place, so unpadding is a slice): zeros in the image,
IGNORE in masks. Used by evaluation batches (augment.eval_transform), the predictor, the
ONNX export check and the training settings' size checks.
"""

from __future__ import annotations

import math

import numpy as np

MULTIPLE = 32


def padded(n: int) -> int:
    """The smallest multiple of MULTIPLE >= n (n >= 1)."""
    return math.ceil(n / MULTIPLE) * MULTIPLE


def is_multiple(n: int) -> bool:
    return n >= MULTIPLE and n % MULTIPLE == 0


def pad_chw(x: np.ndarray) -> np.ndarray:
    """(h, w, C) -> (C, h32, w32) float32, zero-padded at the bottom and right."""
    nh, nw, c = x.shape
    out = np.zeros((c, padded(nh), padded(nw)), np.float32)
    out[:, :nh, :nw] = x.transpose(2, 0, 1)
    return out
