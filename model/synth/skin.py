"""Unaffected skin for the synthetic generator: noise, tone, skin lines, pores, hair, background.

Pure numpy + cv2. Maps are float32: (H, W) fields or (H, W, 3) colours on 0..1. Lengths are
given for a 256 px image and multiplied by `scale = size / 256`, so a dataset looks the same
at any resolution (a close-up of roughly 3 x 3 cm of skin).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

# Reflectance (display RGB, 0..1) of unaffected skin per Fitzpatrick type I..VI.
SKIN_TONES = np.array(
    [
        [0.94, 0.78, 0.70],
        [0.88, 0.69, 0.58],
        [0.79, 0.58, 0.44],
        [0.64, 0.45, 0.31],
        [0.47, 0.31, 0.21],
        [0.30, 0.20, 0.14],
    ],
    np.float32,
)
# Optical density per unit of chromophore (Beer-Lambert: colour *= exp(-amount * density)).
MELANIN = np.array([0.55, 0.80, 1.00], np.float32)  # absorbs blue most: browner
HAEMOGLOBIN = np.array([0.05, 0.9, 0.8], np.float32)  # absorbs green: redder

FABRICS = np.array(
    [
        [0.22, 0.30, 0.46],
        [0.55, 0.55, 0.57],
        [0.86, 0.87, 0.89],
        [0.33, 0.52, 0.48],
        [0.13, 0.13, 0.14],
        [0.45, 0.14, 0.17],
        [0.70, 0.62, 0.50],
    ],
    np.float32,
)
TABLES = np.array(
    [[0.55, 0.38, 0.22], [0.70, 0.55, 0.36], [0.82, 0.80, 0.76], [0.60, 0.62, 0.65]], np.float32
)


def noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise, (H, W) float32 with mean ~0 and std ~1; features about `cell` px."""
    if cell < 1.5:
        return rng.standard_normal((h, w), dtype=np.float32)
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    lattice = rng.standard_normal((gh, gw), dtype=np.float32)
    if cell >= 6:  # smooth away the lattice's axis-aligned look at a cheap 4x resolution
        lattice = cv2.resize(lattice, (4 * gw, 4 * gh), interpolation=cv2.INTER_CUBIC)
        lattice = cv2.GaussianBlur(lattice, (0, 0), 1.6)
    lattice *= 1.0 / (float(lattice.std()) + 1e-6)  # normalised on the small grid: cheap
    return cv2.resize(lattice, (w, h), interpolation=cv2.INTER_CUBIC)


def fractal(
    rng: np.random.Generator,
    h: int,
    w: int,
    cell: float,
    octaves: int = 3,
    persistence: float = 0.5,
) -> np.ndarray:
    """Multi-octave noise, (H, W) float32 normalised to std 1; coarsest features `cell` px."""
    total = np.zeros((h, w), np.float32)
    amp, power = 1.0, 0.0
    for i in range(octaves):
        total += amp * noise(rng, h, w, cell / 2**i)
        power += amp * amp
        amp *= persistence
    return total * (1.0 / math.sqrt(power))  # independent octaves: std ~1


@lru_cache(maxsize=4)
def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (yy, xx), each (H, W) float32, read-only (cached)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def line_field(
    rng: np.random.Generator,
    h: int,
    w: int,
    angles: list[float],
    period: float,
    halfwidth: float,
    scale: float,
    warp: float = 2.6,
    gate: float = 0.45,
) -> np.ndarray:
    """Criss-cross skin furrows, (H, W) float32 on 0..1 (1 = bottom of a furrow).

    One family of wavy parallel lines per angle (radians), `period` px apart, broken up by
    a smooth gate so lines fade in and out as on real skin. `warp`: waviness (radians of
    phase); `gate`: how continuous the lines are (higher = fewer breaks).
    """
    yy, xx = grid(h, w)
    out = np.zeros((h, w), np.float32)
    # exp((cos(phi) - 1) / (2 w^2)) ~ exp(-phi^2 / (4 w^2)): furrow half-width in phase = 2w.
    wphase = max(0.08, halfwidth * np.pi / period)
    for k, theta in enumerate(angles):
        bend = noise(rng, h, w, 50 * scale) * warp + noise(rng, h, w, 16 * scale) * (warp / 4)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * np.pi / period)
        phase += bend + rng.uniform(0, 2 * np.pi)
        furrow = np.exp((np.cos(phase) - 1.0) * (1.0 / (2 * wphase**2)))
        on = np.clip(gate + 0.6 * noise(rng, h, w, 18 * scale), 0.0, 1.0)
        weight = 1.0 if k < 2 else 0.45
        out = np.maximum(out, furrow * on * weight)
    return out


