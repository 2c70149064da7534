"""The clinician's correction of a photo's skin mask: selections -> mask -> scores (no streamlit).

A selection is what `st.plotly_chart(..., on_select=..., selection_mode=("box", "lasso"))`
returns in `state["selection"]` (streamlit 1.67, read in its PlotlyChart frontend):
`{"box": [{"xref", "yref", "x": [x0, x1], "y": [y0, y1]}], "lasso": [{"xref", "yref",
"x": [...], "y": [...]}], "points": [...], "point_indices": [...]}`, in the figure's data
coordinates. `dashboard.view_mask` draws the photo so that those are the mask's pixel
coordinates (x = column, y = row, pixel centres on integers).

Why plotly's box and lasso (and not a drawing canvas or click points): the page already ships
plotly, the selection comes back as plain coordinates in streamlit's own widget state (no new
dependency, no custom component that AppTest cannot drive and a streamlit upgrade can break:
streamlit-drawable-canvas 0.13 is MIT and needs streamlit >= 1.53, but calls itself "best
effort"), and a lasso is a free-hand stroke around a region, which is what a brush would
paint. GrabCut (OpenCV, already a dependency) optionally snaps a rough selection to the
edges of what it encloses, as AI-EASI's click-and-refine does.

`mask_figure` draws the photo for selecting. Data flow: selection -> `selection_region` ((h, w) bool) -> optional `grabcut_region` ->
`MaskCorrection.apply` (include: mask | region; exclude: mask & ~region) -> the photo's
scores, labels and affected area from `predictor.score_maps(maps, mask)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import plotly.graph_objects as go

from dashboard.assessment import PhotoResult
from dashboard.figures import _image_uri, dim_outside, downsample

MODES = ("exclude", "include")
MAX_UNDO = 20
_SUBPIXEL = 4  # cv2.fillPoly's fixed-point bits: polygon corners at 1/16 px


def box_region(shape: tuple[int, int], x: Any, y: Any) -> np.ndarray:
    """(h, w) bool: the pixels whose centres lie in the box spanned by x = (x0, x1) and
    y = (y0, y1) (either order, clipped to the image; empty when nothing is inside)."""
    h, w = shape
    region = np.zeros(shape, bool)
    c0, c1 = int(np.ceil(min(x))), int(np.floor(max(x)))
    r0, r1 = int(np.ceil(min(y))), int(np.floor(max(y)))
    region[max(r0, 0) : min(r1, h - 1) + 1, max(c0, 0) : min(c1, w - 1) + 1] = True
    return region


def polygon_region(shape: tuple[int, int], x: Any, y: Any) -> np.ndarray:
    """(h, w) bool: the pixels inside or on the closed polygon through the points (x[i], y[i])
    (clipped to the image; empty for fewer than 3 points or less than one pixel of area)."""
    region = np.zeros(shape, np.uint8)
    if len(x) != len(y):
        return region.astype(bool)
    pts = np.stack([np.asarray(x, float), np.asarray(y, float)], axis=1).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    x, y = pts.T
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))  # shoelace, in px²
    if len(pts) >= 3 and area >= 1:  # fillPoly would still draw the edges of a flat polygon
        # clip far-out corners so the fixed-point coordinates cannot overflow
        h, w = shape
        pts = np.clip(pts, -1, [w, h])
        fixed = np.round(pts * (1 << _SUBPIXEL)).astype(np.int32)
        cv2.fillPoly(region, [fixed], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL)
    return region.astype(bool)


def selection_region(selection: dict | None, shape: tuple[int, int]) -> np.ndarray | None:
    """(h, w) bool union of a plotly selection's boxes and lassos, or None when it covers no
    pixel (an empty selection, a click, a box of zero width, a lasso of two points)."""
    region = np.zeros(shape, bool)
    for box in (selection or {}).get("box") or []:
        if len(box.get("x") or ()) == 2 and len(box.get("y") or ()) == 2:
            region |= box_region(shape, box["x"], box["y"])
    for lasso in (selection or {}).get("lasso") or []:
        region |= polygon_region(shape, lasso.get("x") or [], lasso.get("y") or [])
    return region if region.any() else None


def grabcut_region(
    image: np.ndarray, region: np.ndarray, iterations: int = 3, work_side: int = 256
) -> np.ndarray:
    """Snap a rough selection to the edges of what it encloses (OpenCV GrabCut).

    image: (h, w, 3) uint8 RGB; region: (h, w) bool, the selection. Pixels outside it are
    fixed as background, pixels inside start as probable foreground; the result is the
    foreground GrabCut keeps, a subset of `region`. The work is done on the selection's
    bounding box with a margin (GrabCut needs background to learn from), at <= work_side px
    (about 0.3 s on a CPU; 1.5 s at 512 px); with no background
    around the selection, or when GrabCut keeps nothing, the selection stands as drawn.
    """
    h, w = region.shape
    rows, cols = np.nonzero(region)
    if rows.size == 0:
        return region
    pad = max(8, int(np.ptp(rows) + np.ptp(cols)) // 8)
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, h)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, w)
    crop = region[r0:r1, c0:c1]
    if crop.all():
        return region
    bgr = np.ascontiguousarray(image[r0:r1, c0:c1, 2::-1])
    size = crop.shape[::-1]
    k = min(1.0, work_side / max(size))  # GrabCut's time grows with the pixels: work smaller
    small = (max(1, round(size[0] * k)), max(1, round(size[1] * k)))
    gc = cv2.resize(crop.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST)
    gc = np.where(gc > 0, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    if gc.min() == gc.max():  # the selection vanished or filled the crop at the working size
        return region
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.resize(bgr, small, interpolation=cv2.INTER_AREA), gc, None, bgd, fgd,
                iterations, cv2.GC_INIT_WITH_MASK)  # fmt: skip
    keep = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    keep = cv2.resize(keep, size, interpolation=cv2.INTER_NEAREST) > 0
    if not (keep & crop).any():
        return region
    out = np.zeros_like(region)
    out[r0:r1, c0:c1] = keep & crop
    return out


def edit_mask(mask: np.ndarray, region: np.ndarray, mode: str) -> np.ndarray:
    """A new (h, w) bool mask: `region` added to the skin (include) or taken out (exclude)."""
    if mode not in MODES:
        raise ValueError(f"mask edit mode must be one of {', '.join(MODES)}, got {mode!r}")
    if region.shape != mask.shape:
        raise ValueError(f"selection must be {mask.shape}, got {region.shape}")
    return mask | region if mode == "include" else mask & ~region


def rescore(photo: PhotoResult, predictor: Any) -> None:
    """Recompute the photo's scores, labels, affected area and skin fraction from its maps over
    its current skin mask, by the model's own rules (`predictor.score_maps`)."""
    out = predictor.score_maps(photo.maps, photo.skin)
    photo.scores, photo.labels = out["scores"], out["labels"]
    photo.affected_area = out["affected_area"]
    photo.skin_fraction = None if photo.skin is None else float(photo.skin.mean())


