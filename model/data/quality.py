"""Photo checks: can this photo be scored? Pass, warn or fail, with reasons a clinician reads.

    from model.data.quality import check_photo
    check = check_photo(image)          # (H, W, C) array, any dtype and channel count
    check.verdict, check.reasons        # "warn", ("slightly out of focus: ...",)
    check.skin_fraction, check.skin     # 0..1, (H, W) bool

Every check runs on the photo reduced to a fixed working size (longest side SIDE px; a
smaller photo is measured as it is, never enlarged, as enlarging would blur it), so a
threshold means the same for a 12-MP photo and a 300-px crop; the size check reads the
original size against the model's working size. The checks and their measures (`measures`):

| check | measure | fails / warns when |
|---|---|---|
| too small | `scale`: longest side of the original / the model's working size | below `Limits.scale`, or a side under MIN_SIDE px |
| blur | `sharpness`: variance of the Laplacian of the grey image (0..255); `detail`: that variance over the same at half the size | below `Limits.sharpness` or `Limits.detail` |
| exposure | `brightness` (median L*), `highlights` / `shadows` (fraction of pixels clipped: every channel >= 0.98 / <= 0.02), `saturated` (fraction with some but not every channel >= 0.98: a colour burnt out) | outside `Limits.dark` / `bright`, above `Limits.clipped` / `Limits.saturated` |
| noise | `noise`: grey-level standard deviation of the flattest tenth of the photo (Immerkaer), on photos at least the model's working size and 128 px a side | above `Limits.noise` |
| JPEG compression | `jpeg_quality`: the file's JPEG quality (1..100, from its quantisation tables, `model.data.io.jpeg_quality`), judged on a photo stored at up to 1.5x the model's working size (a larger one is reduced, and its compression artefacts with it) | below `Limits.jpeg_quality` |
| colour cast | `cast`: how far the photo's median (a*, b*) lies outside the skin-photo range, in a*/b* units | above `Limits.cast` |
| not skin | `skin_fraction` (model/data/skin.py), `structure` (large-scale outlines), `colourful` (95th-percentile chroma) | too little skin, too much structure, no colour |

The thresholds (`Limits`) were measured, not guessed: `bench/bench_gate.py` degrades
synthetic skin photos step by step and finds where the demo model's scores start to drift,
and measures detection and false alarms (docs/gate.md). A photo whose checks cannot be
judged (too small to measure, no colour channels) is not failed for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from model.data import skin as sk
from model.data.io import resize_mask

SIDE = 256  # longest side of the working size the checks measure at
MIN_SIDE = 32  # px: a photo with a shorter side is too small whatever the model (model/data/io.py)
VERDICTS = ("pass", "warn", "fail")


@dataclass(frozen=True)
class Limits:
    """(fail, warn) thresholds of each check; each pair is ordered from fail to warn."""

    # photo's longest side / model working size; below = too small. Warn below the working size
    # itself: a smaller photo is enlarged, and its texture with it; scores drift at 0.75x and
    # 0.5x with a 95th percentile of 0.5-1.2 (docs/robustness.md), though the median barely moves.
    scale: tuple[float, float] = (0.375, 1.0)
    sharpness: tuple[float, float] = (20.0, 40.0)  # variance of the Laplacian; below = blurred
    # the finest detail against the next scale up: a smooth but sharp photo keeps its ratio, a
    # defocused one loses its finest detail first. Sharpness alone passes a defocused photo of
    # coarse texture (a sigma of 1 px left 17 of 100 photos above its limits, and their scores
    # drifted by up to 0.9). Synthetic photos (bench/bench_gate.py, seed 77): clean 0.30-0.70,
    # blurred by sigma 0.5 px 0.21-0.39, 1 px 0.11-0.16; real photos (scikit-image) 0.36-1.06.
    # Warn only: a photo smoothed by a phone's processing may read as soft without being blurred.
    detail: tuple[float, float] = (0.0, 0.19)
    dark: tuple[float, float] = (8.0, 12.0)  # median L*; below = too dark
    bright: tuple[float, float] = (92.0, 85.0)  # median L*; above = too bright
    clipped: tuple[float, float] = (0.25, 0.10)  # fraction of clipped pixels; above
    # fraction of pixels with one or two channels (not all three) burnt out, usually red on bright
    # skin: redness there can no longer be read. Exposed up by 0.5-1.5 stops (bench_gate's photos,
    # seed 77), scores moved by over 0.3 on 1 % of photos with under 10 % of pixels saturated and on
    # 38-50 % of those with 10-30 %. But clean light skin has it too, and the model scores it well:
    # warned from a fifth, 36 % of the Fitzpatrick I photos of docs/gate.md's false-alarm set were
    # warned (12 % without the check); from 30 %, 17 %. Warned from 30 %, never failed.
    saturated: tuple[float, float] = (1.0, 0.3)
    cast: tuple[float, float] = (12.0, 6.0)  # a*/b* units outside the skin-photo range; above
    skin: tuple[float, float] = (0.25, 0.5)  # skin fraction; below = not skin / little skin
    structure: tuple[float, float] = (2.6, 2.3)  # L* units; above = not a close-up
    noise: tuple[float, float] = (3.5, 2.2)  # grey-level sd at the working size; above = grainy
    jpeg_quality: tuple[float, float] = (75.0, 92.0)  # the file's JPEG quality (1..100); below = compressed

    def __post_init__(self) -> None:
        for name in ("scale", "sharpness", "detail", "dark", "skin", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"Limits.{name}: the fail threshold {lo} must not exceed the warn one {hi}")
        for name in ("bright", "clipped", "saturated", "cast", "structure", "noise"):
            hi, lo = getattr(self, name)
            if lo > hi:
                raise ValueError(f"Limits.{name}: the warn threshold {lo} must not exceed the fail one {hi}")


LIMITS = Limits()
# For photos that are white-balanced before scoring: a colour cast no longer matters.
NO_CAST = Limits(cast=(float("inf"), float("inf")))
# The range of a skin photo's median (a*, b*): skin is reddish-yellow (measured, docs/gate.md).
CAST_A = (2.0, 30.0)
CAST_B = (6.0, 32.0)


@dataclass(frozen=True, eq=False)
class PhotoCheck:
    """The gate's verdict on one photo.

    verdict: "pass", "warn" (scores may drift) or "fail" (not skin, or too blurred, dark,
    bright or small to score); reasons: in words a clinician understands, empty for pass;
    skin_fraction: 0..1; skin: (H, W) bool at the input's size; measures: the numbers behind it.
    """

    verdict: str
    reasons: tuple[str, ...]
    skin_fraction: float
    skin: np.ndarray
    measures: dict = field(default_factory=dict)


def to_unit(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) array of any dtype -> (H, W, C) float32 on 0..1 (floats taken as 0..1).

    Huge arrays are thinned by striding first, so no full-size float copy is ever made.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    step = max(1, max(a.shape[:2]) // (4 * SIDE))
    a = a[::step, ::step]
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):
        top = float(np.iinfo(a.dtype).max)
        return np.clip(a.astype(np.float32) / top, 0, 1)
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(a, 0, 1)


def working(unit: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 -> (h, w, C) with longest side at most SIDE (area averaging; never enlarged)."""
    h, w = unit.shape[:2]
    scale = SIDE / max(h, w)
    if scale >= 1:
        return unit
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    planes = [cv2.resize(np.ascontiguousarray(unit[:, :, i]), size, interpolation=cv2.INTER_AREA)
              for i in range(unit.shape[2])]
    return np.stack([p.reshape(size[1], size[0]) for p in planes], axis=2)


