"""Safe image reading: every path, byte string or PIL image becomes an (H, W, C) array.

Broken input (empty, not an image, truncated, a decompression bomb) raises DermsevError with
a message naming the file; awkward but valid input (16-bit, CMYK, RGBA, grayscale, palette,
EXIF-rotated, animated) is decoded to something the model can score.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.data import dicom
from model.errors import DermsevError

IGNORE = 255  # mask value: not annotated (SPEC)
# 12-MP phone photos are normal; 100 MP is generous. Past it we refuse rather than risk memory.
MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
MIN_SIDE = 32

ImageSource = str | Path | bytes | bytearray | io.BytesIO | Image.Image | np.ndarray
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _label(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return "image"


def _is_planar(shape: tuple[int, ...]) -> bool:
    """A (C, H, W) TIFF layout: few leading planes, many trailing samples."""
    return len(shape) == 3 and shape[0] < 16 and shape[-1] > 16


def _tiff_hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(H, W, C) of a TIFF series shape: (H, W), (H, W, C) or planar (C, H, W)."""
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if _is_planar(shape):
        return shape[1], shape[2], shape[0]
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    raise ValueError(f"expected an (H, W, C) image, got shape {tuple(shape)}")


def _read_tiff(data: bytes | Path, label: str) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data) if isinstance(data, bytes) else data) as tif:
            # Check the declared size before decoding: a TIFF header can claim any size.
            h, w, _ = _tiff_hwc(tif.series[0].shape)
            if h * w > MAX_PIXELS:
                raise DermsevError(
                    f"{label}: refused, {w}x{h} pixels (possible decompression bomb; "
                    f"limit {MAX_PIXELS // 10**6} MP)"
                )
            arr = tif.asarray()
    except DermsevError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise DermsevError(f"{label}: not a readable TIFF ({exc.__class__.__name__})") from None
    arr = np.asarray(arr)
    if _is_planar(arr.shape):
        arr = np.moveaxis(arr, 0, -1)
    return _check_array(arr, label)


