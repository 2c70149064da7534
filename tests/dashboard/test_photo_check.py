"""The photo checks on the page and in what leaves it: the verdict beside each photo, a failed
photo's labels withheld until the clinician confirms, and the verdict kept by every export and
by the history."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from dashboard import report
from dashboard.assessment import Assessment, PhotoResult
from dashboard.figures import dim_outside
from dashboard.history import HistoryStore
from tests.dashboard.test_app import app, fill, png  # noqa: F401  (the page fixture)


def failed_assessment(make_assessment, make_result, confirmed: bool = False) -> Assessment:
    a = make_assessment(n_photos=2)
    bad = make_result(5)
    bad.check, bad.check_reasons, bad.skin_fraction = "fail", ("this does not look like a photo of skin",), 0.02
    a.photos[1] = PhotoResult.from_prediction("coffee.jpg", "trunk", bad)
    a.photos[1].confirmed = confirmed
    return a


def test_photo_result_keeps_the_check_and_withholds_a_failed_photos_labels(make_assessment, make_result):
    a = failed_assessment(make_assessment, make_result)
    good, bad = a.photos
    assert good.labels_shown and not bad.labels_shown and bad.failed
    d = bad.to_dict()
    assert d["check"] == {"verdict": "fail", "reasons": ["this does not look like a photo of skin"],
                          "confirmed": False, "skin_pct": 2.0}
    assert all(s["label"] is None for s in d["signs"].values())
    assert all(s["score"] == round(bad.scores[k], 2) for k, s in d["signs"].items())  # scores kept
    back = PhotoResult.from_dict(json.loads(json.dumps(d)))
    assert (back.check, back.check_reasons, back.confirmed) == ("fail", ["this does not look like a photo of skin"], False)
    assert back.skin_fraction == pytest.approx(0.02)
    # a failed photo does not count in the visit's mean until confirmed
    assert a.scored_photos == [good] and a.mean_scores() == pytest.approx(good.scores)
    bad.confirmed = True
    assert bad.to_dict()["signs"]["erythema"]["label"] == bad.labels["erythema"]
    assert len(a.scored_photos) == 2


def test_visits_saved_before_the_checks_load_without_a_verdict(assessment):
    d = assessment.photos[0].to_dict()
    d.pop("check")
    p = PhotoResult.from_dict(d)
    assert p.check is None and p.labels_shown and p.check_reasons == []


def test_csv_and_pdf_carry_the_verdict(make_assessment, make_result):
    a = failed_assessment(make_assessment, make_result)
    rows = [r for r in csv.DictReader(io.StringIO(report.to_csv(a))) if r["record"] == "sign"]
    bad = [r for r in rows if r["photo"] == "coffee.jpg"]
    good = [r for r in rows if r["photo"] != "coffee.jpg"]
    assert bad and all(r["check"] == "fail" and r["label"] == report.WITHHELD for r in bad)
    assert all("not look like a photo of skin" in r["check_reasons"] for r in bad)
    assert all(r["check"] == "pass" and r["label"] in ("none", "mild", "moderate", "severe") for r in good)
    assert report.check_line(a.photos[1]) == ("Photo check: fail - this does not look like a photo of skin "
                                              "(labels withheld: not confirmed)")
    a.photos[1].confirmed = True
    assert "confirmed by the clinician" in report.check_line(a.photos[1])
    assert report.to_pdf(a)[:5] == b"%PDF-"


def test_history_keeps_the_verdict(tmp_path, make_assessment, make_result):
    store = HistoryStore(tmp_path)
    visit = store.save(failed_assessment(make_assessment, make_result, confirmed=True))
    back = store.load(visit).photos[1]
    assert (back.check, back.confirmed, back.check_reasons) == ("fail", True, ["this does not look like a photo of skin"])


def test_dim_outside_darkens_only_outside_the_mask():
    img = np.full((4, 6, 3), 200, np.uint8)
    mask = np.ones((4, 6), bool)
    mask[:, 3:] = False
    out = dim_outside(img, mask)
    assert (out[:, :3] == 200).all() and (out[:, 3:] == 70).all()
    assert dim_outside(img, None) is img and dim_outside(img, np.ones((2, 2), bool)) is img


def test_page_withholds_a_failed_photo_until_confirmed(app):  # noqa: F811
    fill(app, [("notskin.png", png(0), "image/png"), ("dim.png", png(1), "image/png"),
               ("ok.png", png(2), "image/png")])
    errors = [e.value for e in app.error]
    assert any("Photo check failed" in e and "not look like a photo of skin" in e for e in errors)
    assert any("scores may be off" in w.value and "dark photo" in w.value for w in app.warning)
    # legend + (overlay, small multiples) for the two photos with labels; the failed one shows the photo only
    assert len(app.get("plotly_chart")) == 1 + 2 * 2
    assert len(app.dataframe) == 2
    box = app.checkbox(key="confirm_1_0")
    box.check().run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 1 + 3 * 2 and len(app.dataframe) == 3
    assert app.session_state["assessment"].photos[0].confirmed
