"""Augmentation (albumentations 2.0.8), applied jointly to an image and all its sign masks.

Masks are resized and warped with nearest-neighbour, keep 255 (not annotated) and are padded
with 255, so padding never counts as "no disease". Intensity changes touch the first three
(RGB) channels only, so extra channels (polarised, UV, spectral) keep their meaning.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from model.data import colour, padding
from model.data.colour import to_linear, to_srgb
from model.data.io import IGNORE
from model.errors import DermsevError

AUGMENT_MODES = ("none", "flips", "geometric", "full", "photo")


def jitter_rgb(img: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness/contrast/saturation change of the first 3 channels of a float (H, W, C) image.

    brightness, contrast, saturation: multiplicative factors (1 = unchanged).
    """
    out = img.copy()
    if img.shape[2] < 3:
        out[..., :1] = np.clip(out[..., :1] * brightness, 0, 1)
        return out
    rgb = out[..., :3] * brightness
    mean = rgb.mean()
    rgb = (rgb - mean) * contrast + mean
    gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    rgb = (rgb - gray[..., None]) * saturation + gray[..., None]
    out[..., :3] = np.clip(rgb, 0, 1)
    return out


class RGBJitter(A.ImageOnlyTransform):
    """Mild colour jitter of the RGB channels only; randomness drawn once in get_params."""

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, saturation: float = 0.1, p: float = 0.5):
        super().__init__(p=p)
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def get_params(self) -> dict[str, float]:
        u = self.py_random.uniform
        return {
            "brightness": u(1 - self.brightness, 1 + self.brightness),
            "contrast": u(1 - self.contrast, 1 + self.contrast),
            "saturation": u(1 - self.saturation, 1 + self.saturation),
        }

    def apply(self, img: np.ndarray, brightness: float = 1, contrast: float = 1, saturation: float = 1, **_: Any) -> np.ndarray:
        return jitter_rgb(img, brightness, contrast, saturation)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("brightness", "contrast", "saturation")