def pores(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Pore dips, (H, W) float32 on ~0..1 (1 = centre of a pore)."""
    sigma = 0.8 * scale
    density = 0.005
    imp = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    imp *= rng.uniform(0.4, 1.0, (h, w)).astype(np.float32)
    if sigma < 0.35:
        return imp
    return cv2.GaussianBlur(imp, (0, 0), sigma) * (2 * np.pi * sigma**2)


def hair(
    rng: np.random.Generator, h: int, w: int, count: int, scale: float, direction: float
) -> np.ndarray:
    """Hair strands as an alpha map, (H, W) float32 on 0..1: thin curved strokes.

    Strands share a growth `direction` (radians) with some spread, as on a body site.
    """
    canvas = np.zeros((h, w), np.uint8)
    thick = max(1, int(round(0.9 * scale)))
    t = np.linspace(0.0, 1.0, 9, dtype=np.float32)[:, None]
    for _ in range(count):
        p0 = rng.uniform(-0.1, 1.1, 2) * (w, h)
        ang = direction + rng.normal(0, 0.35)
        length = rng.uniform(20, 75) * scale
        d = np.array([math.cos(ang), math.sin(ang)])
        normal = np.array([-d[1], d[0]])
        p2 = p0 + d * length
        p1 = (p0 + p2) / 2 + normal * rng.normal(0, 0.18) * length  # bend
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        value = int(rng.uniform(150, 255))
        cv2.polylines(
            canvas, [np.round(pts * 16).astype(np.int32)], False, value, thick, cv2.LINE_AA, shift=4
        )
    alpha = canvas.astype(np.float32) / 255.0
    return alpha * min(1.0, 0.35 + 0.65 * scale)  # sub-pixel hairs at small sizes read fainter


def hair_mat(
    rng: np.random.Generator, skin: np.ndarray, scale: float, direction: float, colour: np.ndarray
) -> np.ndarray:
    """Skin covered by dense hair (scalp, beard), (H, W, 3) float32: `skin` (H, W, 3) shaded
    under long strands of `colour` that hide most of it."""
    h, w = skin.shape[:2]
    count = int(rng.uniform(900, 1500) * (h * w) / 256**2)
    alpha = np.zeros((h, w), np.float32)
    for _ in range(2):  # two layers: strands cross
        alpha = np.maximum(alpha, hair(rng, h, w, count // 2, scale * 1.3, direction + rng.normal(0, 0.3)))
    alpha = np.clip(alpha * 1.6, 0, 1)
    shade = (0.75 + 0.5 * noise(rng, h, w, 2.0 * scale))[..., None]  # strands catch the light unevenly
    under = skin * 0.55  # shadowed by the hair above
    return under + (colour[None, None, :] * shade - under) * alpha[..., None]


def skin_edge(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Signed distance in px to a wavy skin border (> 0 on skin), (H, W) float32."""
    yy, xx = grid(h, w)
    theta = rng.uniform(0, 2 * np.pi)
    size = float(max(h, w))
    u = ((xx - w / 2) * math.cos(theta) + (yy - h / 2) * math.sin(theta)) / size + 0.5
    warp = 0.05 * noise(rng, h, w, 70 * scale) + 0.01 * noise(rng, h, w, 15 * scale)
    return (u + warp - rng.uniform(0.15, 0.38)) * size


def background(rng: np.random.Generator, h: int, w: int, scale: float, kind: str) -> np.ndarray:
    """Out-of-focus clothing fabric or table surface, (H, W, 3) float32.

    Fabric is drawn at twice the size and averaged down, so its weave does not alias into moire.
    """
    h0, w0 = h, w
    if kind == "fabric":
        h, w, scale = 2 * h, 2 * w, 2 * scale
    yy, xx = grid(h, w)
    theta = rng.uniform(0, np.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    if kind == "fabric":
        colour = FABRICS[rng.integers(len(FABRICS))]
        p = rng.uniform(2.0, 3.5) * scale
        over = (np.floor(u / p) + np.floor(v / p)) % 2 == 0  # plain weave: over, under
        weave = np.where(
            over,
            np.cos(np.pi * (v % p) / p - np.pi / 2) ** 2,
            np.cos(np.pi * (u % p) / p - np.pi / 2) ** 2,
        )
        fibre = noise(rng, h, w, 1.0) * 0.05 + noise(rng, h, w, 6 * scale) * 0.05
        folds = 0.18 * noise(rng, h, w, 80 * scale)  # soft folds of the cloth
        tex = (0.82 + 0.22 * weave + fibre) * (1 + folds)
    else:
        colour = TABLES[rng.integers(len(TABLES))]
        along = noise(rng, h, w, 60 * scale)
        grain = np.sin(2 * np.pi * (v + 8 * scale * along) / (rng.uniform(4, 9) * scale))
        amount = 0.045 if colour[0] - colour[2] > 0.2 else 0.015  # wood grain vs laminate
        tex = (
            1 + amount * grain + 0.03 * noise(rng, h, w, 1.0) + 0.05 * noise(rng, h, w, 40 * scale)
        )
    img = colour[None, None, :] * tex[..., None].astype(np.float32)
    img *= rng.uniform(0.85, 1.1)
    if (h, w) != (h0, w0):
        img = cv2.resize(img, (w0, h0), interpolation=cv2.INTER_AREA)
        scale /= 2
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), max(0.3, 0.7 * scale))


