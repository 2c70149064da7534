"""Figures and charts: banded colour scale, overlay traces, sizes, trend, legend, PNG."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dashboard.charts import channel_importance_figure, legend_figure, trend_figure
from dashboard.figures import (
    band_colors,
    banded_colorscale,
    downsample,
    overlay_figure,
    overlay_png,
    small_multiples,
)

SIGNS = ["erythema", "papulation", "excoriation", "lichenification"]


def _photo(h=60, w=80, value=(200, 160, 140)):
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = value
    return img


def test_banded_colorscale_is_flat_per_band():
    scale, ticks, text = banded_colorscale()
    assert text == ["none", "mild", "moderate", "severe"]
    assert ticks == pytest.approx([0.25, 1.0, 2.0, 2.75])
    stops = [s for s, _ in scale]
    assert stops[0] == 0 and stops[-1] == 1
    assert stops == sorted(stops)
    # each band is two stops of one colour: edges at 0.5/3, 1.5/3, 2.5/3
    assert stops[1] == pytest.approx(0.5 / 3) and stops[3] == pytest.approx(0.5)
    for i in range(0, len(scale), 2):
        assert scale[i][1] == scale[i + 1][1]
    assert scale[0][1].endswith(",0.0)")  # "none" is transparent


def test_band_colors_any_count():
    assert len(band_colors(1)) == 1
    five = band_colors(5)
    assert len(five) == 5 and five[0][3] == 0 and all(c[3] == 1 for c in five[1:])
    assert len({c[:3] for c in five[1:]}) == 4


def test_overlay_figure_traces_and_hover():
    sign_map = np.linspace(0, 3, 60 * 80, dtype=np.float32).reshape(60, 80)
    fig = overlay_figure(_photo(), sign_map, "erythema", opacity=0.3)
    photo, heat = fig.data
    assert photo.type == "image" and photo.source.startswith("data:image/jpeg;base64,")
    assert heat.type == "heatmap"
    assert heat.opacity == 0.3 and heat.zmin == 0 and heat.zmax == 3
    assert "%{z:.2f}" in heat.hovertemplate and "erythema" in heat.hovertemplate
    assert list(heat.colorbar.ticktext) == ["none", "mild", "moderate", "severe"]
    assert np.asarray(heat.z).shape == (60, 80)
    assert fig.layout.yaxis.autorange == "reversed"


def test_overlay_figure_downsamples_large_inputs():
    big = _photo(1200, 1600)
    sign_map = np.full((1200, 1600), 2.0, np.float32)
    fig = overlay_figure(big, sign_map, "erythema", max_side=512)
    photo, heat = fig.data
    with Image.open(io.BytesIO(base64.b64decode(photo.source.split(",")[1]))) as img:
        assert img.size == (512, 384)
    z = np.asarray(heat.z)
    assert z.shape == (192, 256)  # the map on a grid of half the photo's size ...
    assert (heat.dx, heat.dy, heat.x0, heat.y0) == (2, 2, 0.5, 0.5)  # ... stretched over it
    assert np.allclose(z, 2.0)  # box averaging keeps the score
    assert len(fig.to_json()) < 400_000


def test_overlay_map_resized_to_image():
    fig = overlay_figure(_photo(60, 80), np.ones((30, 40), np.float32), "erythema")
    assert np.asarray(fig.data[1].z).shape == (60, 80)


def test_small_multiples_panels():
    maps = np.stack([np.full((60, 80), v, np.float32) for v in (0, 1, 2, 3)])
    fig = small_multiples(_photo(), maps, SIGNS, scores=dict(zip(SIGNS, (0, 1, 2, 3), strict=True)))
    assert len(fig.data) == 8
    heats = [t for t in fig.data if t.type == "heatmap"]
    assert [h.showscale for h in heats] == [True, False, False, False]
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [
        "erythema 0.00",
        "papulation 1.00",
        "excoriation 2.00",
        "lichenification 3.00",
    ]
    assert max(np.asarray(heats[0].z).shape) <= 256


def test_small_multiples_wraps():
    maps = np.zeros((6, 20, 20), np.float32)
    fig = small_multiples(_photo(20, 20), maps, [f"s{i}" for i in range(6)], columns=4)
    assert fig.layout.yaxis6.scaleanchor == "x6"
    assert fig.layout.height == 260 * 2 + 40


def test_trend_figure():
    trend = pd.DataFrame({
        "visit_date": pd.to_datetime(["2026-01-01", "2026-02-01"] * 2),
        "series": ["erythema", "erythema", "EASI", "EASI"],
        "value": [2.0, 1.0, 10.0, 5.0],
        "change_pct": [0.0, -50.0, 0.0, -50.0],
    })  # fmt: skip
    fig = trend_figure(trend)
    names = [t.name for t in fig.data]
    assert names == ["erythema", "EASI"]
    assert list(fig.data[0].customdata) == ["baseline", "-50% from baseline"]
    assert fig.data[1].yaxis == "y2"


def test_legend_bands():
    fig = legend_figure([0.5, 1.5, 2.5], 3.0, ["none", "mild", "moderate", "severe"])
    assert [t.text for t in fig.data] == ["none", "mild", "moderate", "severe"]
    assert [t.base for t in fig.data] == [0, 0.5, 1.5, 2.5]
    assert [t.x[0] for t in fig.data] == [0.5, 1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="one label per band"):
        legend_figure([0.5], 3.0, ["a", "b", "c"])


def test_figures_follow_a_wider_score_scale():
    """A model on 0..4 (five bands): colour scale, overlay, legend and trend span 0..4."""
    thresholds, labels = [0.5, 1.5, 2.5, 3.5], ["none", "mild", "moderate", "severe", "worst"]
    scale, ticks, text = banded_colorscale(thresholds, 4.0, labels)
    assert [s for s, _ in scale][1:4] == pytest.approx([0.5 / 4, 0.5 / 4, 1.5 / 4])
    assert ticks[-1] == pytest.approx(3.75) and text == labels
    sign_map = np.full((60, 80), 3.8, np.float32)  # above 3: kept, not clipped to 0..3
    fig = overlay_figure(_photo(), sign_map, "e", max_score=4.0, thresholds=thresholds,
                         labels=labels)  # fmt: skip
    assert fig.data[1].zmax == 4 and np.allclose(np.asarray(fig.data[1].z), 3.8)
    assert legend_figure(thresholds, 4.0, labels).layout.xaxis.range == (0, 4)
    trend = pd.DataFrame({"visit_date": pd.to_datetime(["2026-01-01"]), "series": ["e"],
                          "value": [3.5], "change_pct": [0.0]})  # fmt: skip
    axis = trend_figure(trend, max_score=4.0).layout.yaxis
    assert axis.range == pytest.approx((0, 4.16)) and axis.title.text == "sign score (0-4)"


def test_channel_importance_sorted():
    fig = channel_importance_figure({"red": 0.5, "green": 0.2, "nir": 0.3})
    assert list(fig.data[0].y) == ["green", "nir", "red"]


def test_overlay_png_colours_only_affected_pixels():
    img = _photo(40, 40, (100, 100, 100))
    sign_map = np.zeros((40, 40), np.float32)
    sign_map[:, 20:] = 3.0
    out = overlay_png(img, sign_map, 3.0)
    assert isinstance(out, Image.Image) and out.size == (40, 40) and out.mode == "RGB"
    arr = np.asarray(out).astype(int)
    assert (arr[:, :20] == 100).all()  # none: photo unchanged
    assert arr[0, 30, 0] > arr[0, 30, 2] + 20  # severe: reddened
    assert np.asarray(overlay_png(img, sign_map, 3.0, opacity=0)).tolist() == img.tolist()


def test_overlay_png_limits_size():
    out = overlay_png(_photo(1000, 500), np.zeros((100, 50), np.float32), 3.0, max_side=200)
    assert out.size == (100, 200)


def test_downsample_keeps_small():
    a = np.ones((10, 10), np.float32)
    assert downsample(a, 512) is a


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: overlay_figure(_photo(), np.zeros((60, 80)), "e", opacity=1.5), "opacity must be"),
        (
            lambda: overlay_figure(_photo(), np.zeros((60, 80)), "e", thresholds=[0.5, 1.5]),
            "one label per band",
        ),  # fmt: skip
        (lambda: banded_colorscale([2.5, 1.5, 0.5], 3, ["a", "b", "c", "d"]), "must increase"),
        (lambda: banded_colorscale([0.5, 3.5], 3, ["a", "b", "c"]), "strictly inside 0..3"),
        (lambda: banded_colorscale([0.5], 0, ["a", "b"]), "max_score must be positive"),
        (
            lambda: overlay_figure(_photo().astype(np.float32), np.zeros((60, 80)), "e"),
            "must be \\(h, w, 3\\) uint8 RGB",
        ),  # fmt: skip
        (lambda: small_multiples(_photo(), np.zeros((3, 60, 80)), SIGNS), "n_signs=4"),
        (lambda: trend_figure(pd.DataFrame({"value": [1]})), "lacks columns"),
        (lambda: channel_importance_figure({}), "channel importance is empty"),
        (lambda: channel_importance_figure({"r": -1}), "must be non-negative"),
        (lambda: overlay_png(_photo(), np.zeros((60, 80)), 3.0, opacity=-0.1), "opacity must be"),
        (lambda: band_colors(0), "at least one band"),
    ],
)
def test_ill_args(call, message):
    with pytest.raises(ValueError, match=message):
        call()