def jpeg_encode(rgb: np.ndarray, quality: int) -> np.ndarray:
    """The JPEG file of an (H, W, 3) uint8 RGB image at `quality` (OpenCV's encoder, 4:2:0), as a
    uint8 buffer."""
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip of an (H, W, 3) uint8 RGB image at `quality` (`jpeg_encode`, decoded)."""
    return cv2.imdecode(jpeg_encode(rgb, quality), cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def _rgb_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)


class Exposure(A.ImageOnlyTransform):
    """Exposure change of the RGB channels in linear light: x 2**stops, stops uniform in
    +-`stops` (what a camera's exposure does; a gain in sRGB values would not be)."""

    def __init__(self, stops: float = 1.0, p: float = 0.3):
        super().__init__(p=p)
        self.stops = stops

    def get_params(self) -> dict[str, float]:
        return {"gain": 2.0 ** self.py_random.uniform(-self.stops, self.stops)}

    def apply(self, img: np.ndarray, gain: float = 1.0, **_: Any) -> np.ndarray:
        out = img.copy()
        k = min(3, img.shape[2])
        out[..., :k] = np.clip(to_srgb(to_linear(np.clip(img[..., :k], 0, 1)) * gain), 0, 1)
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("stops",)


class Renormalised(A.ImageOnlyTransform):
    """What `predict` makes of a photo taken at another exposure, for a model trained on
    normalised photos (`--normalise-exposure`): the (normalised) image's R, G, B times
    2**stops in linear light, clipped (a bright photo's red channel saturates first, and its
    colour is lost), then white-balanced and exposure-normalised again as predict does
    (`model.data.colour.balance` with `normalise`: {"reference", "luminance", "rgb"}).
    stops: uniform in the range; only overexposure clips, so the default range is upwards.
    kelvin: also relight under a light of this colour temperature (uniform in the range; von
    Kries gains from the Planckian locus, `colour.planckian_gains`), which the balance then
    mostly takes out again; None keeps the light's colour."""

    def __init__(self, normalise: dict, stops: tuple[float, float] = (0.25, 1.5), p: float = 0.3,
                 kelvin: tuple[float, float] | None = None):
        super().__init__(p=p)
        self.normalise, self.stops, self.kelvin = normalise, stops, kelvin

    def get_params(self) -> dict[str, Any]:
        gains = np.full(3, 2.0 ** self.py_random.uniform(*self.stops), np.float32)
        if self.kelvin is not None:
            gains = gains * colour.planckian_gains(self.py_random.uniform(*self.kelvin))
        return {"gains": gains}

    def apply(self, img: np.ndarray, gains: np.ndarray | None = None, **_: Any) -> np.ndarray:
        rgb = self.normalise.get("rgb")
        if rgb is None or gains is None:
            return img
        out = colour.apply_gains(img, gains, rgb)  # clipped like a sensor
        return colour.balance(out, "grey-world", self.normalise["reference"], rgb=rgb,
                              luminance=self.normalise["luminance"])[0]

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("stops", "kelvin")


def _resize(img: np.ndarray, w: int, h: int, interpolation: int) -> np.ndarray:
    """cv2.resize of any channel count (cv2's area resize takes at most 4 at once)."""
    parts = [cv2.resize(np.ascontiguousarray(img[..., i : i + 4]), (w, h), interpolation=interpolation)
             for i in range(0, img.shape[2], 4)]
    parts = [p[..., None] if p.ndim == 2 else p for p in parts]
    return np.concatenate(parts, axis=2)


class LowResolution(A.ImageOnlyTransform):
    """Down to `scale` of the size (area average) and back up (bilinear): a photo taken from
    further away, or a small upload, at the working size."""

    def __init__(self, scale: tuple[float, float] = (0.5, 0.95), p: float = 0.25):
        super().__init__(p=p)
        self.scale = scale

    def get_params(self) -> dict[str, float]:
        return {"factor": self.py_random.uniform(*self.scale)}

    def apply(self, img: np.ndarray, factor: float = 1.0, **_: Any) -> np.ndarray:
        h, w = img.shape[:2]
        small = _resize(img, max(1, round(w * factor)), max(1, round(h * factor)), cv2.INTER_AREA)
        return _resize(small, w, h, cv2.INTER_LINEAR).astype(img.dtype, copy=False)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale",)


class Jpeg(A.ImageOnlyTransform):
    """A JPEG round trip of the RGB channels (OpenCV, 4:2:0) at a quality drawn from `quality`:
    phones and messaging apps compress what a clinician uploads."""

    def __init__(self, quality: tuple[int, int] = (40, 95), p: float = 0.3):
        super().__init__(p=p)
        self.quality = quality

    def get_params(self) -> dict[str, int]:
        return {"q": self.py_random.randint(*self.quality)}

    def apply(self, img: np.ndarray, q: int = 90, **_: Any) -> np.ndarray:
        if img.shape[2] < 3:
            return img
        out = img.copy()
        out[..., :3] = jpeg_round_trip(_rgb_uint8(img), int(q)).astype(img.dtype) / 255
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("quality",)


class EdgeCrop(A.RandomCrop):
    """A random crop that, along each axis with chance `edge`, lies against the image's first or
    last row (column), either alike, instead of anywhere along it.

    A plain random 128 px crop of a 256 px photo touches a given side of the photo once in 129
    crops, so a network trained on such crops hardly ever sees the photo's own edge at its own
    border; at prediction every photo's edge is the border. On the demo model, false positives
    of lichenification lie 3-7x as densely within 16 px of the frame's edge as further in,
    mostly on dark (shaded) skin there (docs/rotation.md). Half the crops against the edge
    (`edge_crops: 0.5`) for 30 minutes did not thin them (bench/demo_finetune_edges.yaml)."""

    def __init__(self, height: int, width: int, edge: float = 0.5, p: float = 1.0):
        super().__init__(height=height, width=width, p=p)
        if not 0 <= edge <= 1:
            raise ValueError(f"edge must be a chance 0..1, got {edge}")
        self.edge = edge

    def _start(self, room: int) -> int:
        """The first row (column) of a crop with `room` + 1 possible places."""
        if self.py_random.random() < self.edge:
            return 0 if self.py_random.random() < 0.5 else room
        return min(int(self.py_random.random() * (room + 1)), room)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        out = super().get_params_dependent_on_data(params, data)  # checks the size
        if out["pad_params"] is None:
            h, w = params["shape"][:2]
            y0, x0 = self._start(h - self.height), self._start(w - self.width)
            out["crop_coords"] = (x0, y0, x0 + self.width, y0 + self.height)
        return out


def _fit(size: int) -> list[A.BasicTransform]:
    # NEAREST_EXACT: cv2's INTER_NEAREST samples half a pixel off, shifting masks against the image.
    return [
        A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST_EXACT),
        A.PadIfNeeded(min_height=size, min_width=size, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE),
    ]


