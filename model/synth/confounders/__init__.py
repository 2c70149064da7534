"""Healthy look-alikes ("confounders") for the synthetic generator: a mouth, nostrils, an
eyebrow or hairline, moles and freckles, a ruler or a sticker.

A model that only saw eczema close-ups reads texture it never saw as disease (a smile's
teeth and the nostrils as papules, a hairline and eyebrows as lichenification).
`generate(..., confounders=p)` puts one or two of these into a share p of the images, every
sign mask 0 on them and the skin mask 0 where they hide the skin (moles are skin: 1).

`plan` draws what an image shows from its own stream, (seed, index, _STREAM), never from the
image's main generator, so a dataset made without confounders stays byte-identical. `paint`
draws them on the shaded picture before the camera (lighting, blur, noise): face.py draws
the face parts, marks.py moles, rulers and stickers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from model.synth.confounders import face, marks
from model.synth.confounders.base import Confounder, Scene

__all__ = ["KINDS", "Confounder", "paint", "plan"]

KINDS = ("moles", "brow", "nostrils", "mouth", "ruler", "sticker")  # in painting order
_WEIGHTS = (0.14, 0.2, 0.2, 0.24, 0.12, 0.1)  # more of those that fool a model most
# kind: (size range in px at 256 px, number of variants); see Confounder.size and .variant
SHAPES = {
    "moles": ((0, 0), 3),
    "brow": ((110, 230), 2),
    "nostrils": ((14, 30), 2),
    "mouth": ((60, 180), 2),
    "ruler": ((22, 40), 1),
    "sticker": ((10, 34), 3),
}
_PAINTERS = {
    "moles": marks.moles,
    "brow": face.brow,
    "nostrils": face.nostrils,
    "mouth": face.mouth,
    "ruler": marks.ruler,
    "sticker": marks.sticker,
}
_ON_SKIN = ("moles", "brow", "nostrils", "mouth")  # a face and its moles are not on the table
_STREAM = 0xC0F0  # seeds the confounders, apart from the image's own stream


def plan(seed: int, index: int, chance: float) -> tuple[Confounder, ...]:
    """What image `index` of a dataset shows: () at chance 0 or when not drawn, else 1-2
    look-alikes of different kinds, in painting order."""
    if chance <= 0:
        return ()
    rng = np.random.default_rng([seed, index, _STREAM])
    if rng.random() >= chance:
        return ()
    picks = rng.choice(len(KINDS), size=1 if rng.random() < 0.6 else 2, replace=False, p=_WEIGHTS)
    items: list[Confounder] = []
    for k in sorted(int(i) for i in picks):
        kind = KINDS[k]
        (lo, hi), variants = SHAPES[kind]
        upright = rng.random() < 0.7 and kind != "ruler"  # faces are mostly photographed upright
        angle = rng.normal(0, 0.25) if upright else rng.uniform(-np.pi, np.pi)
        for _ in range(10):  # apart from the other one: a nostril inside a mouth looks wrong
            x, y = rng.uniform(0.12, 0.88, 2)
            if all(math.hypot(x - o.x, y - o.y) > 0.4 for o in items):
                break
        size, variant = rng.uniform(lo, hi), rng.integers(variants)
        seed_k = int(rng.integers(2**31))
        items.append(
            Confounder(kind, float(x), float(y), float(angle), float(size), int(variant), seed_k)
        )
    return tuple(items)


def paint(
    items: tuple[Confounder, ...],
    rgb: np.ndarray,
    skin: np.ndarray,
    scale: float,
    tone: np.ndarray,
    hair: np.ndarray,
    phi: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw items over rgb (H, W, 3) float32 (not modified). skin: (H, W) bool; scale:
    size / 256; tone, hair: (3,) the patient's colours; phi: the light's direction, radians.

    Returns (picture, hidden, cover): hidden (H, W) bool, where a look-alike hides the skin
    (the skin mask's 0); cover (H, W) bool, every pixel one touches (the sign masks' 0),
    hidden included. Where they fall depends on skin, not on rgb, tone, hair or phi.
    """
    scene = Scene(skin, scale, np.asarray(tone, np.float32), np.asarray(hair, np.float32), phi)
    h, w = skin.shape
    hidden = np.zeros((h, w), bool)
    cover = np.zeros((h, w), bool)
    ys, xs = np.nonzero(skin)
    for item in items:
        rng = np.random.default_rng(item.seed)
        on_skin = skin[min(h - 1, int(item.y * h)), min(w - 1, int(item.x * w))]
        if item.kind in _ON_SKIN and len(ys) and not on_skin:
            k = int(rng.integers(len(ys)))
            item = replace(item, x=(xs[k] + 0.5) / w, y=(ys[k] + 0.5) / h)
        rgb, alpha, hide = _PAINTERS[item.kind](rng, item, rgb, scene)
        cover |= alpha > 0.02
        hidden |= hide >= 0.5
    return rgb.astype(np.float32), hidden, cover
