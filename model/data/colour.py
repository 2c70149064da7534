"""White balance for skin photos: per-channel gains in linear light (pure numpy).

    from model.data.colour import GreyWorld, balance
    out, gains = balance(photo, "grey-world", reference=ref)    # same shape and dtype as photo
    out, gains = balance(photo, "patch", box=(x0, y0, x1, y1))  # a box that should be neutral

A change of light multiplies each colour channel of the scene's linear light by a gain (von
Kries), so white balance divides those gains back out, in linear light (sRGB decoded), and
re-encodes. Every method keeps the photo's brightness (the luminance of its statistic, or of
the patch) unless it is given a target luminance (exposure, below).

- **grey-world** (`GreyWorld`): classic grey-world makes a photo's mean colour grey. Skin is
  not grey, and erythema *is* a colour: a model trained on unbalanced photos would see every
  red plaque turned grey. So the target is not grey but the model's **training reference**:
  the median chromaticity that the same statistic has over the training photos (stored in
  config.json, `input.white_reference`; `reference_from_config`). Gains move a photo's
  statistic onto that reference. The statistic is a shades-of-grey p-norm of the linear
  channels (p = 1, the mean) over the photo's well-exposed pixels (clipped and black pixels
  carry no illuminant colour). A redder photo than the reference is made a little less red,
  so the balance costs some accuracy on photos taken in good light (measured: docs/robustness.md).
  Chosen by measurement over two alternatives (docs/robustness.md): p = 6 (leaning to the
  bright pixels) and `axis="planckian"`, which removes only the light source on the black-body
  locus that explains the cast, 2500-10000 K, meant to keep redness that is not lighting. It
  kept little (redness lies mostly along the same warm-cool axis as the light) and removed a
  tungsten cast less completely than correcting every chromatic difference (the default).
- **patch**: the clinician marks a box that should be neutral (a white or grey card, paper, a
  ruler): gains make its median grey with its own luminance. The most faithful method when a
  neutral object is in view; nothing to learn from training data.
- **none**: the photo as taken.

**Exposure** (`luminance=` in `balance`, with grey-world or patch): one more gain, the same on
R, G and B, brings the luminance of the photo's statistic to the median of the training
photos' (`exposure_gain`, within +-EXPOSURE_STOPS). A change of exposure is a gain in linear
light too, so this divides it out as the balance divides out a colour cast; only clipped
highlights stay lost. A model trained with `--normalise-exposure` stores the target
(`input.white_reference.luminance`) and `input.normalise_exposure`, and `exposure_target`
gives it to the predictor. It is a training setting, not a prediction option: applied to the
eighth-stage demo model (trained without it) it took the lichenification drift under exposure
-1 stop from a p95 of 0.73 to 0.05, but cost lichenification image MAE 0.26 -> 0.35.

Channels: `rgb` gives the indices of the red, green and blue planes; other planes (a UV or
polarised channel) are left as they are; without colour planes nothing is balanced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("none", "grey-world", "patch")
DEFAULT_METHOD = "grey-world"
AXES = ("planckian", "chroma")
# Rec. 709 / sRGB luminance weights of linear R, G, B.
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
# linear sRGB from CIE XYZ (D65)
XYZ_TO_RGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
REFERENCE_KELVIN = 6500.0
KELVIN_RANGE = (2500.0, 10000.0)  # the light sources a clinic or a home has
STAT_SIDE = 256  # the statistic is taken on a copy thinned to about this longest side
RGB = (0, 1, 2)


# -- linear light ---------------------------------------------------------------------------
def to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB on 0..1 (any shape) -> linear light float32 on 0..1 (the sRGB transfer curve)."""
    x = np.clip(np.asarray(srgb, np.float32), 0, 1)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (any shape) -> sRGB float32 on 0..1, clipped."""
    x = np.clip(np.asarray(linear, np.float32), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _unit(a: np.ndarray) -> np.ndarray:
    """Any dtype -> float32 on 0..1 (integers by their range, floats clipped, NaN as 0)."""
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    return np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0, 1)


def planckian_xy(kelvin: float) -> tuple[float, float]:
    """CIE 1931 (x, y) of a black body at `kelvin` (Kim et al. 2002 cubic fit, 1667..25000 K)."""
    t = float(np.clip(kelvin, 1667.0, 25000.0))
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def planckian_gains(kelvin: float, reference: float = REFERENCE_KELVIN) -> np.ndarray:
    """(3,) float32 von Kries gains on linear R, G, B that relight a scene lit at `reference`
    kelvin as if lit at `kelvin` (white of equal luminance): 3000 K gives about (1.7, 0.86, 0.26)."""

    def white(t: float) -> np.ndarray:
        x, y = planckian_xy(t)
        return XYZ_TO_RGB @ np.array([x / y, 1.0, (1 - x - y) / y])

    return (white(kelvin) / white(reference)).astype(np.float32)


def _chromatic(logs: np.ndarray) -> np.ndarray:
    """The chromatic part of log gains (..., 3): minus their mean (an exposure change)."""
    return logs - logs.mean(axis=-1, keepdims=True)


# Log gains of the light sources in KELVIN_RANGE, relative to REFERENCE_KELVIN, evenly in
# mireds (1e6 / K: equal steps look about equally different), chromatic part: (n, 3).
LOCUS_KELVIN = 1e6 / np.linspace(1e6 / KELVIN_RANGE[0], 1e6 / KELVIN_RANGE[1], 241)
_LOCUS = _chromatic(np.log(np.stack([planckian_gains(k) for k in LOCUS_KELVIN])).astype(np.float64))


# -- the statistic --------------------------------------------------------------------------
@dataclass(frozen=True)
class GreyWorld:
    """Grey-world relative to the training reference. p: the shades-of-grey norm of the linear
    channels (1 = the mean, larger leans to the bright pixels); axis: "planckian" removes the
    light source (a black body in KELVIN_RANGE) that explains most of the cast and leaves the
    rest (keeps redness that is not lighting), "chroma" removes every chromatic difference
    from the reference."""

    p: float = 1.0
    axis: str = "chroma"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.p) and self.p >= 1):
            raise ValueError(f"GreyWorld.p must be a number >= 1, got {self.p!r}")
        if self.axis not in AXES:
            raise ValueError(f"GreyWorld.axis must be one of {list(AXES)}, got {self.axis!r}")

    @property
    def statistic(self) -> str:
        """The statistic's name, stored with a reference (a reference fits only its own statistic)."""
        return f"linear-p{self.p:g}"


