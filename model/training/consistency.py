"""Consistency training: a photo should be scored as the same photo taken differently.

Each training crop also comes as a second view (model/data/augment.py `consistency_view`:
another light and exposure, defocus, lower resolution, JPEG), turned here by a random quarter
turn plus up to `SMALL_TURN` degrees. The network scores both in one forward; the view's maps
are pulled toward the crop's maps, turned the same way and held fixed (no gradient), over the
pixels both show. bench/bench_robustness.py measures the drift this is meant to shrink.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SMALL_TURN = 10.0  # degrees, either way, on top of the quarter turn


def turns(n: int, gen: torch.Generator | None = None, small: float = SMALL_TURN) -> Tensor:
    """(n,) angles in radians: a quarter turn (0-3) plus a uniform +-`small` degrees each."""
    quarter = torch.randint(0, 4, (n,), generator=gen).float() * (math.pi / 2)
    return quarter + (torch.rand(n, generator=gen) * 2 - 1) * math.radians(small)


def turn_grid(angles: Tensor, h: int, w: int, device: torch.device | None = None) -> Tensor:
    """The (n, h, w, 2) sampling grid that turns an image about its centre by `angles`
    (radians; for `grid_sample`, align_corners=False). A quarter turn of a square image lands
    every pixel centre on a pixel centre, so it moves pixels without blending them."""
    c, s = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(c)
    theta = torch.stack([torch.stack([c, -s * h / w, zero], 1), torch.stack([s * w / h, c, zero], 1)], 1)
    return F.affine_grid(theta.to(device), [len(angles), 1, h, w], align_corners=False)


def warp(x: Tensor, grid: Tensor, mode: str = "bilinear") -> Tensor:
    """x (n, C, H, W) resampled on `grid` in float32; outside the image is 0."""
    return F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)


def consistency_mae(view_maps: Tensor, maps: Tensor, valid: Tensor, grid: Tensor) -> Tensor:
    """Mean |view's maps - crop's maps turned onto the view| over the pixels inside both.

    view_maps: (B, S, H, W), the (clamped) maps of the turned views; maps: (B, S, H, W), the
    crops' maps (the target: no gradient flows into it); valid: (B, 1, H, W) bool, the crops'
    pixels inside the photo; grid: the views' `turn_grid`. 0 (with a graph) when nothing overlaps.
    """
    target = warp(maps.detach(), grid)
    inside = warp(valid.float(), grid) > 0.999  # pixels that sample the photo only, not the padding
    err = (view_maps.float() - target).abs() * inside
    return err.sum() / (inside.sum() * view_maps.shape[1]).clamp(min=1)
