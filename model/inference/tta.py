"""Test-time augmentation: one photo seen three ways (as taken, flipped left-right, flipped
upside down); the spread of the network's maps over the views shows how stable a score is.

    x3 = views(prepared.x)                       # (3, C, H, W): one batch of the network
    maps = unflip(predictor.forward_all(x3))     # (3, K, H, W), each back onto the photo

`Predictor.predict_prepared(tta=True)` and the dashboard's inference queue (which batches the
views of several photos in one forward) both go through these two functions.
"""

from __future__ import annotations

import numpy as np

# The axes each view flips, of a (..., H, W) array: none, the width, the height.
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,))
VIEWS = len(_FLIPS)


def views(x: np.ndarray) -> np.ndarray:
    """x: (C, H, W) working tensor -> (VIEWS, C, H, W), contiguous: the photo as taken, flipped
    left-right, flipped upside down."""
    return np.ascontiguousarray(np.stack([np.flip(x, axes) for axes in _FLIPS]))


def unflip(out: np.ndarray) -> np.ndarray:
    """(VIEWS, K, H, W) network output for `views` -> the same with each view's maps flipped back
    onto the photo as taken (a flip is its own inverse)."""
    if len(out) != VIEWS:
        raise ValueError(f"expected the network's output for {VIEWS} views, got {len(out)}")
    return np.stack([np.flip(o, axes) for o, axes in zip(out, _FLIPS, strict=True)])
