"""The clinician's skin-mask correction: selections on tiny hand-made masks, the rescoring, the
stored visit and the exports (the page itself in test_mask_view.py)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest

from dashboard import mask_edit, report
from dashboard.assessment import Assessment, PhotoResult
from dashboard.history import HistoryStore
from dashboard.mask_edit import (
    MaskCorrection,
    box_region,
    edit_mask,
    grabcut_region,
    polygon_region,
    selection_region,
)


def test_box_takes_the_pixels_whose_centres_are_inside_clipped_to_the_image():
    # x from 2.2 down to 0.5 (either order): columns 1, 2; y from -3 (outside): rows 0, 1
    expected = np.zeros((4, 5), bool)
    expected[0:2, 1:3] = True
    assert (box_region((4, 5), [2.2, 0.5], [-3, 1]) == expected).all()
    assert box_region((4, 5), [-50, 50], [-50, 50]).all()


@pytest.mark.parametrize(
    "x, y",
    [([1.2, 1.8], [0, 3]),  # narrower than a pixel, between two centres
     ([7, 9], [0, 3]),  # right of the image
     ([0, 4], [-5, -1])],  # above it
)  # fmt: skip
def test_box_covering_no_pixel_centre_is_empty(x, y):
    assert not box_region((4, 5), x, y).any()


def test_polygon_fills_the_pixels_inside_it():
    # triangle (0, 0), (4, 0), (0, 4): pixels with column + row <= 4
    rows, cols = np.mgrid[0:5, 0:5]
    assert (polygon_region((5, 5), [0, 4, 0], [0, 0, 4]) == (rows + cols <= 4)).all()
    # a rectangle through 0.6 .. 3.4 by 0.6 .. 2.4: the pixel centres inside, as for a box
    expected = np.zeros((5, 6), bool)
    expected[1:3, 1:4] = True
    assert (polygon_region((5, 6), [0.6, 3.4, 3.4, 0.6], [0.6, 0.6, 2.4, 2.4]) == expected).all()
    assert polygon_region((4, 4), [-1e6, 1e6, 1e6, -1e6], [-1e6, -1e6, 1e6, 1e6]).all()


@pytest.mark.parametrize(
    "x, y",
    [([0, 4], [0, 4]),  # two points
     ([0, 2, 4], [1, 1, 1]),  # a line: no area
     ([0, 4, 0], [0, 0]),  # lengths differ
     ([0, np.nan, 4], [0, 1, np.nan])],  # not numbers
)  # fmt: skip
def test_degenerate_polygon_is_empty(x, y):
    assert not polygon_region((5, 5), x, y).any()


def test_selection_is_the_union_of_its_boxes_and_lassos():
    selection = {
        "box": [{"xref": "x", "yref": "y", "x": [0, 1], "y": [0, 0]}],
        "lasso": [{"xref": "x", "yref": "y", "x": [3, 5, 5, 3], "y": [2, 2, 3, 3]}],
        "points": [], "point_indices": [],
    }  # fmt: skip
    expected = np.zeros((4, 6), bool)
    expected[0, 0:2] = True
    expected[2:4, 3:6] = True
    assert (selection_region(selection, (4, 6)) == expected).all()


@pytest.mark.parametrize(
    "selection",
    [None, {}, {"box": [], "lasso": [], "points": [{"x": 1, "y": 1}], "point_indices": [0]},
     {"box": [{"x": [1.2, 1.4], "y": [0, 3]}], "lasso": [{"x": [1, 2], "y": [1, 2]}]},
     {"box": [{"x": [9], "y": [0, 3]}]}],
)  # fmt: skip
def test_selection_covering_no_pixel_is_ignored(selection):
    assert selection_region(selection, (4, 6)) is None


def test_include_adds_and_exclude_removes():
    mask = np.zeros((3, 4), bool)
    mask[:, :2] = True
    region = np.zeros((3, 4), bool)
    region[1, 1:3] = True
    included = edit_mask(mask, region, "include")
    assert included.sum() == 6 + 1 and included[1, 2]
    excluded = edit_mask(mask, region, "exclude")
    assert excluded.sum() == 6 - 1 and not excluded[1, 1]
    assert mask.sum() == 6  # the given mask is left alone


def test_edit_mask_ill_args():
    mask = np.ones((3, 4), bool)
    with pytest.raises(ValueError, match="mode must be one of exclude, include"):
        edit_mask(mask, mask, "erase")
    with pytest.raises(ValueError, match=r"selection must be \(3, 4\)"):
        edit_mask(mask, np.ones((4, 3), bool), "exclude")


def test_grabcut_snaps_a_rough_selection_to_the_object_inside_it():
    image = np.full((64, 64, 3), (40, 90, 40), np.uint8)  # green background
    image[20:44, 20:44] = (225, 170, 150)  # a skin-coloured square
    rough = box_region((64, 64), [10, 53], [10, 53])
    snapped = grabcut_region(image, rough)
    square = box_region((64, 64), [20, 43], [20, 43])
    assert (snapped & ~rough).sum() == 0  # never outside the selection
    assert (snapped == square).mean() > 0.98
    # a selection of the whole photo leaves GrabCut no background: it stands as drawn
    assert grabcut_region(image, np.ones((64, 64), bool)).all()


def lesion_photo(uncertainty=None) -> PhotoResult:
    """10 x 10 maps, every sign alike: columns 0-2 severe (3.0), 3-4 mild (1.0), the rest 0."""
    maps = np.zeros((4, 10, 10), np.float32)
    maps[:, :, 0:3] = 3.0
    maps[:, :, 3:5] = 1.0
    scores = dict.fromkeys(("erythema", "papulation", "excoriation", "lichenification"), 3.0)
    return PhotoResult(
        name="a.png", region="trunk", scores=scores, labels=dict.fromkeys(scores, "severe"),
        affected_area=dict.fromkeys(scores, 0.5), uncertainty=uncertainty,
        image=np.full((10, 10, 3), 200, np.uint8), maps=maps, skin=np.ones((10, 10), bool),
        skin_fraction=1.0, check="pass",
    )  # fmt: skip


def test_excluding_the_severe_part_lowers_score_and_area_as_hand_computed(fake_predictor):
    photo = lesion_photo(uncertainty=dict.fromkeys(("erythema",), (2.5, 3.0)))
    corr = MaskCorrection(photo)
    # a lasso round columns 0-2: 30 severe pixels out of the skin
    lasso = {"lasso": [{"x": [-0.5, 2.4, 2.4, -0.5], "y": [-0.5, -0.5, 9.5, 9.5]}]}
    assert corr.apply(selection_region(lasso, (10, 10)), "exclude", fake_predictor)
    # skin 70 pixels, 20 of them mild (1.0): median 1.0, mild, area 20 / 70
    assert photo.scores["erythema"] == pytest.approx(1.0) and photo.labels["erythema"] == "mild"
    assert photo.affected_area["erythema"] == pytest.approx(20 / 70)
    assert photo.skin_fraction == pytest.approx(0.7)
    assert photo.skin_corrected and photo.uncertainty is None  # the band was for the model's mask
    assert photo.model_skin.all()
    # the mild columns too: nothing affected is left on the skin
    assert corr.apply(box_region((10, 10), [3, 4], [0, 9]), "exclude", fake_predictor)
    assert photo.scores["erythema"] == 0.0 and photo.affected_area["erythema"] == 0.0
    assert photo.labels["erythema"] == "none"
    # include the mild columns again; undo twice returns to the model's own numbers
    assert corr.apply(box_region((10, 10), [3, 4], [0, 9]), "include", fake_predictor)
    assert photo.affected_area["erythema"] == pytest.approx(20 / 70)
    assert corr.undo(fake_predictor) and photo.affected_area["erythema"] == 0.0
    assert corr.undo(fake_predictor) and corr.undo(fake_predictor)
    assert photo.scores["erythema"] == 3.0 and photo.affected_area["erythema"] == 0.5
    assert photo.uncertainty == {"erythema": (2.5, 3.0)} and not photo.skin_corrected
    assert not corr.undo(fake_predictor)


def test_reset_restores_the_models_mask_and_numbers(fake_predictor):
    photo = lesion_photo()
    corr = MaskCorrection(photo)
    corr.apply(box_region((10, 10), [0, 9], [0, 4]), "exclude", fake_predictor)
    corr.apply(box_region((10, 10), [0, 9], [5, 6]), "exclude", fake_predictor)
    assert photo.skin.sum() == 30 and corr.edits == 2
    corr.reset(fake_predictor)
    assert photo.skin.all() and not photo.skin_corrected and corr.undo_stack == []
    assert photo.scores["erythema"] == 3.0 and photo.affected_area["erythema"] == 0.5
    assert corr.edits == 3


def test_edits_that_change_nothing_or_leave_no_skin_are_refused(fake_predictor):
    photo = lesion_photo()
    corr = MaskCorrection(photo)
    assert not corr.apply(np.ones((10, 10), bool), "include", fake_predictor)  # already skin
    assert not corr.apply(np.ones((10, 10), bool), "exclude", fake_predictor)  # no skin left
    assert photo.skin.all() and not photo.skin_corrected and corr.edits == 0


def test_a_photo_without_a_skin_estimate_starts_from_all_pixels(fake_predictor):
    photo = lesion_photo()
    photo.skin = None
    corr = MaskCorrection(photo)
    assert corr.mask.all() and corr.mask.shape == (10, 10)
    assert corr.apply(box_region((10, 10), [5, 9], [0, 9]), "exclude", fake_predictor)
    assert photo.affected_area["erythema"] == pytest.approx(1.0)  # columns 0-4, all affected
    corr.reset(fake_predictor)
    assert photo.skin is None and photo.model_skin is None


def test_correction_needs_maps():
    photo = lesion_photo()
    photo.maps = None
    with pytest.raises(ValueError, match="no severity maps"):
        MaskCorrection(photo)


def test_mask_figure_axes_are_the_masks_pixels():
    mask = np.zeros((300, 1000), bool)
    mask[:, :500] = True
    fig = mask_edit.mask_figure(np.full((300, 1000, 3), 200, np.uint8), mask, max_side=500)
    photo, grid = fig.data
    assert photo.dx == pytest.approx(2.0) and photo.x0 == pytest.approx(0.5)
    assert list(fig.layout.xaxis.range) == [-0.5, 999.5]
    assert list(fig.layout.yaxis.range) == [299.5, -0.5]  # rows downwards, as in the image
    assert max(grid.x) <= 999 and max(grid.y) <= 299 and fig.layout.dragmode == "lasso"


def corrected_assessment(assessment: Assessment, fake_predictor) -> Assessment:
    photo = assessment.photos[0]
    photo.skin = np.ones(photo.maps.shape[1:], bool)
    MaskCorrection(photo).apply(box_region(photo.skin.shape, [0, 20], [0, 47]), "exclude", fake_predictor)
    return assessment


def test_stored_visit_keeps_the_corrected_mask(tmp_path, assessment, fake_predictor):
    a = corrected_assessment(assessment, fake_predictor)
    store = HistoryStore(tmp_path)
    back = store.load(store.save(a))
    p, q = a.photos[0], back.photos[0]
    assert q.skin_corrected and (q.skin == p.skin).all() and q.model_skin.all()
    assert q.scores["erythema"] == pytest.approx(p.scores["erythema"], abs=0.005)
    assert q.affected_area["erythema"] == pytest.approx(p.affected_area["erythema"], abs=0.001)
    other = back.photos[1]  # never corrected, never had a mask: none comes back
    assert not other.skin_corrected and other.skin is None and other.model_skin is None


def test_visits_stored_before_masks_were_kept_still_load(tmp_path, assessment):
    """What the store wrote before this change: an npz with maps alone, JSON without the flag."""
    store = HistoryStore(tmp_path)
    visit = store.save(assessment)
    for n, photo in enumerate(assessment.photos):
        np.savez_compressed(tmp_path / "images" / str(visit) / f"{n}.npz", maps=photo.maps.astype(np.float16))
    data = assessment.to_dict()
    for p in data["photos"]:
        del p["skin_corrected"]
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE visits SET assessment_json = ? WHERE id = ?", (json.dumps(data), visit))
    back = store.load(visit)
    assert [p.skin_corrected for p in back.photos] == [False, False]
    assert back.photos[0].skin is None and back.photos[0].maps.shape == assessment.photos[0].maps.shape


def test_exports_say_the_clinician_corrected_the_mask(tmp_path, assessment, fake_predictor):
    a = corrected_assessment(assessment, fake_predictor)
    rows = [r for r in csv.DictReader(io.StringIO(report.to_csv(a))) if r["record"] == "sign"]
    assert {r["skin_mask"] for r in rows if r["photo"] == "photo_0.jpg"} == {"clinician"}
    assert {r["skin_mask"] for r in rows if r["photo"] == "photo_1.jpg"} == {"model"}
    data = json.loads(report.to_json(a))
    assert [p["skin_corrected"] for p in data["photos"]] == [True, False]
    assert [p.skin_corrected for p in report.assessment_from_json(report.to_json(a)).photos] == [True, False]
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(report.to_pdf(a))
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed: text content not checked")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert flat.count("Skin mask corrected by the clinician:") == 1  # beside the photo's overlays
    assert flat.count("skin mask corrected by the clinician") == 4  # its 4 sign rows in the table
