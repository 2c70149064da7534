"""The four EASI signs for the synthetic generator: lesion masks and each sign's own layer.

Masks are (H, W) uint8 severity 0..3 per sign; the layers are float32 (H, W) maps that
`model.synth.render` turns into colour and relief. Lengths are px at 256 px times `scale`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from model.data.io import IGNORE
from model.data.scores import mask_image_score
from model.synth.skin import fractal

SIGNS = ("erythema", "papulation", "excoriation", "lichenification")


def lesion_masks(
    rng: np.random.Generator, severities: tuple[int, ...], skin: np.ndarray, scale: float
) -> np.ndarray:
    """Irregular, often overlapping lesions: (signs, H, W) uint8 severity 0..3.

    Every sign thresholds a mix of one shared smooth noise field (so lesions overlap, as in
    eczema) and its own field; `severities[k]` is the peak level of sign k, and lesions at
    2 or 3 usually have a rim one level lower. `skin`: (H, W) bool, lesions only there.
    """
    h, w = skin.shape
    masks = np.zeros((len(severities), h, w), np.uint8)
    base = fractal(rng, h, w, 85 * scale, 3)
    values_ok = skin.any()
    for k, sev in enumerate(severities):
        own = fractal(rng, h, w, 55 * scale, 3)
        if sev == 0 or not values_ok:
            continue
        field = 0.65 * base + 0.5 * own
        vals = field[skin]
        area = rng.uniform(0.12, 0.5)
        region = (field > np.quantile(vals, 1 - area)) & skin
        masks[k][region] = sev
        if sev >= 2 and rng.random() < 0.7:
            core = field > np.quantile(vals, 1 - area * rng.uniform(0.35, 0.7))
            masks[k][region & ~core] = sev - 1
    return masks


def intensity(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Severity with soft lesion borders, (H, W) float32 on 0..3."""
    m = mask.astype(np.float32)
    return cv2.GaussianBlur(m, (0, 0), sigma) if sigma >= 0.3 else m


