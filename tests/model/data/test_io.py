"""model.data.io.read_image: broken files are refused naming the file; awkward valid ones decode."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

import model.data.io as mio
from model.data.io import image_shape, read_image
from model.errors import DermsevError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims width x height RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def tiff_claiming(path: Path, width: int, height: int) -> None:
    """A small valid TIFF whose ImageWidth/ImageLength tags are then rewritten to claim a huge size."""
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8), photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        where = {code: (tags[code].valueoffset, tags[code].dtype) for code in (256, 257)}
    data = bytearray(path.read_bytes())
    for code, (offset, dtype) in where.items():
        value = width if code == 256 else height
        fmt = "<H" if int(dtype) == 3 else "<I"
        data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))


def encoded(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def noisy_rgb(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- broken input: a DermsevError that names the file ------------------------------------


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _text(p: Path) -> None:
    p.write_text("id,image\nthis is a CSV, not a photo\n")


def _truncated_jpeg(p: Path) -> None:
    data = encoded(noisy_rgb(), "JPEG", quality=90)
    p.write_bytes(data[: len(data) // 2])


def _truncated_png(p: Path) -> None:
    data = encoded(noisy_rgb(), "PNG")
    p.write_bytes(data[: len(data) // 2])


def _png_bomb(p: Path) -> None:
    p.write_bytes(png_claiming(30_000, 30_000))


def _tiff_bomb(p: Path) -> None:
    tiff_claiming(p, 30_000, 30_000)


def _too_small(p: Path) -> None:
    Image.fromarray(noisy_rgb(16, 64)).save(p, format="PNG")


def _garbage_tiff(p: Path) -> None:
    p.write_bytes(b"II*\x00" + b"\xff" * 200)


BROKEN = [
    ("empty.png", _empty, "empty"),
    ("notes.jpg", _text, "not an image"),
    ("cut.jpg", _truncated_jpeg, "truncated"),
    ("cut.png", _truncated_png, "truncated"),
    ("bomb.png", _png_bomb, "decompression bomb"),
    ("bomb.tif", _tiff_bomb, "decompression bomb"),
    ("tiny.png", _too_small, "too small"),
    ("garbage.tif", _garbage_tiff, "TIFF"),
]


@pytest.mark.parametrize("name, make, expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_raises_naming_the_file(tmp_path: Path, name: str, make, expected: str) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(DermsevError) as err:
        read_image(path)
    assert name in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize("name, make, expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_bytes_raise_with_the_given_name(tmp_path: Path, name: str, make, expected: str) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(DermsevError, match=expected) as err:
        read_image(path.read_bytes(), name=f"upload {name}")
    assert f"upload {name}" in str(err.value)


@pytest.mark.parametrize("name, make, expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_check_header_refuses_what_decode_refuses_at_its_header_in_its_words(
    tmp_path: Path, name: str, make, expected: str
) -> None:
    """check_header (a server's refusal before queueing) says what decode would say, or lets the
    file through to decode: empty, non-image and bomb PNGs are refused from the header alone."""
    path = tmp_path / name
    make(path)
    data = path.read_bytes()
    with pytest.raises(DermsevError) as decoded:
        read_image(data, name)
    try:
        mio.check_header(data, name)
    except DermsevError as exc:
        assert str(exc) == str(decoded.value)
    else:
        assert name not in ("empty.png", "notes.jpg", "bomb.png")


def test_check_header_refuses_a_png_of_over_100_mp(tmp_path: Path) -> None:
    data = png_claiming(12_000, 12_000)  # 144 MP: Pillow only warns below 200 MP
    with pytest.raises(DermsevError, match="big.png: refused, too many pixels"):
        mio.check_header(data, "big.png")
    mio.check_header(png_claiming(64, 64), "small.png")


def test_tiff_bomb_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.tif"
    tiff_claiming(path, 30_000, 30_000)

    def no_decode(*args, **kwargs):
        raise AssertionError("the pixels of a bomb must never be decoded")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", no_decode)
    with pytest.raises(DermsevError, match="bomb"):
        read_image(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.png"
    with pytest.raises(DermsevError, match="not found") as err:
        read_image(path)
    assert "nowhere.png" in str(err.value)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("TIFF", ".tif"), ("array", "")])
def test_pixel_limit_applies_to_every_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, suffix: str) -> None:
    arr = noisy_rgb(64, 64)
    monkeypatch.setattr(mio, "MAX_PIXELS", 64 * 64 - 1)
    if fmt == "array":
        source = arr
    else:
        source = tmp_path / f"big{suffix}"
        if fmt == "TIFF":
            tifffile.imwrite(source, arr, photometric="rgb")
        else:
            Image.fromarray(arr).save(source)
    with pytest.raises(DermsevError, match="64x64"):
        read_image(source)
    monkeypatch.setattr(mio, "MAX_PIXELS", 64 * 64)
    assert read_image(source).shape == (64, 64, 3)


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.zeros((64, 64, 3, 2), np.uint8), "shape"),
        (np.zeros((64, 64, 3), np.complex64), "pixel type"),
        (np.full((64, 64, 3), np.nan, np.float32), "NaN"),
    ],
    ids=["4-d", "complex", "nan"],
)
def test_bad_arrays(arr: np.ndarray, expected: str) -> None:
    with pytest.raises(DermsevError, match=expected):
        read_image(arr, name="frame")


# --- awkward but valid input --------------------------------------------------------------


def test_16bit_grayscale_png_keeps_its_values(tmp_path: Path) -> None:
    arr = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21 % 65536).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint16 and out.shape == (48, 64, 1)
    np.testing.assert_array_equal(out[:, :, 0], arr)


def test_16bit_rgb_png_decodes_to_three_channels(tmp_path: Path) -> None:
    arr = np.zeros((40, 64, 3), np.uint16)
    arr[..., 0], arr[..., 1], arr[..., 2] = 60000, 1000, 30000
    cv2.imwrite(str(tmp_path / "rgb16.png"), arr[..., ::-1])  # cv2 writes BGR
    out = mio.to_float(read_image(tmp_path / "rgb16.png"))
    assert out.shape == (40, 64, 3)
    np.testing.assert_allclose(out[0, 0], arr[0, 0] / 65535, atol=1 / 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (64, 48), (255, 0, 0, 0)).save(tmp_path / "cmyk.jpg")  # pure cyan
    out = read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    r, g, b = out[24, 32].astype(int)
    assert r < 40 and g > 215 and b > 215


def test_rgba_png_composites_transparency_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[:, :32, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (48, 64, 3)
    np.testing.assert_array_equal(out[10, 5], [200, 40, 10])
    np.testing.assert_array_equal(out[10, 60], [255, 255, 255])


def test_grayscale_png_is_one_channel(tmp_path: Path) -> None:
    gray = noisy_rgb(48, 64)[:, :, 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (48, 64, 1)
    np.testing.assert_array_equal(out[:, :, 0], gray)


def test_palette_png_decodes_to_its_colours(tmp_path: Path) -> None:
    idx = (np.arange(48 * 64).reshape(48, 64) % 3).astype(np.uint8)
    img = Image.fromarray(idx, "P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    np.testing.assert_array_equal(out, colours[idx])


def exif_rotated_jpeg(path: Path, width: int = 80, height: int = 48, orientation: int = 6) -> None:
    """A width x height JPEG (as stored) with a white block at its stored top-left corner."""
    arr = np.full((height, width, 3), 30, np.uint8)
    arr[:8, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_6_swaps_width_and_height(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    exif_rotated_jpeg(path)
    out = read_image(path)
    assert out.shape == (80, 48, 3)  # stored 80 wide x 48 high, shown rotated 90 degrees
    # orientation 6: displayed = stored rotated 90 degrees clockwise; the corner moves top-right.
    assert out[:8, -8:].mean() > 200 and out[:8, :8].mean() < 100
    assert image_shape(path, "rot.jpg") == (80, 48, 3)


def test_first_frame_of_an_animated_gif(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 48), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = read_image(tmp_path / "anim.gif")
    np.testing.assert_array_equal(out[20, 20], [255, 0, 0])
    seeked = Image.open(tmp_path / "anim.gif")
    seeked.seek(2)  # a PIL image left on a later frame still gives the first
    np.testing.assert_array_equal(read_image(seeked)[20, 20], [255, 0, 0])


@pytest.mark.parametrize(
    "dtype, channels, planar",
    [(np.uint8, 5, False), (np.uint16, 4, False), (np.float32, 6, False), (np.uint8, 2, False),
     (np.uint16, 5, True)],
)
def test_multichannel_tiff_round_trip(tmp_path: Path, dtype, channels: int, planar: bool) -> None:
    rng = np.random.default_rng(channels)
    if np.issubdtype(dtype, np.floating):
        arr = rng.random((40, 64, channels)).astype(dtype)
    else:
        arr = rng.integers(0, np.iinfo(dtype).max, (40, 64, channels), endpoint=True).astype(dtype)
    path = tmp_path / "multi.tif"
    if planar:
        tifffile.imwrite(path, np.moveaxis(arr, -1, 0), photometric="minisblack", planarconfig="separate")
    else:
        tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    out = read_image(path)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, arr)
    assert image_shape(path, "multi.tif") == (40, 64, channels)


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "BytesIO", "PIL", "numpy"])
def test_every_source_type_gives_the_same_pixels(tmp_path: Path, kind: str) -> None:
    arr = noisy_rgb(48, 64, seed=3)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    source = {
        "path": path,
        "str": str(path),
        "bytes": path.read_bytes(),
        "BytesIO": io.BytesIO(path.read_bytes()),
        "PIL": Image.open(path),
        "numpy": arr,
    }[kind]
    np.testing.assert_array_equal(read_image(source), arr)


@pytest.mark.parametrize(
    "arr, expected",
    [
        (np.array([[[0, 128, 255]]], np.uint8), [[[0.0, 128 / 255, 1.0]]]),
        (np.array([[[0, 65535]]], np.uint16), [[[0.0, 1.0]]]),
        (np.array([[[0.25]]], np.float64), [[[0.25]]]),
    ],
)
def test_to_float(arr: np.ndarray, expected) -> None:
    out = mio.to_float(arr)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_to_uint8_rgb_gives_three_channels(channels: int) -> None:
    arr = np.full((4, 5, channels), 0.5, np.float32)
    out = mio.to_uint8_rgb(arr)
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8
    assert (out == 128).all()


@pytest.mark.parametrize("channels", [1, 3, 4, 5, 9])
@pytest.mark.parametrize("interp", [cv2.INTER_AREA, cv2.INTER_LINEAR])
def test_resize_any_channel_count(channels: int, interp: int) -> None:
    arr = np.random.default_rng(channels).random((70, 90, channels), dtype=np.float32)
    out = mio.resize(arr, 45, 35, interp)
    assert out.shape == (35, 45, channels)
    for c in range(channels):  # each channel resized as on its own
        single = cv2.resize(np.ascontiguousarray(arr[:, :, c]), (45, 35), interpolation=interp)
        np.testing.assert_allclose(out[:, :, c], single, rtol=1e-5, atol=1e-6)


def test_resize_mask_is_nearest_and_boolean() -> None:
    from model.data.io import resize_mask

    m = np.zeros((4, 6), np.uint8)
    m[:, :3] = 1
    out = resize_mask(m, 8, 12)
    assert out.dtype == bool and out.shape == (8, 12) and out[:, :6].all() and not out[:, 6:].any()
    same = resize_mask(m, 4, 6)
    assert same.dtype == bool and np.array_equal(same, m == 1)


@pytest.mark.parametrize("quality", [20, 50, 75, 85, 92, 95])
def test_jpeg_quality_is_read_back_from_pillow_and_opencv_files(quality: int) -> None:
    img = (np.random.default_rng(quality).random((48, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    assert mio.jpeg_quality(mio.decode(buf.getvalue())) == quality
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok and mio.jpeg_quality(mio.decode(enc.tobytes())) == quality


def test_jpeg_quality_is_none_for_other_formats() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    assert mio.jpeg_quality(mio.decode(buf.getvalue())) is None
    assert mio.jpeg_quality(np.zeros((8, 8, 3), np.uint8)) is None
