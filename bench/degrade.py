"""Photo degradations shared by the benchmarks: light in linear RGB, JPEG, noise, geometry.

Each is a pure function of a (H, W, 3) uint8 RGB photo returning a new uint8 photo, but
`jpeg_file`, which returns the JPEG file's bytes, as a clinician's upload would be (the photo
checks read the file's JPEG quality).
"""

from __future__ import annotations

import cv2
import numpy as np

from model.data.augment import jpeg_encode
from model.data.colour import to_linear, to_srgb


def relight(img: np.ndarray, gains: float | np.ndarray) -> np.ndarray:
    """Multiply the linear light of each channel by `gains` (a number: exposure, 2**stops;
    (3,): a colour cast or another illuminant, von Kries) and re-encode as sRGB."""
    lin = to_linear(img.astype(np.float32) / 255) * np.asarray(gains, np.float32)
    return (to_srgb(lin) * 255 + 0.5).astype(np.uint8)


def jpeg_file(img: np.ndarray, quality: int) -> bytes:
    """The JPEG file at `quality` (OpenCV's encoder, 4:2:0): decoded, its pixels are those of
    training's JPEG augmentation (model.data.augment.jpeg_round_trip, the same encoder)."""
    return jpeg_encode(img, quality).tobytes()


def noise(img: np.ndarray, sd: float, seed: int) -> np.ndarray:
    """Gaussian noise of `sd` (0..255 units), seeded."""
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sd, img.shape), 0, 255).astype(np.uint8)


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation about the centre, same size; multiples of 90 degrees are exact, other angles
    fill the corners by reflection (no black wedges for the photo checks to object to)."""
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(img, k=int(degrees // 90) % 4))
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """Resize by `factor` (area averaging down, bilinear up)."""
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
