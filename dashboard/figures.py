"""Severity maps over photos: plotly overlays and small multiples, Pillow PNGs for the PDF.

Severity maps are drawn with a banded colour scale: one flat colour per label band (the
bands are cut at the model's thresholds, by default none < 0.5 <= mild < 1.5 <= moderate
< 2.5 <= severe on 0..3), "none" transparent so healthy skin shows the photo. Figures keep
their data light: images go in as an embedded JPEG, maps are downsampled to at most
`max_side` pixels on the long side.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from dashboard.assessment import DEFAULT_LABELS, DEFAULT_MAX_SCORE, DEFAULT_THRESHOLDS

# st.plotly_chart's config for every chart with a mode bar: no plotly logo, PNG download.
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png"}}
# Severe end of a yellow -> red ramp (ColorBrewer YlOrRd), picked evenly per band.
_RAMP = np.array(
    [(255, 237, 160), (254, 178, 76), (252, 78, 42), (189, 0, 38), (128, 0, 38)], dtype=float
)
FONT = "Source Sans Pro, Helvetica, Arial, sans-serif"


def band_colors(n_bands: int) -> list[tuple[int, int, int, float]]:
    """RGBA per label band: band 0 ("none") transparent, the rest along yellow -> red."""
    if n_bands < 1:
        raise ValueError(f"need at least one band, got {n_bands}")
    out: list[tuple[int, int, int, float]] = [(255, 255, 255, 0.0)]
    for t in np.linspace(0, 1, max(n_bands - 1, 1))[: n_bands - 1]:
        rgb = [
            np.interp(t * (len(_RAMP) - 2), range(len(_RAMP) - 1), _RAMP[:-1, c]) for c in range(3)
        ]
        out.append((int(rgb[0]), int(rgb[1]), int(rgb[2]), 1.0))
    return out


def check_bands(thresholds: Sequence[float], labels: Sequence[str], max_score: float) -> None:
    if max_score <= 0:
        raise ValueError(f"max_score must be positive, got {max_score}")
    if len(labels) != len(thresholds) + 1:
        raise ValueError(
            f"need one label per band: {len(thresholds)} thresholds give "
            f"{len(thresholds) + 1} bands, got {len(labels)} labels"
        )
    if list(thresholds) != sorted(thresholds) or not all(0 < t < max_score for t in thresholds):
        raise ValueError(
            f"thresholds must increase strictly inside 0..{max_score}, got {thresholds}"
        )


def banded_colorscale(
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    max_score: float = DEFAULT_MAX_SCORE,
    labels: Sequence[str] = DEFAULT_LABELS,
) -> tuple[list, list[float], list[str]]:
    """Plotly colorscale with a flat colour per band, plus colourbar tick values and texts.

    Returns (colorscale, tickvals at the band centres on 0..max_score, ticktext labels).
    """
    check_bands(thresholds, labels, max_score)
    edges = [0.0, *thresholds, max_score]
    colors = band_colors(len(labels))
    scale = []
    for i, (r, g, b, a) in enumerate(colors):
        rgba = f"rgba({r},{g},{b},{a})"
        scale += [[edges[i] / max_score, rgba], [edges[i + 1] / max_score, rgba]]
    ticks = [(edges[i] + edges[i + 1]) / 2 for i in range(len(labels))]
    return scale, ticks, list(labels)


def downsample(array: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink (h, w) float maps or (h, w, 3) uint8 images so the long side is <= max_side.

    Maps are box-averaged (scores stay on their scale); images are resampled with Lanczos.
    """
    h, w = array.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return array
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if array.ndim == 2:
        img = Image.fromarray(np.asarray(array, dtype=np.float32))
        return np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float32)
    return np.asarray(Image.fromarray(_as_uint8_rgb(array)).resize(size, Image.Resampling.LANCZOS))


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8:
        raise ValueError(f"display images must be (h, w, 3) uint8 RGB, got {image.dtype}")
    return image[..., :3]


def dim_outside(image: np.ndarray, mask: np.ndarray | None, keep: float = 0.35) -> np.ndarray:
    """(h, w, 3) uint8 with the pixels outside `mask` ((h, w) bool, e.g. the skin) darkened to
    `keep` of their brightness; the image itself when there is no mask or the sizes differ."""
    if mask is None or mask.shape != image.shape[:2] or mask.all():
        return image
    out = image.astype(np.float32)
    out[~mask] *= keep
    return out.astype(np.uint8)