def rgb_of(work: np.ndarray, channels: list[str] | tuple[str, ...] | None) -> np.ndarray | None:
    """The (h, w, 3) red, green, blue planes: by name when channels are named, else the first
    three of C >= 3 (a grey photo repeated), None when the photo has no colour channels."""
    c = work.shape[2]
    if channels is not None:
        names = [str(n).lower() for n in channels]
        if len(names) == c and all(n in names for n in ("red", "green", "blue")):
            return work[:, :, [names.index(n) for n in ("red", "green", "blue")]]
        return None
    if c >= 3:
        return work[:, :, :3]
    return np.repeat(work[:, :, :1], 3, axis=2)  # a grey photo: judged as one, it has no colour


def cast_distance(a: float, b: float) -> float:
    """How far (a*, b*) lies outside the box CAST_A x CAST_B, in a*/b* units (0 inside)."""
    da = max(CAST_A[0] - a, 0.0, a - CAST_A[1])
    db = max(CAST_B[0] - b, 0.0, b - CAST_B[1])
    return float(np.hypot(da, db))


def measure(image: np.ndarray, full_size: tuple[int, int] | None = None,
            channels: list[str] | tuple[str, ...] | None = None, work_size: int = SIDE,
            jpeg_quality: int | None = None) -> tuple[dict, np.ndarray | None]:
    """The numbers every check reads, and the (h, w) working-size skin mask (None: no colour).

    image: (H, W[, C]) any dtype; full_size: (H, W) of the original photo when `image` is
    already reduced (the predictor's working image); channels: the channel names, if known;
    work_size: the longest side the model scores at (the photo is enlarged to it when smaller);
    jpeg_quality: the file's JPEG quality when it was a JPEG (`model.data.io.jpeg_quality`).
    """
    unit = to_unit(image)
    h, w = full_size or np.asarray(image).shape[:2]
    m: dict = {"min_side": int(min(h, w)), "size": [int(h), int(w)], "scale": max(h, w) / max(work_size, 1),
                 "work_size": int(work_size)}
    if unit.size == 0:
        return m, None
    work = working(unit)
    grey = work.mean(axis=2) if work.shape[2] != 3 else cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    rgb = rgb_of(work, channels)
    if min(work.shape[:2]) >= 8:
        m["sharpness"] = float(cv2.Laplacian(grey * 255, cv2.CV_32F).var())
    if min(work.shape[:2]) >= 32:
        m["detail"] = detail(grey, m["sharpness"])
    # grain is judged on photos at least the model's working size: a smaller one is enlarged
    # (which smooths grain), and reducing a photo packs its fine texture into a few pixels,
    # where it reads as grain; the size check speaks for small photos
    if m["scale"] >= 1 and (level := noise_level(grey)) is not None:
        m["noise"] = level
    # JPEG artefacts are judged where the model sees them: on a photo stored at about its working
    # size (a photo several times larger is reduced, and its 8-px blocks with it)
    if jpeg_quality is not None and m["scale"] <= 1.5:
        m["jpeg_quality"] = int(jpeg_quality)
    top = (rgb if rgb is not None else work).max(axis=2)
    bottom = (rgb if rgb is not None else work).min(axis=2)
    m["highlights"], m["shadows"] = float((bottom >= 0.98).mean()), float((top <= 0.02).mean())
    if rgb is not None:
        m["saturated"] = float(((top >= 0.98) & (bottom < 0.98)).mean())
    if rgb is None:
        m["brightness"] = float(np.median(grey) * 100)
        return m, None
    lab = sk.to_lab(rgb)
    m["brightness"] = float(np.median(lab[..., 0]))
    m["colourful"] = float(np.percentile(sk.chroma_hue(lab)[0], 95))
    a, b = float(np.median(lab[..., 1])), float(np.median(lab[..., 2]))
    m["median_a"], m["median_b"], m["cast"] = a, b, cast_distance(a, b)
    if min(work.shape[:2]) >= 8:
        m["structure"] = sk.structure(lab[..., 0], max(work.shape[:2]) / SIDE)
    skin = sk.skin_mask(lab)
    m["skin_fraction"] = float(skin.mean())
    return m, skin


