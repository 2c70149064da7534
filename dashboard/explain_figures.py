"""Figures for "why this score": saliency overlays per sign, saliency per input channel, and
the display of a C-channel image from the channels a clinician picks (no streamlit here).

Saliency maps come from `model.explain.saliency.explain_image`: per sign a (C, h, w) map >= 0 (one
plane per input channel) and its projection, an (h, w) map on 0..1. The overlay uses a
colour scale that is transparent at 0, so the photo shows where nothing drove the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from dashboard.figures import FONT, _fit_map, _image_uri, _layout, downsample

# Transparent -> yellow -> red: low saliency lets the photo through.
SALIENCY_SCALE = [
    [0.0, "rgba(255,255,178,0)"],
    [0.15, "rgba(254,217,118,0.15)"],
    [0.4, "rgba(254,178,76,0.55)"],
    [0.7, "rgba(240,59,32,0.8)"],
    [1.0, "rgba(189,0,38,0.95)"],
]
# Per-channel panels without a photo underneath: an opaque perceptual scale.
CHANNEL_SCALE = "Inferno"


def default_view_channels(n_channels: int) -> tuple[int, ...]:
    """The channels shown before anyone picks: the first three as RGB, or channel 0 as gray."""
    if n_channels < 1:
        raise ValueError(f"need at least one channel, got {n_channels}")
    return (0, 1, 2) if n_channels >= 3 else (0,)


def _plane_to_unit(plane: np.ndarray, stretch: bool) -> np.ndarray:
    """One (h, w) channel of any dtype -> float32 on 0..1."""
    if plane.dtype == np.bool_:
        x = plane.astype(np.float32)
    elif plane.dtype == np.uint8:
        x = plane.astype(np.float32) / 255.0
    elif np.issubdtype(plane.dtype, np.integer):
        x = plane.astype(np.float32) / float(np.iinfo(plane.dtype).max)
    else:  # floats are taken as already on 0..1 (as the model's reader does)
        x = np.nan_to_num(plane.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if stretch and x.size:
        lo, hi = np.percentile(x, (1.0, 99.0))
        if hi > lo:
            x = (x - lo) / (hi - lo)
    return np.clip(x, 0.0, 1.0)


def channel_view(
    image: np.ndarray, channels: Sequence[int] | None = None, *, stretch: bool = False
) -> np.ndarray:
    """(h, w) or (h, w, C) image of any dtype -> (h, w, 3) uint8 RGB for display.

    channels: indices into C. One index: that channel as grayscale; two: a magenta/green
    composite (first in red and blue, second in green: readable with red-green colour
    blindness); three: red, green, blue. None: `default_view_channels(C)`.
    stretch: spread each shown channel's 1st..99th percentile over the full range (for
    dim channels such as fluorescence); otherwise uint8 / uint16 / other integers are scaled
    by their type's range and floats are taken as 0..1.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] < 1:
        raise ValueError(f"image must be (h, w) or (h, w, C), got shape {np.asarray(image).shape}")
    n = arr.shape[2]
    chosen = default_view_channels(n) if channels is None else tuple(int(c) for c in channels)
    if not 1 <= len(chosen) <= 3:
        raise ValueError(f"pick 1 to 3 channels to view, got {len(chosen)}")
    bad = [c for c in chosen if not 0 <= c < n]
    if bad:
        raise ValueError(f"channel index {bad[0]} out of range for an image with {n} channel(s)")
    planes = [_plane_to_unit(arr[:, :, c], stretch) for c in chosen]
    if len(planes) == 1:
        planes = planes * 3
    elif len(planes) == 2:
        planes = [planes[0], planes[1], planes[0]]
    rgb = np.stack(planes, axis=2)
    return np.ascontiguousarray((rgb * 255 + 0.5).astype(np.uint8))


