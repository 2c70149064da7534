"""Face look-alikes: a mouth (lips, closed or smiling with teeth), nostrils, an eyebrow or a
hairline, at face-photo scale.

Each painter takes (rng, item, rgb, scene) and returns (picture, alpha, hide): alpha (H, W)
is where it lies (sign masks 0), hide (H, W) where it hides the skin (skin mask 0 at >= 0.5).
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from model.synth import skin as sk
from model.synth.confounders.base import Confounder, Scene, frame, over, soft


def mouth(rng: np.random.Generator, it: Confounder, rgb: np.ndarray, sc: Scene):
    """Lips (creased, with a wet sheen) around a closed mouth line or a smile's teeth."""
    h, w = sc.skin.shape
    s = sc.scale
    u, v = frame(it, h, w)
    hw = it.size * s / 2
    U = u / hw
    bell = np.clip(1 - U * U, 0, None)
    line = -rng.uniform(-0.04, 0.16) * hw * U * U  # the mouth line; corners up in a smile
    gape = rng.uniform(0.2, 0.36) * hw * bell**0.8 if it.variant else 0.0 * U
    top, bot = line - 0.35 * gape, line + 0.65 * gape
    # Cupid's bow: a dip at the centre of the upper lip; the lips stay full to the corners
    bow = 1 - 0.2 * np.exp(-((U / 0.1) ** 2)) + 0.06 * np.exp(-(((np.abs(U) - 0.25) / 0.12) ** 2))
    full = np.clip(1 - np.abs(U) ** 2.2, 0, None) ** 0.55
    thick = rng.uniform(0.2, 0.32) * hw
    upper_edge = top - thick * full * bow
    lower_edge = bot + thick * rng.uniform(1.05, 1.4) * bell**0.6
    e, e_out = max(0.6, 1.2 * s), max(0.8, 1.8 * s)  # the vermilion border is a little soft
    win = soft((1 - np.abs(U)) * hw, e)
    a_up = soft(v - upper_edge, e_out) * soft(top - v, e) * win
    a_lo = soft(v - bot, e) * soft(lower_edge - v, e_out) * win
    a_op = soft(v - top, e) * soft(bot - v, e) * win if it.variant else np.zeros_like(u)

    blood, melanin = rng.uniform(0.25, 0.6), rng.uniform(0.05, 0.35)
    lip = sc.tone * np.exp(-(blood * sk.HAEMOGLOBIN + melanin * sk.MELANIN))
    t_up = np.clip((v - upper_edge) / np.maximum(top - upper_edge, 1e-3), 0, 1)  # 0 outer, 1 inner
    t_lo = np.clip((v - bot) / np.maximum(lower_edge - bot, 1e-3), 0, 1)  # 0 inner, 1 outer
    wave = u + 2.5 * s * sk.noise(rng, h, w, 12 * s)
    crease = ((1 + np.cos(2 * np.pi * wave / (rng.uniform(2.6, 4.5) * s))) / 2) ** 4
    crease *= np.clip(0.3 + 0.7 * sk.noise(rng, h, w, 4 * s), 0, 1)  # fine vertical creases
    glint = np.clip(0.6 + 0.5 * sk.noise(rng, h, w, 5 * s), 0, 1) * (1 - crease) * bell
    amp = rng.uniform(0.1, 0.3)
    shade_up = (0.95 - 0.3 * t_up) * (1 - 0.18 * crease * np.sin(np.pi * t_up))
    shade_lo = (0.75 + 0.35 * np.sin(np.pi * t_lo)) * (1 - 0.18 * crease * np.sin(np.pi * t_lo))
    col_up = lip * shade_up[..., None]
    col_up += (0.35 * amp * np.exp(-(((t_up - 0.3) / 0.15) ** 2)) * glint)[..., None]
    col_lo = lip * shade_lo[..., None]
    col_lo += (amp * np.exp(-(((t_lo - 0.4) / 0.16) ** 2)) * glint)[..., None]  # wet sheen
    if it.variant:
        col_op = _teeth(rng, U, v, top, bot, hw, s, e)
    else:  # closed: a dark line, deeper toward the corners
        width = max(0.7, rng.uniform(0.7, 1.4) * s)
        seam = np.exp(-(((v - line) / width) ** 2)) * (0.45 + 0.35 * U * U)
        col_up *= (1 - seam)[..., None]
        col_lo *= (1 - seam)[..., None]
        col_op = col_lo
    # the lower lip's shadow on the chin, and creases at the corners of the mouth
    below = np.clip(v - lower_edge, 0, None)
    dark = 0.22 * np.exp(-below / (0.07 * hw)) * (v > lower_edge) * bell**0.5
    corner = np.exp(-((((np.abs(U) - 1) * hw) / (5 * s)) ** 2) - ((v - line) / (7 * s)) ** 2)
    out = rgb * (1 - np.maximum(dark, 0.25 * corner))[..., None]
    alpha = np.clip(a_up + a_lo + a_op, 0, 1)
    out = out * (1 - alpha)[..., None] + col_up * a_up[..., None] + col_lo * a_lo[..., None]
    out += col_op * a_op[..., None]
    return out, alpha, alpha


