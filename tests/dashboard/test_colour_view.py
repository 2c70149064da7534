"""White balance on the page: the choice in the form, the neutral-patch picker, the re-score."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard import colour, scoring
from dashboard.assessment import PhotoResult
from model.inference import WHITE_BALANCES
from tests.dashboard.test_app import app, fill, png  # noqa: F401  (the page fixture)


def test_the_choices_are_the_models_methods() -> None:
    assert set(colour.CHOICES) == set(WHITE_BALANCES)
    assert [colour.scoring_method(c) for c in ("grey-world", "none", "patch")] == ["grey-world", "none", "grey-world"]
    with pytest.raises(ValueError, match="white balance must be one of"):
        colour.scoring_method("daylight")


@pytest.mark.parametrize(("selection", "expected"), [
    ({"box": [{"x": [10.4, 30.2], "y": [40.9, 5.0]}], "points": []}, (10, 5, 32, 42)),
    ({"box": [{"x": [-20, 30], "y": [50, 200]}]}, (0, 50, 31, 64)),  # clipped to the photo (32 wide, 64 high)
    ({"box": [], "points": [{"x": 3, "y": 4}, {"x": 9, "y": 2}]}, (3, 2, 10, 5)),  # points only
    ({"box": [], "points": []}, None),
    ({}, None),
    (None, None),
    ({"box": [{"x": [100, 120], "y": [0, 10]}]}, None),  # outside the photo
])
def test_box_from_selection(selection, expected) -> None:
    assert colour.box_from_selection(selection, (64, 32, 3)) == expected


def test_picker_figure_is_selectable_over_the_whole_photo() -> None:
    img = np.zeros((300, 400, 3), np.uint8)
    fig = colour.picker_figure(img, max_side=200, box=(10, 20, 50, 60))
    photo, grid = fig.data
    assert isinstance(photo, go.Image) and photo.dx == pytest.approx(2.0)  # shown at half size, in photo pixels
    assert fig.layout.dragmode == "select"
    assert min(grid.x) == 0 and max(grid.x) == 399 and max(grid.y) == 299
    assert [(s.x0, s.y0, s.x1, s.y1) for s in fig.layout.shapes] == [(10, 20, 50, 60)]


def test_score_files_passes_the_choice(fake_predictor) -> None:
    for choice, sent in (("none", "none"), ("patch", "grey-world"), ("grey-world", "grey-world")):
        scoring.score_files(fake_predictor, [("a.png", png(0))], age=40, sex=None, region="trunk",
                            white_balance=choice)  # fmt: skip
        assert fake_predictor.calls[-1]["white_balance"] == sent


def test_rescore_with_patch_maps_the_box_to_the_photos_pixels(fake_predictor) -> None:
    data = png(0, size=(96, 64))
    first = PhotoResult.from_prediction("a.png", "trunk", fake_predictor.predict(data, name="a.png"), 48)
    assert first.image.shape[:2] == (32, 48)  # the display copy is half size
    new = colour.rescore_with_patch(fake_predictor, data, first, (4, 2, 10, 8), age=40, sex="F", tta=False)
    assert fake_predictor.calls[-1]["neutral_box"] == pytest.approx((8, 4, 20, 16))
    assert (new.name, new.region) == ("a.png", "trunk") and new is not first


def test_the_form_choice_reaches_the_model(app, fake_predictor) -> None:  # noqa: F811
    assert app.selectbox(key="white_balance").options == list(colour.CHOICES.values())
    assert app.selectbox(key="white_balance").value == "grey-world"
    app.selectbox(key="white_balance").set_value("none")
    fill(app, [("a.png", png(0), "image/png")])
    assert [c["white_balance"] for c in fake_predictor.calls] == ["none"]
    assert len(app.get("plotly_chart")) == 1 + 2  # legend; overlay + small multiples: no picker


def test_neutral_patch_shows_a_picker_under_each_photo(app, fake_predictor) -> None:  # noqa: F811
    app.selectbox(key="white_balance").set_value("patch")
    fill(app, [("a.png", png(0), "image/png"), ("b.png", png(1), "image/png")])
    assert [c["white_balance"] for c in fake_predictor.calls] == ["grey-world", "grey-world"]  # until picked
    assert len(app.get("plotly_chart")) == 1 + 2 * (2 + 1)  # legend; per photo overlay, multiples, picker
    assert sum("neutral patch" in e.label for e in app.expander) == 2
    assert any("until you drag a box" in c.value for c in app.caption)