def _fit_map(sign_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a (h, w) map to (H, W) = shape, box-averaging down or bilinear up."""
    sign_map = np.asarray(sign_map, dtype=np.float32)
    if sign_map.shape == shape:
        return sign_map
    img = Image.fromarray(sign_map)
    smaller = shape[0] * shape[1] < sign_map.size
    method = Image.Resampling.BOX if smaller else Image.Resampling.BILINEAR
    return np.asarray(img.resize((shape[1], shape[0]), method), dtype=np.float32)


def _image_uri(image: np.ndarray, quality: int = 85) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _overlay_traces(
    image, sign_map, sign, max_score, thresholds, labels, opacity, max_side, map_side, showscale
):
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    small = downsample(_as_uint8_rgb(image), max_side)
    h, w = small.shape[:2]
    # The map goes on a coarser grid than the photo (the model's own resolution is lower
    # still), stretched over it: a quarter of the data, the same picture.
    k = min(1.0, (map_side or max_side) / max(h, w))
    mh, mw = max(1, round(h * k)), max(1, round(w * k))
    z = np.clip(_fit_map(sign_map, (mh, mw)), 0, max_score)
    sy, sx = h / mh, w / mw
    scale, ticks, text = banded_colorscale(thresholds, max_score, labels)
    # The JPEG carries the photo; hover comes from the heatmap only.
    photo = go.Image(source=_image_uri(small), hoverinfo="skip", name="photo")
    heat = go.Heatmap(
        z=z.astype(np.float32),
        x0=(sx - 1) / 2,
        dx=sx,
        y0=(sy - 1) / 2,
        dy=sy,
        zmin=0,
        zmax=max_score,
        colorscale=scale,
        opacity=opacity,
        showscale=showscale,
        colorbar=dict(title=dict(text="severity"), tickvals=ticks, ticktext=text, thickness=14),
        hovertemplate=f"{sign}: %{{z:.2f}}<extra></extra>",
        name=sign,
    )
    return photo, heat


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        font=dict(family=FONT, size=13),
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    return fig


def overlay_figure(
    image: np.ndarray,
    sign_map: np.ndarray,
    sign: str,
    *,
    max_score: float = DEFAULT_MAX_SCORE,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    labels: Sequence[str] = DEFAULT_LABELS,
    opacity: float = 0.5,
    max_side: int = 512,
    map_side: int = 256,
    title: str | None = None,
) -> go.Figure:
    """Photo with one sign's severity map on top.

    image: (h, w, 3) uint8 RGB, shown at <= max_side px; sign_map: (h', w') on
    0..max_score, box-averaged to <= map_side px and stretched over the photo. Hover gives
    the score under the pointer (2 decimals).
    """
    photo, heat = _overlay_traces(
        image, sign_map, sign, max_score, thresholds, labels, opacity, max_side, map_side, True
    )
    fig = go.Figure([photo, heat])
    fig.update_layout(title=dict(text=title or sign, x=0.01))
    return _layout(fig, height=520)


def small_multiples(
    image: np.ndarray,
    maps: np.ndarray,
    signs: Sequence[str],
    *,
    scores: Mapping[str, float] | None = None,
    max_score: float = DEFAULT_MAX_SCORE,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    labels: Sequence[str] = DEFAULT_LABELS,
    opacity: float = 0.5,
    max_side: int = 256,
    map_side: int = 128,
    columns: int = 4,
) -> go.Figure:
    """All signs side by side, one panel per sign, sharing one colour bar.

    maps: (n_signs, h, w) on 0..max_score; panels wrap after `columns`.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[0] != len(signs):
        raise ValueError(f"maps must be (n_signs={len(signs)}, h, w), got {maps.shape}")
    cols = max(1, min(columns, len(signs)))
    rows = -(-len(signs) // cols)
    titles = [f"{s} {scores[s]:.2f}" if scores and s in scores else s for s in signs]
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.08
    )
    for i, sign in enumerate(signs):
        photo, heat = _overlay_traces(
            image,
            maps[i],
            sign,
            max_score,
            thresholds,
            labels,
            opacity,
            max_side,
            map_side,
            i == 0,
        )
        fig.add_trace(photo, row=i // cols + 1, col=i % cols + 1)
        fig.add_trace(heat, row=i // cols + 1, col=i % cols + 1)
    _layout(fig, height=260 * rows + 40)
    for i in range(len(signs)):  # lock each panel's aspect to its own x axis
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    return fig


def band_layer(
    sign_map: np.ndarray,
    shape: tuple[int, int],
    max_score: float = DEFAULT_MAX_SCORE,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    opacity: float = 0.5,
) -> Image.Image:
    """The severity bands alone as an RGBA image at `shape` (h, w): one flat colour and alpha
    (band alpha x opacity) per band, as in `overlay_png`; "none" is fully transparent.

    Laid over the photo (the PDF), it gives the same picture as `overlay_png` in a few kB:
    flat bands deflate to almost nothing, and the photo is stored once, as JPEG.
    """
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    labels = [str(i) for i in range(len(thresholds) + 1)]
    check_bands(thresholds, labels, max_score)
    band = np.digitize(_fit_map(sign_map, shape), thresholds)
    rgba = np.array([(r, g, b, round(255 * a * opacity)) for r, g, b, a in band_colors(len(labels))],
                    dtype=np.uint8)  # fmt: skip
    return Image.fromarray(rgba[band], mode="RGBA")


def overlay_png(
    image_rgb_uint8: np.ndarray,
    sign_map: np.ndarray,
    max_score: float = DEFAULT_MAX_SCORE,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    opacity: float = 0.5,
    max_side: int = 768,
) -> Image.Image:
    """The overlay as a Pillow RGB image (for the PDF; no browser or kaleido needed).

    Same banded colours as the plotly overlay; "none" pixels keep the photo unchanged.
    """
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    labels = [str(i) for i in range(len(thresholds) + 1)]
    check_bands(thresholds, labels, max_score)
    base = downsample(_as_uint8_rgb(image_rgb_uint8), max_side).astype(np.float32)
    z = _fit_map(sign_map, base.shape[:2])
    band = np.digitize(z, thresholds)  # 0 = none .. len(thresholds)
    rgba = np.array(band_colors(len(labels)), dtype=np.float32)
    color, alpha = rgba[band, :3], rgba[band, 3:] * opacity
    out = base * (1 - alpha) + color * alpha
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
