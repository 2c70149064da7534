"""The page with real models (a tiny random one, and the bundled demo once it is built):
scores, awkward and broken files, exports, save."""

from __future__ import annotations

import csv
import datetime as dt
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")
DEMO = ROOT / "model" / "assets" / "demo" / "config.json"

pytestmark = pytest.mark.slow


def _skin(h=192, w=256, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float32)
    img[...] = (205, 160, 138)
    blob = np.exp(-(((yy - h / 2) / (h / 5)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2))
    img += blob[..., None] * np.array([40, -55, -45], np.float32)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _encode(img, fmt, mode=None, **kw):
    pil = Image.fromarray(img)
    if mode:
        pil = pil.convert(mode)
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png16():
    arr = _skin()[..., 0].astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(side=40_000):
    """A valid PNG header claiming side x side pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\x00" * 1000)
    idat_chunk = b"IDAT" + idat
    body += struct.pack(">I", len(idat)) + idat_chunk + struct.pack(">I", zlib.crc32(idat_chunk))
    return (
        b"\x89PNG\r\n\x1a\n"
        + body
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


@pytest.fixture(params=["tiny", "demo"])
def app(request, monkeypatch, tmp_path):
    monkeypatch.setenv("DERMSEV_DATA", str(tmp_path / "data"))
    if request.param == "tiny":  # a real MODEL_DIR, random weights (tests/conftest.py)
        monkeypatch.setenv("DERMSEV_MODEL", str(request.getfixturevalue("tiny_model_dir")))
    elif DEMO.exists():
        monkeypatch.delenv("DERMSEV_MODEL", raising=False)
    else:
        pytest.skip("the bundled demo model is not built yet")
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    yield at
    st.cache_resource.clear()


def _submit(at, files):
    at.text_input(key="pseudonym").input("DEMO-7")
    at.number_input(key="age").set_value(6.0)
    at.selectbox(key="sex").set_value("M")
    at.selectbox(key="region").set_value("lower_limbs")
    at.date_input(key="visit_date").set_value(dt.date(2026, 5, 1))
    at.file_uploader(key="uploads").set_value(files)
    at.button(key="score").click()
    at.run()
    assert not at.exception, at.exception


def test_demo_model_scores_and_exports(app, downloads):
    assert any("synthetic images" in w.value for w in app.warning)
    jpeg = _encode(_skin(), "JPEG", quality=92)
    _submit(app, [("skin.jpg", jpeg, "image/jpeg")])
    a = app.session_state["assessment"]
    table = app.dataframe[0].value
    assert len(table) == len(a.signs)
    assert table["score"].between(0, a.max_score).all()
    assert set(table["label"]) <= set(a.label_names)
    assert app.get("plotly_chart")
    rows = list(csv.DictReader(io.StringIO(downloads["dermsev_DEMO-7_2026-05-01.csv"].decode())))
    signs = [r for r in rows if r["record"] == "sign"]
    assert [r["sign"] for r in signs] == a.signs and signs[0]["sex"] == "M"
    assert a.easi is not None and a.easi.age_group == "child"
    app.button(key="save").click()
    app.run()
    assert any("Saved as visit #1" in s.value for s in app.success)


def test_awkward_files_scored_broken_files_explained(app):
    img = _skin()
    good = {
        "rgba.png": _encode(img, "PNG", mode="RGBA"),
        "gray.png": _encode(img, "PNG", mode="L"),
        "cmyk.jpg": _encode(img, "JPEG", mode="CMYK"),
        "sixteen.png": _png16(),
        "photo.tif": _encode(img, "TIFF"),
    }
    bad = {
        "notes.jpg": b"hello, this is text",
        "empty.png": b"",
        "truncated.jpg": _encode(img, "JPEG")[:300],
        "tiny.png": _encode(img[:8, :8], "PNG"),
        "bomb.png": _bomb_png(),
    }
    files = [(n, d, "image/png") for n, d in {**good, **bad}.items()]
    _submit(app, files)
    scored = [p.name for p in app.session_state["assessment"].photos]
    assert scored == list(good)
    errors = [e.value for e in app.error]
    for name in bad:
        assert any(e.startswith(name) for e in errors), (name, errors)
