"""White balance on the page, without streamlit: the choice, the patch picker, the re-score.

The clinician chooses how photos are colour-normalised before scoring (`CHOICES`); with
"neutral patch" each photo is first scored with grey-world, then the clinician drags a box
over something that should be neutral grey or white (a grey card, paper, a ruler) on a
picker figure (`picker_figure`) and the photo is scored again with gains from that box
(`rescore_with_patch`). Methods: model/data/colour.py, through `Predictor.predict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.assessment import PhotoResult
from dashboard.figures import _image_uri, _layout, downsample

CHOICES = {
    "grey-world": "grey-world (towards the model's training colour)",
    "none": "none (the photo as taken)",
    "patch": "neutral patch (pick a grey or white area on each photo)",
}
FIRST_PASS = "grey-world"  # how a "patch" photo is scored until the clinician picks the patch
GRID = 48  # invisible selectable points per side: a box selection always holds some


def check_choice(choice: str) -> str:
    if choice not in CHOICES:
        raise ValueError(f"white balance must be one of {list(CHOICES)}, got {choice!r}")
    return choice


def scoring_method(choice: str) -> str:
    """The white balance a batch is scored with: the choice, grey-world for "patch" (until a patch is picked)."""
    return FIRST_PASS if check_choice(choice) == "patch" else choice


def picker_figure(image: np.ndarray, max_side: int = 512, box: tuple[float, ...] | None = None) -> go.Figure:
    """The photo ((h, w, 3) uint8, shown at <= max_side px) to drag a box on, in the photo's
    own pixel coordinates; `box` (x0, y0, x1, y1), the patch picked before, is outlined.

    A grid of invisible points covers the photo: plotly reports box selections over points.
    """
    small = downsample(np.asarray(image)[..., :3], max_side)
    h, w = image.shape[:2]
    sh, sw = small.shape[:2]
    photo = go.Image(source=_image_uri(small), dx=w / sw, dy=h / sh, hoverinfo="skip", name="photo")
    xs = np.linspace(0, w - 1, min(GRID, w))
    ys = np.linspace(0, h - 1, min(GRID, h))
    gx, gy = np.meshgrid(xs, ys)
    grid = go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", marker=dict(size=6, opacity=0),
                      hoverinfo="skip", showlegend=False, name="patch")  # fmt: skip
    fig = go.Figure([photo, grid])
    fig.update_layout(dragmode="select", title=dict(text="Drag a box over something neutral grey or white", x=0.01))
    if box is not None:
        x0, y0, x1, y1 = box
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=dict(color="#00b4d8", width=2))
    return _layout(fig, height=420)


def box_from_selection(selection: Mapping[str, Any] | None, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """A plotly box selection (st.plotly_chart(on_select=...).selection) -> (x0, y0, x1, y1)
    integer pixels of an image of `shape` (h, w, ...), clipped to it; None without a box."""
    if not selection:
        return None
    h, w = shape[:2]
    boxes = selection.get("box") or []
    if boxes and boxes[-1].get("x") and boxes[-1].get("y"):
        xs, ys = boxes[-1]["x"], boxes[-1]["y"]
    else:  # some plotly versions report only the selected points
        pts = selection.get("points") or []
        if not pts:
            return None
        xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    x0, x1 = max(0, int(np.floor(min(xs)))), min(w, int(np.ceil(max(xs))) + 1)
    y0, y1 = max(0, int(np.floor(min(ys)))), min(h, int(np.ceil(max(ys))) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def rescore_with_patch(predictor: Any, data: bytes, photo: PhotoResult, box: tuple[int, int, int, int], *,
                       age: float | None, sex: str | None, tta: bool, max_side: int = 768) -> PhotoResult:
    """`photo` scored again with white balance from `box` (pixels of photo.image, the display
    copy): a new PhotoResult with the same name and region (a corrected skin mask is not kept).
    Raises DermsevError / ValueError for a box the balance cannot use (e.g. black)."""
    image, _ = predictor.decode(data, photo.name)
    dh, dw = np.asarray(photo.image).shape[:2]
    sy, sx = image.shape[0] / dh, image.shape[1] / dw
    full_box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    result = predictor.predict(image, age=age, sex=sex, tta=tta, name=photo.name, neutral_box=full_box)
    new = PhotoResult.from_prediction(photo.name, photo.region, result, max_side)
    new.confirmed = photo.confirmed
    return new