def train_transform(size: int, mode: str = "full", seed: int | None = None, crop: int | None = None,
                    renormalise: tuple[dict, float] | None = None, edge_crops: float = 0.0) -> A.Compose:
    """Training pipeline at a square working size.

    crop: train on random crop x crop patches of the working-size image (the network is fully
    convolutional, so it learns at the scale it will see, 4x cheaper per step at half size).
    edge_crops: the chance, per axis, that the crop lies against the photo's edge (`EdgeCrop`).

    full: rotation up to 10 degrees, zoom/shift/shear about 0.1 (shear 0.1 rad ~ 5.7 degrees),
    horizontal flip, mild RGB jitter. geometric: the same without any intensity change.
    flips: the eight symmetries of the square only (flips and quarter turns): nothing is
    interpolated, so no pixel's colour is blended with its neighbour's under a sharp label.
    photo: full plus what phones do to a photo: quarter turns, lower resolution (0.5-1x),
    slight defocus (Gaussian sigma 0.3-1.2 px), exposure +-1 stop (linear light) and JPEG
    quality 40-95 (bench/bench_robustness.py measures the scores' drift under each).
    renormalise: (normalise, p) for a model trained on exposure-normalised photos: with chance p
    a sample is overexposed and normalised again (`Renormalised`), after the other intensity steps;
    "photo" then leaves out its plain exposure change, which `predict` divides out of every photo.
    """
    if mode not in AUGMENT_MODES:
        raise DermsevError(f"--augment must be one of {list(AUGMENT_MODES)}, got {mode!r}")
    steps = _fit(size)
    if mode in ("geometric", "full", "photo"):
        steps += [
            A.Affine(
                rotate=(-10, 10),
                scale=(0.9, 1.1),
                translate_percent=(-0.1, 0.1),
                shear=(-5.7, 5.7),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=IGNORE,
                p=0.8,
            ),
            A.HorizontalFlip(p=0.5),
        ]
    if mode == "flips":
        steps += [A.HorizontalFlip(p=0.5), A.RandomRotate90(p=1.0)]  # with the flip: all of D4
    if crop is not None and crop < size:
        steps.append(EdgeCrop(crop, crop, edge=edge_crops) if edge_crops > 0 else A.RandomCrop(height=crop, width=crop))
    if mode == "photo":
        steps += [
            A.RandomRotate90(p=0.5),
            LowResolution((0.5, 0.95), p=0.25),
            A.GaussianBlur(sigma_limit=(0.3, 1.2), p=0.2),
        ]
    if mode in ("full", "photo"):
        steps.append(RGBJitter(0.1, 0.1, 0.1, p=0.5))
    if mode == "photo" and renormalise is None:  # a normalised photo's exposure is divided out; only clipping is left
        steps += [Exposure(1.0, p=0.3)]
    if renormalise is not None and renormalise[1] > 0:
        steps.append(Renormalised(renormalise[0], p=renormalise[1]))
    if mode == "photo":
        steps += [Jpeg((40, 95), p=0.3)]
    return A.Compose(steps, seed=seed)


def consistency_view(normalise: dict | None = None, seed: int | None = None) -> A.Compose:
    """The second view of a training crop for consistency training (`consistency` in the train
    config): the same pixels as a phone might have taken them instead. Intensity only, so the
    view stays aligned with the crop and its prediction can be compared pixel by pixel; the
    turn is applied to the batch (model/training/consistency.py).

    normalise: the cache's `normalised` ({"reference", "luminance", "rgb"}) for a model trained
    on balanced, exposure-normalised photos: the view is relit (3000-7500 K, -1..+1.5 stops,
    clipped) and balanced again, as `predict` would see it (`Renormalised`); None: a plain
    exposure change of +-1 stop. Then a slight defocus, a lower resolution and JPEG, each
    sometimes (bench/bench_robustness.py perturbs the same ways)."""
    steps: list[A.BasicTransform] = [
        Renormalised(normalise, stops=(-1.0, 1.5), kelvin=(3000.0, 7500.0), p=0.6)
        if normalise is not None else Exposure(1.0, p=0.6),
        A.GaussianBlur(sigma_limit=(0.3, 1.5), p=0.35),
        LowResolution((0.5, 0.95), p=0.25),
        Jpeg((40, 95), p=0.3),
    ]
    return A.Compose(steps, seed=seed)


def eval_transform(size: int) -> A.Compose:
    """Evaluation: longest side to `size`, kept aspect ratio, padded as model/data/padding.py says."""
    return A.Compose(
        [
            A.LongestMaxSize(max_size=size, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST_EXACT),
            A.PadIfNeeded(
                min_height=None,
                min_width=None,
                pad_height_divisor=padding.MULTIPLE,
                pad_width_divisor=padding.MULTIPLE,
                position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=IGNORE,
            ),
        ]
    )


def apply(transform: A.Compose, image: np.ndarray, masks: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Run a pipeline on a float (H, W, C) image and its (H, W) uint8 masks.

    Returns the image, the masks and a `valid` (H, W) bool map (False on padding and on
    pixels rotated in from outside the photo), all at the output size.
    """
    ones = np.zeros(image.shape[:2], np.uint8)  # 0 inside the photo; padding becomes IGNORE
    out = transform(image=image, masks=[*masks, ones])
    *out_masks, inside = out["masks"]
    return out["image"], [np.asarray(m) for m in out_masks], np.asarray(inside) != IGNORE