def _teeth(rng, U, v, top, bot, hw, s, e) -> np.ndarray:
    """Inside an open mouth, (H, W, 3): upper (often lower) teeth with thin dark gaps, fading
    into the dark interior toward the corners."""
    q = np.clip((v - top) / np.maximum(bot - top, 1e-3), 0, 1)  # 0 upper lip .. 1 lower lip
    au = np.abs(U)
    sizes = np.float32([1.0, 0.8, 0.78, 0.7, 0.62, 0.56, 0.5, 0.46, 0.42])  # incisor first
    widths = rng.uniform(0.11, 0.15) * sizes
    edges = np.concatenate([[0.0], np.cumsum(widths)]).astype(np.float32)
    j = np.clip(np.searchsorted(edges, au) - 1, 0, len(widths) - 1)
    frac = np.clip((au - edges[j]) / widths[j], 0, 1)
    gap = np.exp(-((np.minimum(frac, 1 - frac) * widths[j] * hw / (0.35 * s + 0.2)) ** 2))
    tip = rng.uniform(0.55, 0.75) + 0.06 * (1 - (2 * frac - 1) ** 2)  # rounded incisal edges
    teeth = soft((tip - q) * (bot - top), e)
    if rng.random() < 0.6:  # the lower row, partly hidden by the lower lip
        teeth = np.maximum(teeth, soft((q - rng.uniform(0.8, 0.9)) * (bot - top), e) * 0.8)
    teeth *= np.clip((rng.uniform(0.72, 0.9) - au) / 0.2, 0, 1)  # back teeth fade into the dark
    shade = (0.92 - 0.45 * au**1.5) * (0.85 + 0.15 * np.sin(np.pi * frac))
    shade *= 1 - 0.45 * np.exp(-np.clip(v - top, 0, None) / (2.5 * s))  # under the upper lip
    shade *= 1 - 0.5 * gap
    enamel = np.float32([0.93, 0.9, 0.8]) * np.float32([1, 1, rng.uniform(0.82, 1.0)])
    interior = np.float32([0.2, 0.06, 0.06]) * rng.uniform(0.6, 1.2)
    return interior + (enamel * shade[..., None] - interior) * teeth[..., None]


def nostrils(rng: np.random.Generator, it: Confounder, rgb: np.ndarray, sc: Scene):
    """One or two dark soft ovals, each in a shaded rim (the ala) and its groove."""
    h, w = sc.skin.shape
    s = sc.scale
    a = it.size * s / 2
    b = a * rng.uniform(0.45, 0.7)
    n = it.variant + 1
    gap = a * rng.uniform(2.6, 3.6)
    tilt = rng.uniform(0.15, 0.45)
    out, alpha = rgb, np.zeros(sc.skin.shape, np.float32)
    for i in range(n):
        off = (i - (n - 1) / 2) * gap
        turn = (2 * i - 1) * tilt if n == 2 else rng.normal(0, 0.3)  # a pair leans inward
        x = it.x + off * math.cos(it.angle) / w
        y = it.y + off * math.sin(it.angle) / h
        u, v = frame(replace(it, x=x, y=y, angle=it.angle + turn), h, w)
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        inside = soft((1 - r) * b, max(1.0, 0.35 * b))
        # +1 on the upper side, under the nose's overhang; the ala's outer side catches light
        side = np.clip(-v / (b * r + 1e-3), -1, 1)
        rim = np.exp(-(((r - 1.0) / 0.8) ** 2))
        lift = 0.07 * np.clip(-side, 0, None) * np.exp(-(((r - 1.9) / 0.5) ** 2))
        if n == 2:
            outer = np.clip((2 * i - 1) * u / (a * r + 1e-3), 0, 1)
        else:
            outer = np.abs(u) / (a * r + 1e-3)
        groove = 0.16 * outer * np.exp(-(((r - 2.1) / 0.3) ** 2))
        out = out * (1 - rim * (0.25 + 0.15 * side) - groove + lift)[..., None]
        depth = 0.4 + 0.9 * np.clip(r, 0, 1) ** 2  # darkest deep inside
        out = over(out, sc.tone * np.float32([0.3, 0.17, 0.15]) * depth[..., None], inside)
        alpha = np.maximum(alpha, inside)
    return out, alpha, alpha


