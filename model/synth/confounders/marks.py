"""Marks on or over the skin: moles and freckles (skin), a millimetre ruler, a sticker.

Each painter takes (rng, item, rgb, scene) and returns (picture, alpha, hide): alpha (H, W)
is where it lies (sign masks 0), hide (H, W) where it hides the skin (skin mask 0 at >= 0.5).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from model.synth import skin as sk
from model.synth.confounders.base import Confounder, Scene, frame, over, soft

STICKERS = np.float32(
    [
        [0.85, 0.12, 0.12],
        [0.1, 0.55, 0.25],
        [0.12, 0.3, 0.8],
        [0.95, 0.8, 0.1],
        [0.95, 0.45, 0.08],
        [0.92, 0.92, 0.9],
    ]
)
RULERS = np.float32([[0.94, 0.94, 0.91], [0.96, 0.87, 0.5], [0.86, 0.88, 0.9]])


def moles(rng: np.random.Generator, it: Confounder, rgb: np.ndarray, sc: Scene):
    """Flat brown nevi (2-8 px radius) and/or a cluster of freckles, on the skin only: skin
    to keep (hide is 0), with no sign under them."""
    h, w = sc.skin.shape
    s = sc.scale
    spots = []  # (x, y, radius px, melanin)
    ys, xs = np.nonzero(sc.skin)
    if it.variant in (0, 2) and len(ys):
        for _ in range(int(rng.integers(1, 5))):
            k = int(rng.integers(len(ys)))
            x, y = xs[k] + rng.uniform(0, 1), ys[k] + rng.uniform(0, 1)
            spots.append((x, y, (2 + 6 * rng.beta(1.5, 3)) * s, rng.uniform(0.7, 1.6)))
    if it.variant in (1, 2):
        spread = rng.uniform(12, 35) * s
        for _ in range(int(rng.integers(6, 26))):
            x, y = np.array([it.x * w, it.y * h]) + rng.normal(0, spread, 2)
            spots.append((x, y, rng.uniform(1.0, 2.5) * s, rng.uniform(0.3, 0.7)))
    yy, xx = sk.grid(h, w)
    alpha = np.zeros((h, w), np.float32)
    dens = np.zeros((h, w), np.float32)
    for x, y, r, m in spots:
        k = int(r * 1.3 + 3)
        y0, y1 = max(0, int(y) - k), min(h, int(y) + k + 1)
        x0, x1 = max(0, int(x) - k), min(w, int(x) + k + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dx, dy = xx[y0:y1, x0:x1] - x, yy[y0:y1, x0:x1] - y
        d, th = np.hypot(dx, dy), np.arctan2(dy, dx)
        p2, p3 = rng.uniform(0, 2 * np.pi, 2)
        wobble = 0.1 * np.cos(2 * th + p2) + 0.05 * np.cos(3 * th + p3)  # not quite round
        a = soft(r * (1 + wobble) - d, max(0.5, 0.8 * s))
        alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], a)
        core = a * m * (1 + 0.3 * np.clip(1 - d / r, 0, 1))  # a little darker at the centre
        dens[y0:y1, x0:x1] = np.maximum(dens[y0:y1, x0:x1], core)
    on = sc.skin.astype(np.float32)
    return rgb * np.exp(-(dens * on)[..., None] * sk.MELANIN), alpha * on, np.zeros_like(alpha)


def ruler(rng: np.random.Generator, it: Confounder, rgb: np.ndarray, sc: Scene):
    """A millimetre ruler strip across the frame: ticks longer every 5 and 10 mm, numbers,
    a cast shadow. Drawn flat on its own canvas, then turned into place."""
    h, w = sc.skin.shape
    s = sc.scale
    width = it.size * s
    rows, cols = int(math.ceil(width)) + 4, int(math.hypot(h, w) * 1.2) + 8
    y = np.arange(rows, dtype=np.float32)[:, None] - 2
    strip = np.repeat(soft(np.minimum(y, width - y), 1.0), cols, axis=1)
    if rng.random() < 0.5:  # the ruler's end is in the frame
        strip[:, : int(cols / 2 + rng.uniform(-0.35, 0.2) * min(h, w))] = 0
    colour = (
        RULERS[int(rng.integers(len(RULERS)))] * (1 - 0.08 * np.abs(y / width - 0.5))[..., None]
    )
    colour = np.repeat(colour, cols, axis=1)
    ink = np.zeros((rows, cols), np.uint8)
    mm = rng.uniform(4.5, 8.0) * s
    first = rng.uniform(0, mm)
    font = 0.012 * width  # digits about a third of the ruler's width
    for k in range(int((cols - first) / mm) + 1):
        x = first + k * mm
        frac = 0.55 if k % 10 == 0 else 0.4 if k % 5 == 0 else 0.24
        p0, p1 = (int(x * 16), 24), (int(x * 16), int((1.5 + frac * width) * 16))
        cv2.line(ink, p0, p1, 255, 1, cv2.LINE_AA, shift=4)
        if width >= 20 and k % 10 == 0 and x + 6 * s < cols:
            at = (int(x + 1.5 * s), int(0.92 * width))
            cv2.putText(
                ink, str(k // 10 % 30), at, cv2.FONT_HERSHEY_SIMPLEX, font, 255, 1, cv2.LINE_AA
            )
    colour *= 1 - 0.9 * (ink.astype(np.float32) / 255)[..., None]
    colour *= 1 + 0.015 * rng.standard_normal((rows, cols, 1), dtype=np.float32)
    c, sn = math.cos(it.angle), math.sin(it.angle)
    cx, cy = cols / 2, rows / 2
    m = np.float32([[c, -sn, it.x * w - c * cx + sn * cy], [sn, c, it.y * h - sn * cx - c * cy]])
    alpha = cv2.warpAffine(strip, m, (w, h), flags=cv2.INTER_LINEAR)
    face = cv2.warpAffine(colour * strip[..., None], m, (w, h), flags=cv2.INTER_LINEAR)
    out = rgb * (1 - 0.35 * sk.shadow(alpha, sc.phi, 2.5 * s, 2.0 * s) * (1 - alpha))[..., None]
    return out * (1 - alpha)[..., None] + face, alpha, alpha


def sticker(rng: np.random.Generator, it: Confounder, rgb: np.ndarray, sc: Scene):
    """A round coloured marker sticker, lit from the light's side, with a cast shadow."""
    h, w = sc.skin.shape
    s = sc.scale
    u, v = frame(it, h, w)
    r = it.size * s
    d = np.hypot(u, v)
    alpha = soft(r - d, max(0.6, 1.0 * s))
    lx, ly = math.cos(sc.phi - it.angle), math.sin(sc.phi - it.angle)
    lit = 1 + 0.08 * (u * lx + v * ly) / r - 0.06 * (d / r) ** 4
    colour = STICKERS[int(rng.integers(len(STICKERS)))] * rng.uniform(0.85, 1.0) * lit[..., None]
    if it.variant == 1:  # a white rim
        rim = soft(d - r * rng.uniform(0.75, 0.88), 1.0)
        colour = over(colour, np.float32([0.95, 0.95, 0.93]), rim)
    elif it.variant == 2:  # a printed dot
        dot = soft(r * rng.uniform(0.12, 0.3) - d, 1.0)
        colour = over(colour, np.float32([0.1, 0.1, 0.12]), dot)
    out = rgb * (1 - 0.35 * sk.shadow(alpha, sc.phi, 2.0 * s, 1.5 * s) * (1 - alpha))[..., None]
    return over(out, colour, alpha), alpha, alpha