DEFAULT = GreyWorld()


def _rgb_planes(image: np.ndarray, rgb: Sequence[int] | None) -> tuple[np.ndarray, tuple[int, int, int] | None]:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"expected an (H, W) or (H, W, C) image with at least one pixel, got shape {np.shape(image)}")
    if rgb is None or a.shape[2] < 3:
        return a, None
    idx = tuple(int(i) for i in rgb)
    if len(idx) != 3 or len(set(idx)) != 3 or not all(0 <= i < a.shape[2] for i in idx):
        raise ValueError(f"rgb must be 3 distinct channel indices below {a.shape[2]}, got {rgb!r}")
    return a, idx  # type: ignore[return-value]


def photo_statistic(image: np.ndarray, cfg: GreyWorld = DEFAULT, rgb: Sequence[int] | None = RGB) -> np.ndarray | None:
    """(3,) float64 shades-of-grey p-norm of the linear R, G, B over the well-exposed pixels
    (no channel clipped at 0.98, brightest channel above 0.02); None without colour planes.

    image: (H, W, C) any dtype (floats on 0..1); taken on a copy thinned to about STAT_SIDE px.
    """
    a, idx = _rgb_planes(image, rgb)
    if idx is None:
        return None
    step = max(1, max(a.shape[:2]) // STAT_SIDE)
    x = _unit(a[::step, ::step][:, :, list(idx)]).reshape(-1, 3)
    ok = (x.max(axis=1) < 0.98) & (x.max(axis=1) > 0.02)
    if ok.sum() >= max(16, 0.05 * len(x)):
        x = x[ok]
    lin = to_linear(x).astype(np.float64)
    stat = np.mean(lin**cfg.p, axis=0) ** (1 / cfg.p)
    return np.maximum(stat, 1e-6)


def chromaticity(stat: np.ndarray) -> np.ndarray:
    """(3,) linear RGB -> the same colour at luminance 1 (what a reference stores)."""
    stat = np.maximum(np.asarray(stat, np.float64), 1e-6)
    return stat / float(LUMA @ stat)


def training_reference(images: Iterable[np.ndarray], cfg: GreyWorld = DEFAULT, rgb: Sequence[int] | None = RGB) -> dict:
    """The reference of a training set: {"rgb": (3,) median chromaticity of `cfg`'s statistic
    over the photos, "statistic": cfg.statistic, "n": photos, "luminance": median luminance of
    the statistic (linear, 0..1: the target of exposure normalisation)}; stored in config.json."""
    stats = [s for im in images if (s := photo_statistic(im, cfg, rgb)) is not None]
    if not stats:
        raise ValueError("no photo with red, green and blue channels to take a white reference from")
    ref = chromaticity(np.median(np.stack([chromaticity(s) for s in stats]), axis=0))
    lum = float(np.median([float(LUMA @ s) for s in stats]))
    return {"rgb": [round(float(v), 6) for v in ref], "statistic": cfg.statistic, "n": len(stats),
            "luminance": round(lum, 6)}


def reference_for_channels(images: Iterable[np.ndarray], channels: Sequence[str]) -> dict | None:
    """`training_reference` of a training set with named channels (what `dermsev train` stores
    as config["input"]["white_reference"]); None without red, green and blue channels."""
    idx = rgb_indices(channels)
    return None if idx is None else training_reference(images, DEFAULT, idx)


def stored_reference(config: dict, cfg: GreyWorld = DEFAULT) -> np.ndarray | None:
    """(3,) config["input"]["white_reference"] when it was taken with `cfg`'s statistic, else None."""
    inp = config.get("input", {}) if isinstance(config, dict) else {}
    ref = inp.get("white_reference")
    if isinstance(ref, dict) and ref.get("statistic") == cfg.statistic and len(ref.get("rgb", ())) == 3:
        return chromaticity(np.array(ref["rgb"], np.float64))
    return None


def exposure_target(config: dict, cfg: GreyWorld = DEFAULT) -> float | None:
    """The luminance a model's photos are normalised to (`balance`'s `luminance`): its stored
    reference's, when the model was trained on exposure-normalised photos; else None."""
    inp = config.get("input", {}) if isinstance(config, dict) else {}
    ref = inp.get("white_reference")
    if not inp.get("normalise_exposure") or stored_reference(config, cfg) is None:
        return None
    lum = ref.get("luminance")
    return float(lum) if isinstance(lum, (int, float)) and np.isfinite(lum) and lum > 0 else None


def reference_from_config(config: dict, cfg: GreyWorld = DEFAULT) -> np.ndarray:
    """(3,) reference chromaticity of a model: its stored reference (`stored_reference`); else
    (models trained before it was stored) the training pixels' mean colour, config["input"]
    ["mean"], decoded to linear light (the mean of whole photos in sRGB, not the same statistic:
    about 10 % off in blue for the demo model); else neutral."""
    stored = stored_reference(config, cfg)
    if stored is not None:
        return stored
    inp = config.get("input", {}) if isinstance(config, dict) else {}
    mean = inp.get("mean")
    if isinstance(mean, (list, tuple)) and len(mean) == 3:
        return chromaticity(to_linear(np.array(mean, np.float32)).astype(np.float64))
    return chromaticity(np.ones(3))


# -- gains ----------------------------------------------------------------------------------
def grey_world_gains(image: np.ndarray, reference: np.ndarray, cfg: GreyWorld = DEFAULT,
                     rgb: Sequence[int] | None = RGB) -> np.ndarray:
    """(3,) gains on linear R, G, B that move the photo's statistic onto `reference` (a (3,)
    chromaticity) at the statistic's own luminance; ones without colour planes."""
    return _cast_gains(photo_statistic(image, cfg, rgb), reference, cfg)


def _cast_gains(stat: np.ndarray | None, reference: np.ndarray, cfg: GreyWorld) -> np.ndarray:
    """`grey_world_gains` from the photo's statistic (None: no colour planes)."""
    if stat is None:
        return np.ones(3, np.float32)
    d = _chromatic(np.log(chromaticity(stat)) - np.log(chromaticity(reference)))  # the cast, in log gains
    if cfg.axis == "planckian":  # the light source on the locus that explains most of the cast
        d = _LOCUS[int(np.argmin(np.sum((_LOCUS - d) ** 2, axis=1)))]
    gains = np.exp(-d)
    return (gains / float(LUMA @ (chromaticity(stat) * gains))).astype(np.float32)


EXPOSURE_STOPS = 2.0  # exposure normalisation moves a photo by at most this many stops


def exposure_gain(image: np.ndarray, gains: np.ndarray, luminance: float, cfg: GreyWorld = DEFAULT,
                  rgb: Sequence[int] | None = RGB) -> float:
    """The gain, the same on linear R, G and B, that brings the luminance of the photo's
    statistic, after `gains`, to `luminance` (clamped to +-EXPOSURE_STOPS); 1 without colour planes."""
    return _exposure_of(photo_statistic(image, cfg, rgb), gains, luminance)


def _exposure_of(stat: np.ndarray | None, gains: np.ndarray, luminance: float) -> float:
    """`exposure_gain` from the photo's statistic (None: no colour planes)."""
    if stat is None:
        return 1.0
    now = float(LUMA @ (stat * np.asarray(gains, np.float64)))
    lim = 2.0**EXPOSURE_STOPS
    return float(np.clip(luminance / max(now, 1e-6), 1 / lim, lim))


def parse_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) as 4 finite floats; ValueError otherwise."""
    try:
        out = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 4 or not all(np.isfinite(out)):
        raise ValueError(f"neutral box must be 4 numbers x0, y0, x1, y1, got {box!r}")
    return out  # type: ignore[return-value]


def patch_gains(image: np.ndarray, box: Sequence[float], rgb: Sequence[int] | None = RGB) -> np.ndarray:
    """(3,) gains that make the median colour of `box` = (x0, y0, x1, y1) (pixels, x1/y1
    exclusive; clipped to the photo) neutral grey with its own luminance.

    Raises ValueError for a box outside the photo or an empty or black patch.
    """
    a, idx = _rgb_planes(image, rgb)
    x0, y0, x1, y1 = (int(round(v)) for v in parse_box(box))
    h, w = a.shape[:2]
    x0, x1 = sorted((max(0, min(w, x0)), max(0, min(w, x1))))
    y0, y1 = sorted((max(0, min(h, y0)), max(0, min(h, y1))))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"neutral box {tuple(box)} holds no pixel of the {w}x{h} photo")
    if idx is None:
        return np.ones(3, np.float32)
    patch = to_linear(_unit(a[y0:y1, x0:x1][:, :, list(idx)])).reshape(-1, 3)
    med = np.median(patch, axis=0).astype(np.float64)
    if med.min() <= 1e-4:
        raise ValueError("neutral box is black in a colour channel: pick a light grey or white area")
    return (float(LUMA @ med) / med).astype(np.float32)


def apply_gains(image: np.ndarray, gains: np.ndarray, rgb: Sequence[int] | None = RGB) -> np.ndarray:
    """The photo with its R, G, B multiplied by `gains` (3,) in linear light: same shape and
    dtype (uint8 and uint16 through exact per-channel look-up tables; floats on 0..1)."""
    a, idx = _rgb_planes(image, rgb)
    g = np.asarray(gains, np.float32).reshape(-1)
    if g.shape != (3,) or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"gains must be 3 positive numbers, got {gains!r}")
    if idx is None or np.allclose(g, 1, atol=1e-4):
        return np.asarray(image)
    out = np.array(a, copy=True)
    for c, gc in zip(idx, g, strict=True):
        if a.dtype in (np.uint8, np.uint16):
            top = np.iinfo(a.dtype).max
            levels = np.arange(top + 1, dtype=np.float32) / top
            lut = np.rint(to_srgb(to_linear(levels) * gc) * top).astype(a.dtype)
            out[:, :, c] = lut[a[:, :, c]]
        else:
            out[:, :, c] = to_srgb(to_linear(_unit(a[:, :, c])) * gc).astype(out.dtype, copy=False)
    return out.reshape(np.shape(image))


def rgb_indices(channels: Sequence[str]) -> tuple[int, int, int] | None:
    """Indices of the channels named red, green and blue (any case); None if any is missing."""
    names = [str(n).lower() for n in channels]
    if not all(n in names for n in ("red", "green", "blue")):
        return None
    return names.index("red"), names.index("green"), names.index("blue")


def check_method(method: str) -> str:
    """The method if it is one of METHODS, else ValueError naming them."""
    if method not in METHODS:
        raise ValueError(f"white balance must be one of {list(METHODS)}, got {method!r}")
    return method


def balance(image: np.ndarray, method: str, reference: np.ndarray | None = None,
            box: Sequence[float] | None = None, cfg: GreyWorld = DEFAULT,
            rgb: Sequence[int] | None = RGB, luminance: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """White-balance a photo: ((H, W, C) balanced, same dtype; (3,) gains applied).

    method: "none", "grey-world" (towards `reference`, a (3,) chromaticity; neutral if None)
    or "patch" (needs `box`). luminance: also normalise the exposure to this luminance of the
    statistic (`exposure_gain`; not with "none"). Raises ValueError naming the allowed methods.
    """
    if check_method(method) == "none":
        return np.asarray(image), np.ones(3, np.float32)
    stat = None  # the photo's statistic, taken once for the cast and the exposure
    if method == "patch":
        if box is None:
            raise ValueError("white balance 'patch' needs a neutral box (x0, y0, x1, y1)")
        gains = patch_gains(image, box, rgb)
    else:
        ref = chromaticity(np.ones(3)) if reference is None else np.asarray(reference, np.float64)
        stat = photo_statistic(image, cfg, rgb)
        gains = _cast_gains(stat, ref, cfg)
    if luminance is not None:
        if method == "patch":
            stat = photo_statistic(image, cfg, rgb)
        gains = (gains * _exposure_of(stat, gains, luminance)).astype(np.float32)
    return apply_gains(image, gains, rgb), gains