def brow(rng: np.random.Generator, it: Confounder, rgb: np.ndarray, sc: Scene):
    """An eyebrow (an arched band of dense short hairs, thick at its head) or a hairline
    (hair beyond a curve); the skin under the dense part is hidden."""
    h, w = sc.skin.shape
    s = sc.scale
    hairline = it.variant == 1
    if hairline:  # across the frame, the hair filling 10-40% of it from one side
        it = replace(it, x=0.5, y=0.5)
    u, v = frame(it, h, w)
    flip = 1.0 if rng.random() < 0.5 else -1.0  # which end is the brow's head
    u = u * flip
    half = 1.5 * max(h, w) if hairline else it.size * s / 2
    t = u / half
    arch = (rng.uniform(-0.6, 0.6) if hairline else rng.uniform(0.06, 0.22)) * half
    centre = -arch * (1 - t * t)
    if hairline:
        centre -= (0.5 - rng.uniform(0.1, 0.4)) * min(h, w) - arch
    if hairline:  # hair beyond the line
        dens = np.clip(0.5 - (v - centre) / (rng.uniform(10, 28) * s), 0, 1)
    else:  # thick at the head, a thin tail
        thick = rng.uniform(9, 17) * s * (1 - 0.6 * np.clip((t + 1) / 2, 0, 1) ** 1.5)
        dens = np.clip(1 - np.abs(v - centre) / np.maximum(thick, 1e-3), 0, 1) ** 0.6
        dens *= soft((1 - np.abs(t)) * half, 4 * s)
    strands = _strands(rng, it, u, dens, arch, half, flip, hairline, s)
    colour = sc.hair * rng.uniform(0.6, 1.0)
    shine = colour + np.float32([0.1, 0.08, 0.06]) + 0.3 * sc.hair
    out = rgb * (1 - 0.3 * dens)[..., None]  # shadowed by the hairs
    out = over(out, colour * 0.8, (0.5 if hairline else 0.15) * dens**3)
    out = over(out, colour, strands[0])
    out = over(out, shine, strands[1])
    return out, np.maximum(dens, strands.max(axis=0)), dens


def _strands(rng, it, u, dens, arch, half, flip, hairline, s) -> np.ndarray:
    """Short hairs where dens (H, W) is high, (2, H, W) alpha: dark ones, ones catching light."""
    h, w = dens.shape
    flat = dens.ravel().astype(np.float64)
    count = int(flat.sum() * rng.uniform(0.14, 0.24))
    canvas = np.zeros((2, h, w), np.uint8)
    if count == 0:
        return canvas.astype(np.float32)
    idx = rng.choice(flat.size, size=count, p=flat / flat.sum())
    py, px = np.divmod(idx, w)
    tq = np.clip(u.ravel()[idx] / half, -1, 1)
    if hairline:  # away from the face, swirling a little
        ang = -np.pi / 2 + rng.normal(0, 0.35, count) + 0.3 * tq
        length = rng.uniform(8, 20, count) * s
    else:  # upward at the head, along the brow toward the tail
        ang = np.arctan(2 * arch * tq / half) - 0.2 - 0.9 * np.clip(-tq, 0, 1) ** 2
        ang = ang + rng.normal(0, 0.25, count)
        length = rng.uniform(4, 10, count) * s
    du, dv = np.cos(ang) * flip, np.sin(ang)
    c, sn = math.cos(it.angle), math.sin(it.angle)
    d = np.stack([du * c - dv * sn, du * sn + dv * c], axis=1) * length[:, None]
    p0 = np.stack([px, py], axis=1) + rng.uniform(-0.5, 0.5, (count, 2))
    bend = np.stack([-d[:, 1], d[:, 0]], axis=1) * rng.normal(0, 0.12, (count, 1))
    pts = np.round(np.stack([p0, p0 + d / 2 + bend, p0 + d], axis=1) * 16).astype(np.int32)
    thick = max(1, int(round(0.9 * s)))
    lit = rng.random(count) < 0.3
    dark = pts[~lit]
    for layer, part, value in ((0, dark[::2], 180), (0, dark[1::2], 255), (1, pts[lit], 200)):
        cv2.polylines(canvas[layer], list(part), False, value, thick, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255 * min(1.0, 0.5 + 0.5 * s)