def _check_array(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DermsevError(f"{label}: expected an (H, W, C) image, got shape {arr.shape}")
    h, w = arr.shape[:2]
    if h * w > MAX_PIXELS:
        raise DermsevError(f"{label}: {w}x{h} pixels is larger than the {MAX_PIXELS // 10**6} MP limit")
    if min(h, w) < MIN_SIDE:
        raise DermsevError(f"{label}: image is too small ({w}x{h}); at least {MIN_SIDE} px per side")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if not (arr.dtype == np.uint8 or arr.dtype == np.uint16 or np.issubdtype(arr.dtype, np.floating)):
        if np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 65535:
            arr = arr.astype(np.uint16)
        else:
            raise DermsevError(f"{label}: unsupported pixel type {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise DermsevError(f"{label}: image contains NaN or infinite values")
    return arr


def _pil_to_array(img: Image.Image, label: str) -> np.ndarray:
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # the first frame of an animation
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16)[:, :, None]
    if mode == "I":
        arr = np.asarray(img, dtype=np.int64)
        return np.clip(arr, 0, 65535).astype(np.uint16)[:, :, None]
    if mode == "F":
        return np.asarray(img, dtype=np.float32)[:, :, None]
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"))[:, :, None]
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become white, as a viewer would show them.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


@contextmanager
def _pil_errors(label: str) -> Iterator[None]:
    """Pillow's exceptions -> one DermsevError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DermsevError(
            f"{label}: refused, too many pixels (possible decompression bomb; limit {MAX_PIXELS // 10**6} MP)"
        ) from None
    except UnidentifiedImageError:
        raise DermsevError(f"{label}: not an image (or a format that cannot be read)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).split("\n")[0]
        raise DermsevError(f"{label}: corrupt or truncated image ({msg})") from None


def decode(
    source: ImageSource, name: str | None = None, draft_size: tuple[int, int] | None = None
) -> Image.Image | np.ndarray:
    """Stage 1 of reading: the file's pixels, not yet EXIF-rotated nor converted.

    A loaded PIL image, or an (H, W, C) array for TIFF and DICOM files (model/data/dicom.py)
    and arrays. draft_size: for JPEGs, let the decoder skip detail below this size (Pillow's
    draft mode, a 2-8x faster decode of large photos); the result is at least that large.
    """
    label = _label(source, name)
    if isinstance(source, (np.ndarray, Image.Image)):
        return source  # checked by to_array
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DermsevError(f"{label}: file not found")
        if path.stat().st_size == 0:
            raise DermsevError(f"{label}: file is empty")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, io.BytesIO):
        data = source.getvalue()
    else:
        raise DermsevError(f"{label}: cannot read an image from {type(source).__name__}")
    if not data:
        raise DermsevError(f"{label}: file is empty")
    if data[:4] in TIFF_MAGIC:
        return _read_tiff(data, label)
    if _is_dicom(data, label):
        return dicom.read_dicom(data, label, max_pixels=MAX_PIXELS)
    with _pil_errors(label):
        img = Image.open(io.BytesIO(data))
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", draft_size)
        img.load()
    return img


def _is_dicom(data: bytes, label: str) -> bool:
    """`decode` reads these bytes as DICOM (model/data/dicom.py): by their preamble or the name."""
    return dicom.is_dicom(data) or label.lower().endswith(".dcm")


def check_header(data: bytes, name: str) -> None:
    """Refuse, from its header alone, a file that `decode` would refuse there, with `decode`'s
    message: empty, not an image, or declaring more than MAX_PIXELS (a decompression bomb).
    No pixels are decoded, so a server can refuse an upload before it waits for the model.
    TIFF and DICOM files pass: their readers check their declared size before decoding."""
    if not data:
        raise DermsevError(f"{name}: file is empty")
    if data[:4] in TIFF_MAGIC or _is_dicom(data, name):
        return
    with _pil_errors(name), Image.open(io.BytesIO(data)):
        pass


# The JPEG standard's example luminance table (ITU-T T.81 Annex K), natural order: what libjpeg
# (Pillow, OpenCV, most cameras' encoders) scales by the quality setting.
_JPEG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)  # fmt: skip
_QUALITIES = np.arange(1, 101)
_SCALED = np.clip(np.floor((_JPEG_LUMA[None] * np.where(_QUALITIES < 50, 5000 / _QUALITIES, 200 - 2 * _QUALITIES)[:, None]
                            + 50) / 100), 1, 255)  # fmt: skip


def jpeg_quality(decoded: Image.Image | np.ndarray) -> int | None:
    """The quality (1..100) a JPEG was saved at, estimated from its luminance quantisation table
    as libjpeg scales the standard one: the quality whose table is nearest (exact for libjpeg's
    own encoders; the nearest equivalent for a camera's custom table). None if not a JPEG."""
    tables = getattr(decoded, "quantization", None) if isinstance(decoded, Image.Image) else None
    if not tables or decoded.format != "JPEG":
        return None
    luma = np.asarray(tables[min(tables)], np.float64)
    if luma.size != 64:
        return None
    return int(_QUALITIES[np.argmin(np.abs(np.log(_SCALED) - np.log(luma)).sum(axis=1))])


def to_array(decoded: Image.Image | np.ndarray, name: str = "image") -> np.ndarray:
    """Stage 2 of reading: EXIF orientation and mode -> (H, W, C) uint8, uint16 or float32, checked."""
    if isinstance(decoded, np.ndarray):
        return _check_array(decoded, name)
    with _pil_errors(name):
        arr = _pil_to_array(decoded, name)
    return _check_array(arr, name)


def read_image(
    source: ImageSource, name: str | None = None, draft_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode an image to an (H, W, C) array (uint8, uint16 or float32), EXIF-rotated:
    `to_array(decode(...))` (see those for draft_size)."""
    return to_array(decode(source, name, draft_size), _label(source, name))


def read_mask(path: Path, label: str) -> np.ndarray:
    """Read a per-sign mask PNG as (H, W) uint8."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "P", "1"):
                raise DermsevError(f"{label}: mask must be a single-channel 8-bit PNG, got mode {img.mode}")
            return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.uint8)
    except DermsevError:
        raise
    except FileNotFoundError:
        raise DermsevError(f"{label}: mask file not found") from None
    except Exception as exc:
        raise DermsevError(f"{label}: unreadable mask ({exc.__class__.__name__})") from None


def image_shape(path: Path, label: str) -> tuple[int, int, int]:
    """(H, W, C) of an image file without decoding its pixels."""
    if not path.is_file():
        raise DermsevError(f"{label}: file not found")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic in TIFF_MAGIC:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                return _tiff_hwc(tif.series[0].shape)
        except Exception:
            raise DermsevError(f"{label}: not a readable TIFF") from None
    try:
        with Image.open(path) as img:
            w, h = img.size
            bands = len(img.getbands())
            if img.mode in ("RGBA", "P", "LA", "CMYK", "YCbCr"):
                bands = 3
            oriented = img.getexif().get(0x0112, 1)
    except UnidentifiedImageError:
        raise DermsevError(f"{label}: not an image") from None
    except Exception as exc:
        raise DermsevError(f"{label}: unreadable image ({exc.__class__.__name__})") from None
    if oriented in (5, 6, 7, 8):
        h, w = w, h
    return h, w, bands


def resize(arr: np.ndarray, w: int, h: int, interp: int) -> np.ndarray:
    """cv2.resize of an (H, W, C) array with any C -> (h, w, C).

    OpenCV's INTER_AREA handles at most 4 channels, so wider images go 4 channels at a time.
    """
    import cv2

    if arr.ndim == 2:
        return cv2.resize(arr, (w, h), interpolation=interp)[:, :, None]
    parts = [cv2.resize(np.ascontiguousarray(arr[:, :, i : i + 4]), (w, h), interpolation=interp)
             for i in range(0, arr.shape[2], 4)]
    return np.concatenate([q if q.ndim == 3 else q[:, :, None] for q in parts], axis=2)


def resize_mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) mask -> (h, w) bool by nearest neighbour (the mask itself, as bool, when the size
    already matches)."""
    import cv2

    if mask.shape[:2] == (h, w):
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def to_float(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8/uint16/float -> float32 on 0..1 (floats are taken as already 0..1)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return arr.astype(np.float32)


def to_uint8_rgb(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) any dtype -> (H, W, 3) uint8 for display (first three channels, gray repeated)."""
    if arr.dtype != np.uint8:
        arr = (np.clip(to_float(arr), 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 2:
        arr = np.concatenate([arr, arr[:, :, :1]], axis=2)
    return np.ascontiguousarray(arr[:, :, :3])