@dataclass
class MaskCorrection:
    """One photo's corrections in this session: the model's reading (for reset) and an undo
    stack of earlier masks. The photo itself always holds the current mask and scores."""

    photo: PhotoResult
    undo_stack: list[np.ndarray] = field(default_factory=list)
    edits: int = 0  # changes so far (edits, undos, resets): a fresh selection widget each
    _model: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.photo
        if p.maps is None:
            raise ValueError(f"{p.name}: no severity maps, so no skin mask to correct")
        if p.skin_corrected:  # corrected before (a stored visit): reset rescores the model's mask
            return
        p.model_skin = None if p.skin is None else p.skin.copy()
        # the model's own numbers (taken on its working-size maps), to reset to exactly those
        self._model = dict(scores=dict(p.scores), labels=dict(p.labels), affected_area=dict(p.affected_area),
                           uncertainty=p.uncertainty, skin_fraction=p.skin_fraction)  # fmt: skip

    @property
    def mask(self) -> np.ndarray:
        """The current (h, w) bool skin mask (all pixels when the model gave none)."""
        skin = self.photo.skin
        return np.ones(self.photo.maps.shape[1:], bool) if skin is None else skin

    def apply(self, region: np.ndarray, mode: str, predictor: Any) -> bool:
        """Include or exclude `region` and rescore; False (nothing changes) when the edit would
        change no pixel or leave no skin at all."""
        new = edit_mask(self.mask, region, mode)
        if not new.any() or np.array_equal(new, self.mask):
            return False
        self.undo_stack = [*self.undo_stack, self.mask.copy()][-MAX_UNDO:]
        self._set(new, predictor)
        return True

    def undo(self, predictor: Any) -> bool:
        """Back to the mask before the last edit; False when there is nothing to undo."""
        if not self.undo_stack:
            return False
        mask = self.undo_stack.pop()
        if not self.undo_stack and self._model:  # back to the model's mask: its own numbers
            self.reset(predictor)
        else:
            self._set(mask, predictor)
        return True

    def reset(self, predictor: Any) -> None:
        """The model's mask and the model's own scores, labels, areas and uncertainty again."""
        p = self.photo
        p.skin = None if p.model_skin is None else p.model_skin.copy()
        if self._model:
            for name, value in self._model.items():
                setattr(p, name, value)
        else:
            rescore(p, predictor)
        p.skin_corrected = False
        self.undo_stack = []
        self.edits += 1

    def _set(self, mask: np.ndarray, predictor: Any) -> None:
        p = self.photo
        p.skin = mask
        p.skin_corrected = True
        # the test-time band was measured over the model's mask: it does not bound the new score
        p.uncertainty = None
        rescore(p, predictor)
        self.edits += 1


def mask_figure(
    image: np.ndarray, mask: np.ndarray, *, max_side: int = 512, grid: int = 48
) -> go.Figure:
    """The photo with the pixels outside `mask` dimmed, for box and lasso selections.

    image: (h, w, 3) uint8 RGB at the mask's size; mask: (h, w) bool. Shown at <= max_side px
    but placed so the axes are the mask's pixel coordinates (x = column, y = row, centres on
    integers): a selection's coordinates index the mask directly. plotly.js only reports a
    selection made over a trace it can select points of (not an image), so an invisible grid
    of about `grid` x `grid` points lies over the photo.
    """
    h, w = mask.shape
    small = downsample(dim_outside(image, mask), max_side)
    dx, dy = w / small.shape[1], h / small.shape[0]
    photo = go.Image(source=_image_uri(small), x0=(dx - 1) / 2, dx=dx, y0=(dy - 1) / 2, dy=dy,
                     hoverinfo="skip", name="photo")  # fmt: skip
    step = max(1, max(h, w) // grid)
    yy, xx = np.mgrid[0:h:step, 0:w:step]
    points = go.Scatter(x=xx.ravel(), y=yy.ravel(), mode="markers", marker=dict(size=2, opacity=0),
                        hoverinfo="skip", showlegend=False, name="grid")  # fmt: skip
    fig = go.Figure([photo, points])
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=10, b=10), dragmode="lasso",
                      plot_bgcolor="white", paper_bgcolor="white",
                      newselection=dict(line=dict(color="#00b4d8", width=2)))  # fmt: skip
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain")
    return fig