def fit_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an (h, w, 3) uint8 display image to (H, W) = shape (Lanczos)."""
    image = np.asarray(image)
    if image.shape[:2] == tuple(shape):
        return image
    pil = Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.LANCZOS)
    return np.asarray(pil)


def _grid(n: int, columns: int) -> tuple[int, int]:
    cols = max(1, min(columns, n))
    return -(-n // cols), cols


def _lock_aspect(fig: go.Figure, n: int) -> None:
    for i in range(n):  # each panel keeps its own aspect ratio
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"


def _heat(z: np.ndarray, shape: tuple[int, int], **kw) -> go.Heatmap:
    """A heatmap of z stretched over an (h, w) pixel grid (the photo's coordinates)."""
    h, w = shape
    mh, mw = z.shape
    sy, sx = h / mh, w / mw
    return go.Heatmap(z=z.astype(np.float32), x0=(sx - 1) / 2, dx=sx, y0=(sy - 1) / 2, dy=sy, **kw)


def saliency_figure(
    image: np.ndarray,
    projected: Mapping[str, np.ndarray],
    signs: Sequence[str],
    *,
    scores: Mapping[str, float] | None = None,
    opacity: float = 0.8,
    max_side: int = 256,
    map_side: int = 128,
    columns: int = 4,
) -> go.Figure:
    """One panel per sign: the photo with that sign's projected saliency (0..1) on top.

    Traces, in order, per sign: a `go.Image` (the photo, hover off) and a `go.Heatmap`
    named after the sign (one heatmap per sign, one shared colour bar).
    image: (h, w, 3) uint8; projected: {sign: (h', w') on 0..1}, stretched over the photo.
    """
    if not signs:
        raise ValueError("no signs to show")
    missing = [s for s in signs if s not in projected]
    if missing:
        raise ValueError(f"no saliency map for {missing}")
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    small = downsample(np.asarray(image), max_side)
    h, w = small.shape[:2]
    k = min(1.0, map_side / max(h, w))
    grid = (max(1, round(h * k)), max(1, round(w * k)))
    uri = _image_uri(small)
    rows, cols = _grid(len(signs), columns)
    titles = [f"{s} {scores[s]:.2f}" if scores and s in scores else s for s in signs]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.02, vertical_spacing=0.08)  # fmt: skip
    for i, sign in enumerate(signs):
        z = np.clip(_fit_map(np.asarray(projected[sign], np.float32), grid), 0.0, 1.0)
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Image(source=uri, hoverinfo="skip", name="photo"), row=r, col=c)
        fig.add_trace(_heat(z, (h, w), zmin=0, zmax=1, colorscale=SALIENCY_SCALE, opacity=opacity,
                            showscale=i == 0, name=sign,
                            colorbar=dict(title=dict(text="saliency"), tickvals=[0, 1],
                                          ticktext=["low", "high"], thickness=14),
                            hovertemplate=f"{sign}: saliency %{{z:.2f}}<extra></extra>"),
                      row=r, col=c)  # fmt: skip
    _layout(fig, height=260 * rows + 40)
    _lock_aspect(fig, len(signs))
    return fig


def channel_saliency_figure(
    saliency: np.ndarray,
    channels: Sequence[str],
    *,
    share: Mapping[str, float] | None = None,
    title: str | None = None,
    max_side: int = 192,
    columns: int = 4,
    percentile: float = 99.0,
) -> go.Figure:
    """One sign's saliency per input channel: one panel (one `go.Heatmap`) per channel.

    saliency: (C, h, w) >= 0. All panels share one colour scale (0 .. the `percentile` of
    all channels together), so a dim panel is a channel that mattered little. share:
    {channel: share of the saliency mass}, shown in the panel titles.
    """
    sal = np.asarray(saliency, dtype=np.float32)
    if sal.ndim == 2:
        sal = sal[None]
    if sal.ndim != 3 or sal.shape[0] != len(channels):
        raise ValueError(
            f"saliency must be (C={len(channels)}, h, w), got {np.asarray(saliency).shape}"
        )
    sal = np.abs(np.nan_to_num(sal))
    top = float(np.percentile(sal, percentile)) if sal.size else 0.0
    top = top if top > 0 else float(sal.max(initial=0.0))
    top = top if top > 0 else 1.0
    rows, cols = _grid(len(channels), columns)
    titles = [f"{ch} {share[ch]:.0%}" if share and ch in share else ch for ch in channels]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.02, vertical_spacing=0.1)  # fmt: skip
    for i, ch in enumerate(channels):
        z = downsample(sal[i], max_side)
        fig.add_trace(go.Heatmap(z=z, zmin=0, zmax=top, colorscale=CHANNEL_SCALE, name=ch,
                                 showscale=i == 0,
                                 colorbar=dict(title=dict(text="saliency"), thickness=14),
                                 hovertemplate=f"{ch}: %{{z:.3g}}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)  # fmt: skip
    _layout(fig, height=210 * rows + 50)
    _lock_aspect(fig, len(channels))
    if title:
        fig.update_layout(title=dict(text=title, x=0.01))
    fig.update_layout(font=dict(family=FONT, size=12))
    return fig
