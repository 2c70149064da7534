"""What one look-alike is (`Confounder`), what it is drawn on (`Scene`), and drawing helpers.

Lengths are px at 256 px times `scale`; pictures are (H, W, 3) float32 on ~0..1; alpha and
coordinate maps are (H, W) float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from model.synth import skin as sk


@dataclass(frozen=True)
class Confounder:
    """One look-alike in one image."""

    kind: str  # one of confounders.KINDS
    x: float  # centre, fraction of the width
    y: float  # centre, fraction of the height
    angle: float  # radians; 0 = upright (a mouth's corners left and right)
    # px at 256 px: mouth width, nostril length, brow length, ruler width, sticker radius
    size: float
    # mouth 1: shows teeth; nostrils: count - 1; brow 1: a hairline; moles 0: nevi,
    # 1: freckles, 2: both; sticker 0: plain, 1: a white rim, 2: a printed dot
    variant: int
    seed: int  # seeds the details: teeth, creases, hairs, spots, ticks


class Scene(NamedTuple):
    """What the look-alikes are drawn on."""

    skin: np.ndarray  # (H, W) bool, where the photo shows skin
    scale: float  # size / 256
    tone: np.ndarray  # (3,) the patient's skin colour
    hair: np.ndarray  # (3,) the patient's hair colour
    phi: float  # light direction in the image plane, radians


def frame(item: Confounder, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates u (along the item) and v (across it, down when upright), px from
    its centre."""
    yy, xx = sk.grid(h, w)
    dx, dy = xx - item.x * w, yy - item.y * h
    c, s = math.cos(item.angle), math.sin(item.angle)
    return dx * c + dy * s, dy * c - dx * s


def soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Anti-aliased inside test: 1 well inside (d > 0), 0 outside, the step `edge` px wide."""
    return np.clip(d / edge + 0.5, 0.0, 1.0)


def over(rgb: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`colour` (3,) or (H, W, 3) laid over rgb with opacity alpha (H, W)."""
    return rgb + (colour - rgb) * alpha[..., None]
