"""Test-time augmentation: one photo seen four ways, turned by 0, 1, 2 and 3 quarter turns; the
mean of the network's maps, each turned back, is the prediction, and their spread shows how
stable a score is.

    groups = views(prepared.x)                               # [(n, C, h, w), ...]: one batch each
    maps = unview([predictor.forward_all(g) for g in groups])  # (4, K, H, W), each back onto the photo

The four turns are a group: a photo taken a quarter turn round has the same four views in
another order, so its mean maps are the first photo's turned, and its scores the same (a
CNN alone moves a score by up to 1.2 under a quarter turn, docs/robustness.md). The three
views before (as taken, flipped left-right, upside down) had no such property. A square
working tensor gives one batch of four views; one that is not square gives two of two (as
taken and upside down at H x W, the quarter turns at W x H), so no view is padded: padding
a 4:3 photo to a square cost 1.9x the three views' time, the two batches about 4/3.

`Predictor.predict_prepared(tta=True)` and the dashboard's inference queue (which batches the
views of several photos, group by group, in one forward) both go through these two functions.
"""

from __future__ import annotations

import numpy as np

VIEWS = 4  # quarter turns 0, 1, 2, 3 (counter-clockwise, np.rot90)
_AXES = (-2, -1)
_SQUARE = ((0, 1, 2, 3),)  # the turns in each batch of a square tensor
_OBLONG = ((0, 2), (1, 3))  # of a tensor that is not square: one batch per shape


def _groups(n_batches: int) -> tuple[tuple[int, ...], ...]:
    if n_batches == 1:
        return _SQUARE
    if n_batches == 2:
        return _OBLONG
    raise ValueError(f"expected the network's output for 1 or 2 batches of views, got {n_batches}")


def views(x: np.ndarray) -> list[np.ndarray]:
    """x: (C, H, W) working tensor -> its VIEWS quarter turns as batches of one shape each:
    [(4, C, H, H)] for a square tensor, [(2, C, H, W), (2, C, W, H)] otherwise; contiguous."""
    turns = _SQUARE if x.shape[-2] == x.shape[-1] else _OBLONG
    return [np.ascontiguousarray(np.stack([np.rot90(x, k, axes=_AXES) for k in group])) for group in turns]


def unview(outs: list[np.ndarray]) -> np.ndarray:
    """The network's output for each batch of `views`, (n, K, h, w) -> (VIEWS, K, H, W): every
    view's maps turned back onto the photo, in the order of the turns (0, 1, 2, 3)."""
    groups = _groups(len(outs))
    back: dict[int, np.ndarray] = {}
    for out, group in zip(outs, groups, strict=True):
        if len(out) != len(group):
            raise ValueError(f"expected {len(group)} views in a batch, got {len(out)}")
        for o, k in zip(out, group, strict=True):
            back[k] = np.rot90(o, -k, axes=_AXES)
    return np.stack([back[k] for k in range(VIEWS)])