def detail(grey: np.ndarray, sharpness: float) -> float:
    """How much of a photo's detail lies at its finest scale: `sharpness`, the variance of the
    Laplacian of the (h, w) grey image (0..1, as `measure` takes it), over that of the image at
    half the size (area-averaged). Unlike the variance alone it does not fall with a smooth
    subject, only with lost fine detail (blur)."""
    g = np.ascontiguousarray(grey, dtype=np.float32) * 255
    half = cv2.resize(g, (max(1, g.shape[1] // 2), max(1, g.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    coarse = float(cv2.Laplacian(half, cv2.CV_32F).var())
    return sharpness / coarse if coarse > 1e-6 else 1.0


_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_level(grey: np.ndarray, tile: int = 16) -> float | None:
    """Sensor noise, as a standard deviation in 0..255 grey levels: Immerkaer's estimator
    (a 3x3 mask that cancels edges and smooth gradients) on tile x tile tiles, the 10th
    percentile of the tiles, so that texture and edges (most tiles of a skin photo) do not
    count as noise. None on a photo of fewer than 8 x 8 tiles (128 px a side): too few to hold a
    flat one, and a small photo packs its texture into a few pixels, where it reads as grain."""
    h, w = grey.shape
    if min(h, w) < 8 * tile:
        return None
    r = np.abs(cv2.filter2D(grey.astype(np.float32) * 255, cv2.CV_32F, _IMMERKAER))[1:-1, 1:-1]
    th, tw = r.shape[0] // tile, r.shape[1] // tile
    tiles = r[: th * tile, : tw * tile].reshape(th, tile, tw, tile).mean(axis=(1, 3))
    return float(np.sqrt(np.pi / 2) / 6 * np.percentile(tiles, 10))


def _below(value: float | None, pair: tuple[float, float]) -> int:
    """2 (fail) below pair[0], 1 (warn) below pair[1], else 0; 0 when not measured."""
    return 0 if value is None else 2 if value < pair[0] else 1 if value < pair[1] else 0


def _above(value: float | None, pair: tuple[float, float]) -> int:
    return 0 if value is None else 2 if value > pair[0] else 1 if value > pair[1] else 0


def judge(m: dict, limits: Limits = LIMITS) -> tuple[str, tuple[str, ...]]:
    """(verdict, reasons) from `measure`'s numbers: the worst check decides; fails come first."""
    found: list[tuple[int, str]] = []

    def add(level: int, fail: str, warn: str) -> None:
        if level:
            found.append((level, fail if level == 2 else warn))

    (hh, ww) = m["size"]
    need = f", at least {max(MIN_SIDE, round(limits.scale[1] * m['work_size']))} px across"
    small = 2 if m["min_side"] < MIN_SIDE else _below(m["scale"], limits.scale)
    add(small, f"photo too small ({ww}x{hh} px): use the original photo{need}",
        f"small photo ({ww}x{hh} px): fine detail may be lost{need}")
    if "brightness" not in m:
        return "fail", ("the photo is empty",)
    if small == 2:  # nothing else can be judged on a tiny photo (enlarging it blurs it)
        return "fail", (found[0][1],)
    add(max(_below(m.get("sharpness"), limits.sharpness), _below(m.get("detail"), limits.detail)),
        "out of focus: retake, holding the camera steady", "slightly out of focus: scores may be off")
    add(_below(m.get("jpeg_quality"), limits.jpeg_quality),
        "heavily compressed photo (JPEG): use the original photo, not a compressed copy",
        "compressed photo (JPEG): fine texture may be lost; the original photo would be better")
    add(_above(m.get("noise"), limits.noise), "grainy photo (image noise): retake with more light",
        "some grain (image noise): scores may be off; more light would help")
    add(_below(m["brightness"], limits.dark), "too dark: retake with more light",
        "dark photo: scores may be off; more light would help")
    add(_above(m["brightness"], limits.bright), "overexposed (washed out): retake with less light",
        "bright photo: scores may be off")
    add(_above(m["highlights"], limits.clipped), "glare: parts of the photo are burnt out white; avoid flash",
        "some glare (burnt-out white areas): scores there are unreliable")
    if "saturated" in m:
        burnt = f"a colour is burnt out ({100 * m['saturated']:.0f} % of the photo; usually red on bright skin)"
        add(_above(m["saturated"], limits.saturated), f"{burnt}: redness cannot be read; retake with less light",
            f"{burnt}: redness there may be misjudged; less light would help")
    add(_above(m["shadows"], limits.clipped), "parts of the photo are black: retake with more light",
        "some black areas: scores there are unreliable")
    if "colourful" in m:
        # what the photo shows comes first, then how it was taken
        found = _skin_findings(m, limits, blurred=any("focus" in r for _, r in found)) + found
    found.sort(key=lambda f: -f[0])
    level = max((lv for lv, _ in found), default=0)
    return VERDICTS[level], tuple(r for _, r in found)


def _skin_findings(m: dict, limits: Limits, blurred: bool) -> list[tuple[int, str]]:
    """The colour checks: black and white, colour cast, not skin, not a close-up."""
    if m["colourful"] < sk.GREY_CHROMA:
        return [(2, "black-and-white photo: the model needs a colour photo of skin")]
    skin = _below(m["skin_fraction"], limits.skin)
    if skin == 2:  # a photo that is not skin needs no second reason from the colour checks
        return [(2, "this does not look like a photo of skin")]
    out = []
    if skin == 1:
        out.append((1, f"little skin in view ({100 * m['skin_fraction']:.0f} %): frame the affected skin"))
    if not blurred:  # blur hides outlines
        level = _above(m.get("structure"), limits.structure)
        if level == 2:
            out.append((2, "this does not look like a close-up of skin (objects, eyes or outlines in view): "
                        "photograph the affected skin from closer"))
        elif level == 1:
            out.append((1, "not quite a close-up of skin: scores may include other things in view"))
    cast = _above(m["cast"], limits.cast)
    if cast:
        tint = _tint(m["median_a"], m["median_b"])
        out.append((cast, f"strong colour cast ({tint}): retake in daylight or neutral light" if cast == 2
                    else f"colour cast ({tint}): redness may be misjudged"))
    return out


def _tint(a: float, b: float) -> str:
    da = a - min(max(a, CAST_A[0]), CAST_A[1])
    db = b - min(max(b, CAST_B[0]), CAST_B[1])
    if abs(db) >= abs(da):
        return "too blue" if db < 0 else "too yellow"
    return "too green" if da < 0 else "too red or magenta"


def skin_of(image: np.ndarray, channels: list[str] | tuple[str, ...] | None = None) -> np.ndarray | None:
    """(H, W) bool skin-colour mask of a photo, measured as `check_photo` measures its skin (at
    the working size, then enlarged); None when the photo has no colour channels. For the
    photo as it is scored: a white-balanced copy, where the checks read the photo as taken."""
    unit = to_unit(image)
    if unit.size == 0:
        return None
    rgb = rgb_of(working(unit), channels)
    if rgb is None:
        return None
    return resize_mask(sk.skin_mask(sk.to_lab(rgb)), *unit.shape[:2])


def check_photo(image: np.ndarray, full_size: tuple[int, int] | None = None,
                channels: list[str] | tuple[str, ...] | None = None, work_size: int = SIDE,
                limits: Limits = LIMITS, jpeg_quality: int | None = None) -> PhotoCheck:
    """Check one photo. image: (H, W) or (H, W, C), any dtype (floats on 0..1), any C.

    full_size: the original (H, W) when `image` is a reduced copy; channels: channel names
    (colour checks need red, green and blue; without names the first three are taken);
    work_size: the model's working size (longest side, px), for the size check;
    jpeg_quality: the file's JPEG quality, when the photo was read from a JPEG.
    Never raises on an image-shaped array; the skin mask is all True where colour is unknown.
    """
    h, w = np.asarray(image).shape[:2]
    m, skin = measure(image, full_size, channels, work_size, jpeg_quality)
    verdict, reasons = judge(m, limits)
    if skin is None:
        full = np.ones((h, w), bool)
        frac = 1.0
    else:
        frac = m["skin_fraction"]
        full = resize_mask(skin, h, w)
    return PhotoCheck(verdict, reasons, float(frac), full, m)
