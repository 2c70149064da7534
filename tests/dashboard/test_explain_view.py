""" "Why this score" (saliency), the channel view of multi-channel photos, channel importance:
figure helpers as units, then the page with AppTest (fake model, tiny RGB model, tiny
5-channel model with a mixing layer)."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import streamlit as st
import tifffile
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import explain_figures as ef
from dashboard.view_explain import is_multichannel

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
SIGNS = ["erythema", "papulation", "excoriation", "lichenification"]
FIVE = ("c0", "c1", "c2", "c3", "c4")


# -- channel view ---------------------------------------------------------------------------


@pytest.mark.parametrize("c", range(1, 9))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_channel_view_any_channel_count(c, dtype):
    rng = np.random.default_rng(c)
    hi = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    img = (rng.random((12, 10, c)) * hi).astype(dtype)
    views = [
        ef.channel_view(img),
        ef.channel_view(img, [c - 1]),
        ef.channel_view(img, [0], stretch=True),
    ]
    if c >= 2:
        views.append(ef.channel_view(img, [c - 1, 0]))
    if c >= 3:
        views.append(ef.channel_view(img, [c - 1, 1, 0]))
    for v in views:
        assert v.shape == (12, 10, 3) and v.dtype == np.uint8
    gray = ef.channel_view(img, [c - 1])
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_channel_view_values_and_order():
    img = np.zeros((2, 2, 5), np.uint16)
    img[..., 3] = 65535
    img[..., 4] = 32768
    assert (ef.channel_view(img, [3, 4, 0])[0, 0] == (255, 128, 0)).all()
    assert (ef.channel_view(img, [3, 4])[0, 0] == (255, 128, 255)).all()  # magenta/green
    assert (ef.channel_view(img[..., 3])[0, 0] == 255).all()  # (h, w) is one channel
    assert (ef.channel_view(np.full((2, 2, 1), 7.0, np.float32)) == 255).all()  # floats 0..1
    dim = np.tile(np.arange(100, dtype=np.uint8)[None, :, None], (3, 1, 1))
    stretched = ef.channel_view(dim, [0], stretch=True)
    assert stretched.max() == 255 and stretched.min() == 0


@pytest.mark.parametrize(
    "channels, message",
    [([5], "channel index 5 out of range"), ([0, 1, 2, 3], "pick 1 to 3 channels to view, got 4"),
     ([], "pick 1 to 3 channels to view, got 0"), ([-1], "channel index -1 out of range")],
)  # fmt: skip
def test_channel_view_refuses_bad_picks(channels, message):
    with pytest.raises(ValueError, match=message):
        ef.channel_view(np.zeros((4, 4, 5), np.uint8), channels)


def test_is_multichannel():
    assert not is_multichannel(["red", "green", "blue"]) and not is_multichannel(["gray"])
    assert is_multichannel(FIVE) and is_multichannel(["cross", "parallel"])
    assert is_multichannel(["uv", "red", "nir"])


# -- saliency figures -----------------------------------------------------------------------


def _explanation(h=24, w=32, channels=("red", "green", "blue"), seed=0):
    """An explain_image-shaped result (model/explain/saliency.py), without a model."""
    rng = np.random.default_rng(seed)
    sal = {s: rng.random((len(channels), h, w)).astype(np.float32) for s in SIGNS}
    share = {
        s: dict(zip(channels, (v.sum((1, 2)) / v.sum()).tolist(), strict=True))
        for s, v in sal.items()
    }
    return {
        "signs": list(SIGNS), "channels": list(channels), "method": "gradient", "size": (h, w),
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "scores": {s: 1.0 for s in SIGNS}, "saliency": sal,
        "projected": {s: v.sum(0) / v.sum(0).max() for s, v in sal.items()},
        "channel_share": share,
    }  # fmt: skip


def _kinds(fig: go.Figure, kind: str) -> list:
    return [t for t in fig.data if t.type == kind]


def test_saliency_figure_one_heatmap_per_sign():
    r = _explanation()
    photo = np.full((96, 128, 3), 200, np.uint8)  # a larger display image: maps are stretched
    fig = ef.saliency_figure(photo, r["projected"], SIGNS, scores={"erythema": 1.234})
    heat = _kinds(fig, "heatmap")
    assert [t.name for t in heat] == SIGNS
    assert len(_kinds(fig, "image")) == len(SIGNS)
    assert all(t.zmin == 0 and t.zmax == 1 for t in heat)
    assert sum(bool(t.showscale) for t in heat) == 1
    assert fig.layout.annotations[0].text == "erythema 1.23"
    # the heatmap covers the photo: its grid is stretched over the image's pixels
    z = np.asarray(heat[0].z)
    assert heat[0].dx * z.shape[1] == pytest.approx(128)
    with pytest.raises(ValueError, match="no saliency map"):
        ef.saliency_figure(photo, {"erythema": r["projected"]["erythema"]}, SIGNS)


@pytest.mark.parametrize("c", [1, 3, 5, 8])
def test_channel_saliency_figure_one_heatmap_per_channel(c):
    channels = [f"ch{i}" for i in range(c)]
    r = _explanation(channels=channels)
    sal = r["saliency"]["erythema"]
    fig = ef.channel_saliency_figure(sal, channels, share=r["channel_share"]["erythema"], title="t")
    heat = _kinds(fig, "heatmap")
    assert [t.name for t in heat] == channels
    assert len({t.zmax for t in heat}) == 1  # one shared colour scale
    assert [a.text.split()[0] for a in fig.layout.annotations] == channels
    assert fig.layout.annotations[0].text.endswith("%")
    with pytest.raises(ValueError, match=rf"saliency must be \(C={c + 1}, h, w\)"):
        ef.channel_saliency_figure(sal, channels + ["extra"])


def test_channel_saliency_figure_all_zero():
    fig = ef.channel_saliency_figure(np.zeros((2, 8, 8)), ["a", "b"])
    assert all(t.zmax > 0 for t in _kinds(fig, "heatmap"))


# -- the page -------------------------------------------------------------------------------


def png(seed=0, size=(96, 64)):
    rng = np.random.default_rng(seed)
    img = np.full((size[1], size[0], 3), (200, 160, 140), np.uint8)
    img[16:48, 24:72] = (230, 90, 80)
    img = np.clip(img.astype(int) + rng.integers(-5, 5, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def tiff(c=5, size=(80, 60), seed=0):
    # 10-px cells of random levels: sharp edges, no pixel noise (the photo checks fail pure noise as grainy)
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (size[1] // 10, size[0] // 10, c), dtype=np.uint8)
    arr = np.ascontiguousarray(np.repeat(np.repeat(cells, 10, axis=0), 10, axis=1))
    arr[15:45, 20:60, 0] = 250
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric="minisblack", planarconfig="contig")
    return buf.getvalue()


def fill(at, files):
    at.text_input(key="pseudonym").input("PT-0042")
    at.number_input(key="age").set_value(41.0)
    at.date_input(key="visit_date").set_value(dt.date(2026, 3, 14))
    at.file_uploader(key="uploads").set_value(files)
    at.button(key="score").click()
    at.run()
    assert not at.exception, at.exception


def charts(root) -> dict[str, dict]:
    """{element id (ends with the widget key): plotly figure JSON} of every chart under root."""
    return {c.proto.id: json.loads(c.proto.spec) for c in root.get("plotly_chart")}


def chart(root, key: str) -> dict:
    found = [fig for cid, fig in charts(root).items() if cid.endswith(key)]
    assert len(found) == 1, (key, list(charts(root)))
    return found[0]


def heatmap_names(fig: dict) -> list[str]:
    return [t["name"] for t in fig["data"] if t["type"] == "heatmap"]


def _start(monkeypatch, tmp_path, model_dir: Path | None = None, fake=None):
    import model.inference

    monkeypatch.setenv("DERMSEV_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DERMSEV_BACKEND", "torch-fp32")  # no backend measurement in tests
    if model_dir is None:
        monkeypatch.delenv("DERMSEV_MODEL", raising=False)
        monkeypatch.setattr(model.inference, "load_model", lambda model_dir=None: fake)
    else:
        monkeypatch.setenv("DERMSEV_MODEL", str(model_dir))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def fake_app(monkeypatch, tmp_path, fake_predictor):
    at = _start(monkeypatch, tmp_path, fake=fake_predictor)
    yield at
    st.cache_resource.clear()


def test_fake_model_why_this_score(fake_app, monkeypatch):
    import model.explain.saliency

    calls = []

    def explain_image(predictor, image, age=None, sex=None, method="gradient"):
        calls.append((image[:4], age, sex, method))
        return _explanation()

    monkeypatch.setattr(model.explain.saliency, "explain_image", explain_image)
    at = fake_app
    fill(at, [("a.png", png(0), "image/png")])
    assert not at.sidebar.get("plotly_chart")[1:]  # legend only: no mixing layer, no importance
    assert not at.get("multiselect")  # RGB model: no channel picker
    k = f"{at.session_state['batch']}_0"
    before = len(at.get("plotly_chart"))
    at.button(key=f"explain_{k}").click()
    at.run()
    assert not at.exception, at.exception
    assert calls == [(png(0)[:4], 41.0, None, "gradient")]
    assert heatmap_names(chart(at, f"saliency_{k}")) == SIGNS
    assert heatmap_names(chart(at, f"saliency_channels_{k}")) == ["red", "green", "blue"]
    assert len(at.get("plotly_chart")) == before + 3
    at.selectbox(key=f"explain_sign_{k}").set_value("excoriation")
    at.run()  # cached: a rerun redraws without recomputing
    assert not at.exception and len(calls) == 1
    assert "excoriation" in chart(at, f"saliency_channels_{k}")["layout"]["title"]["text"]


def test_fake_model_explain_failure_is_reported(fake_app, monkeypatch):
    import model.explain.saliency

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model.explain.saliency, "explain_image", broken)
    fill(fake_app, [("a.png", png(0), "image/png")])
    k = f"{fake_app.session_state['batch']}_0"
    fake_app.button(key=f"explain_{k}").click()
    fake_app.run()
    assert not fake_app.exception
    assert any("Could not explain a.png: out of memory" in e.value for e in fake_app.error)


@pytest.mark.slow
def test_tiny_model_why_this_score(monkeypatch, tmp_path, tiny_model_dir):
    at = _start(monkeypatch, tmp_path, tiny_model_dir)
    try:
        fill(at, [("a.png", png(0), "image/png")])
        k = f"{at.session_state['batch']}_0"
        at.selectbox(key=f"explain_method_{k}").set_value("jacobian")
        at.run()
        at.button(key=f"explain_{k}").click()
        at.run()
        assert not at.exception, at.exception
        assert heatmap_names(chart(at, f"saliency_{k}")) == SIGNS
        assert heatmap_names(chart(at, f"saliency_channels_{k}")) == ["red", "green", "blue"]
    finally:
        st.cache_resource.clear()


@pytest.fixture
def five_channel_model(tmp_path, write_tiny_model):
    """A random-init tiny MODEL_DIR with 5 input channels and a channel mixing layer."""
    return write_tiny_model(tmp_path / "five", channels=FIVE, mixing=True)


@pytest.mark.slow
def test_five_channel_tiff_scores_with_importance_and_picker(
    monkeypatch, tmp_path, five_channel_model
):
    at = _start(monkeypatch, tmp_path, five_channel_model)
    try:
        importance = chart(at.sidebar, "channel_importance")
        bars = importance["data"][0]
        assert sorted(bars["y"]) == list(FIVE) and sum(bars["x"]) == pytest.approx(1)
        fill(at, [("five.tif", tiff(5), "image/tiff")])
        assert [p.name for p in at.session_state["assessment"].photos] == ["five.tif"]
        k = f"{at.session_state['batch']}_0"
        picker = at.multiselect(key=f"view_channels_{k}")
        assert picker.value == ["c0", "c1", "c2"] and picker.options == list(FIVE)
        scores = dict(at.session_state["assessment"].photos[0].scores)
        picker.set_value(["c4"])  # one channel as grayscale: display only
        at.checkbox(key=f"view_stretch_{k}").check()
        at.run()
        assert not at.exception, at.exception
        assert at.session_state["assessment"].photos[0].scores == scores
        at.button(key=f"explain_{k}").click()
        at.run()
        assert not at.exception, at.exception
        assert heatmap_names(chart(at, f"saliency_{k}")) == SIGNS
        assert heatmap_names(chart(at, f"saliency_channels_{k}")) == list(FIVE)
    finally:
        st.cache_resource.clear()