def papules(
    rng: np.random.Generator, sev: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Raised papules and oedematous swelling from a papulation intensity map (0..3).

    Returns (bumps, swelling): heights in px, (H, W) float32. Density and height of the
    papules grow with the local severity.
    """
    h, w = sev.shape
    p = sev / 3.0
    bumps = np.zeros((h, w), np.float32)
    for density, sigma in ((0.0065, 2.2 * scale), (0.0012, 4.0 * scale)):
        amp = (rng.random((h, w), dtype=np.float32) < p * density).astype(np.float32)
        amp *= (0.25 + 0.3 * sev) * rng.uniform(0.7, 1.2, (h, w)).astype(np.float32)
        if sigma >= 0.35:
            amp = cv2.GaussianBlur(amp, (0, 0), sigma) * (2 * np.pi * sigma**2)
        bumps += amp
    swelling = cv2.GaussianBlur(sev, (0, 0), max(0.5, 10 * scale)) * 0.8
    return bumps, swelling


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 7) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def excoriation(
    rng: np.random.Generator, mask: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch marks (groups of parallel nail lines) and crust dots over the lesion.

    mask: (H, W) uint8 severity 0..3. Groups sit on a jittered grid over the lesion, so the
    scratching covers it; count, width, strength and crusting grow with severity. Returns
    (erosion, crust, annotated): alpha maps (H, W) float32 on 0..1, zero outside the lesion,
    and the excoriation mask an annotator would draw, the lesion's levels where scratches
    are within reach (about 6 px at 256 px), 0 elsewhere: what is not visible is not labelled.
    """
    h, w = mask.shape
    ero = np.zeros((h, w), np.uint8)
    crust = np.zeros((h, w), np.uint8)
    if not mask.any():
        return ero.astype(np.float32), crust.astype(np.float32), mask.copy()
    cell = 24 * scale
    gy, gx = np.meshgrid(np.arange(0, h, cell), np.arange(0, w, cell), indexing="ij")
    cy = np.clip(gy + rng.uniform(0, cell, gy.shape), 0, h - 1).astype(int).ravel()
    cx = np.clip(gx + rng.uniform(0, cell, gx.shape), 0, w - 1).astype(int).ravel()
    level = mask[cy, cx].astype(int)
    keep = (level > 0) & (rng.random(level.shape) < 0.5 + 0.15 * level)
    if not keep.any():  # a tiny lesion: one group at one of its pixels
        ys, xs = np.nonzero(mask)
        j = int(rng.integers(len(ys)))
        cy, cx, keep = ys[j : j + 1], xs[j : j + 1], np.ones(1, bool)
    for y, x in zip(cy[keep], cx[keep], strict=True):
        centre = np.array([x, y], np.float64)
        sev = int(mask[y, x])
        ang = rng.uniform(0, np.pi)
        d = np.array([math.cos(ang), math.sin(ang)])
        normal = np.array([-d[1], d[0]])
        length = rng.uniform(15, 30 + 10 * sev) * scale
        spacing = rng.uniform(6, 14) * scale
        lines = rng.integers(1, min(3, sev) + 1)
        for k in range(lines):
            c = centre + normal * (k - (lines - 1) / 2) * spacing * rng.uniform(0.7, 1.3)
            c = c + d * rng.normal(0, 4 * scale)
            dk = d + normal * rng.normal(0, 0.12)
            half = dk * length / 2 * rng.uniform(0.6, 1.1)
            bend = normal * rng.normal(0, 0.12) * length
            pts = _bezier(c - half, c + bend, c + half, 12)
            thick = max(1, int(round((0.3 + 0.4 * sev) * scale)))
            for a, b in zip(pts[:-1], pts[1:], strict=True):  # broken, uneven scratch
                value = int(255 * np.clip(0.42 + 0.12 * sev + rng.normal(0, 0.1), 0, 0.9))
                seg = np.round(np.stack([a, b]) * 16).astype(np.int32)
                cv2.polylines(ero, [seg], False, value, thick, cv2.LINE_AA, shift=4)
            for _ in range(rng.poisson(0.15 + 0.6 * (sev - 1))):  # haemorrhagic crust on the line
                i = int(rng.integers(len(pts) - 2))
                seg = np.round(pts[i : i + int(rng.integers(2, 4))] * 16).astype(np.int32)
                cv2.polylines(
                    crust, [seg], False, int(rng.uniform(150, 240)), thick + 1, cv2.LINE_AA, shift=4
                )
    inside = cv2.GaussianBlur((mask > 0).astype(np.float32), (0, 0), max(0.3, 0.8 * scale))
    ero_f, crust_f = ero.astype(np.float32) / 255 * inside, crust.astype(np.float32) / 255 * inside
    r = max(1, int(round(6 * scale)))
    reach = cv2.dilate(((ero_f > 0.1) | (crust_f > 0.1)).astype(np.uint8),
                       cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return ero_f, crust_f, np.where(reach > 0, mask, 0).astype(np.uint8)


def mark_unannotated(rng: np.random.Generator, masks: np.ndarray, scale: float) -> np.ndarray:
    """Copy of masks with a few pixels set to 255 (not annotated), as annotators leave them:
    a thin border on some images, an unlabelled blob in a few masks. Most pixels stay labelled."""
    out = masks.copy()
    _, h, w = out.shape
    if rng.random() < 0.2:
        b = max(1, int(round(2 * scale)))
        out[:, :b], out[:, -b:], out[:, :, :b], out[:, :, -b:] = IGNORE, IGNORE, IGNORE, IGNORE
    for k in range(out.shape[0]):
        if rng.random() < 0.1:
            centre = (int(rng.integers(w)), int(rng.integers(h)))
            axes = (int(rng.uniform(6, 22) * scale) + 1, int(rng.uniform(6, 22) * scale) + 1)
            cv2.ellipse(out[k], centre, axes, float(rng.uniform(0, 180)), 0, 360, IGNORE, -1)
    return out


def image_score(mask: np.ndarray) -> float:
    """The manifest's score column: the training target (model/data/scores.py), 4 decimals."""
    return round(mask_image_score(mask) or 0.0, 4)