def lighting(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    """Uneven illumination (smooth gradient x vignetting x exposure), (H, W) float32,
    and the light's direction in the image plane (radians, pointing toward the light)."""
    yy, xx = grid(h, w)
    phi = rng.uniform(0, 2 * np.pi)
    x, y = xx / w - 0.5, yy / h - 0.5
    gradient = 1 + rng.uniform(0.08, 0.35) * (x * math.cos(phi) + y * math.sin(phi)) * 2
    cx, cy = rng.normal(0, 0.1, 2)
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) * 2
    vignette = 1 - rng.uniform(0.08, 0.35) * r2
    return (gradient * vignette * rng.uniform(0.85, 1.02)).astype(np.float32), float(phi)


def shade_patches(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """Soft shade anywhere in the frame, (H, W) float32 in (0.5, 1]: what a hand, the phone
    or a fold of the body casts on skin. `lighting` darkens only toward the frame's edge, so a
    model trained on it alone may take shaded skin at the edge for a sign (docs/rotation.md)."""
    field = noise(rng, h, w, rng.uniform(90, 180) * s)
    level = rng.uniform(-0.3, 1.0)  # about 15-60 % of the frame in shade
    soft = rng.uniform(0.3, 0.8)
    covered = 1 / (1 + np.exp(-(field - level) / soft))
    return (1 - rng.uniform(0.2, 0.5) * covered).astype(np.float32)


def shade(
    height: np.ndarray, phi: float, elevation: float, sheen: np.ndarray | float, shininess: float
) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse factor (1 on flat skin) and specular highlight from a height map in px.

    height: (H, W) float32; phi: light direction in the image plane; elevation: radians.
    """
    hy, hx = np.gradient(height)
    gy, gx = np.gradient(cv2.GaussianBlur(height, (0, 0), 1.0))  # highlights: broad relief only
    lx, ly, lz = (
        math.cos(phi) * math.cos(elevation),
        math.sin(phi) * math.cos(elevation),
        math.sin(elevation),
    )
    norm = np.sqrt(1 + hx * hx + hy * hy)
    diffuse = (lz - hx * lx - hy * ly) / (norm * lz)
    hn = math.sqrt(lx * lx + ly * ly + (lz + 1.0) ** 2)
    hvx, hvy, hvz = lx / hn, ly / hn, (lz + 1.0) / hn  # half vector (light + view)
    ndoth = np.clip((hvz - gx * hvx - gy * hvy) / np.sqrt(1 + gx * gx + gy * gy), 0, 1)
    spec = np.clip(ndoth**shininess - hvz**shininess, 0, None) * sheen
    return np.clip(diffuse, 0.35, 1.5).astype(np.float32), spec.astype(np.float32)


def shadow(alpha: np.ndarray, phi: float, offset: float, blur: float) -> np.ndarray:
    """Soft shadow (H, W) float32 of what alpha (H, W) covers (hair, a ruler), cast `offset` px
    away from the light at `phi` (radians) and blurred by `blur` px (at least 0.3)."""
    h, w = alpha.shape
    m = np.float32([[1, 0, -offset * math.cos(phi)], [0, 1, -offset * math.sin(phi)]])
    return cv2.GaussianBlur(cv2.warpAffine(alpha, m, (w, h)), (0, 0), max(0.3, blur))
