"""Exports: CSV parses back, JSON round-trips, the PDF is a PDF naming the patient."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from dashboard.assessment import DISCLAIMER, SYNTHETIC_NOTICE, Assessment
from dashboard.easi import compute_easi
from dashboard.report import (
    CSV_COLUMNS,
    assessment_from_json,
    file_name,
    safe_name,
    to_csv,
    to_json,
    to_pdf,
)


def _rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_values(assessment):
    rows = _rows(to_csv(assessment))
    assert list(rows[0]) == CSV_COLUMNS
    signs = [r for r in rows if r["record"] == "sign"]
    assert len(signs) == 2 * 4
    photo = assessment.photos[0]
    first = signs[0]
    assert first["pseudonym"] == "PT-0001" and first["visit_date"] == "2026-03-14"
    assert first["age"] == "34" and first["sex"] == "F" and first["region"] == "trunk"
    assert first["photo"] == "photo_0.jpg" and first["sign"] == "erythema"
    assert first["score"] == f"{photo.scores['erythema']:.2f}"
    assert first["label"] == photo.labels["erythema"]
    assert float(first["affected_area_pct"]) == pytest.approx(
        100 * photo.affected_area["erythema"], abs=0.05
    )
    assert first["uncertainty_low"] == "0.00" and first["uncertainty_high"] == "0.40"
    assert signs[4]["uncertainty_low"] == ""  # the second photo had no TTA
    assert first["model_name"] == "dermsev-demo" and first["model_version"] == "0.1.0"


def test_csv_easi_rows(assessment):
    rows = _rows(to_csv(assessment))
    total = [r for r in rows if r["record"] == "easi_total"]
    # trunk 5 x 3 x 0.3 = 4.5, head 2 x 1 x 0.1 = 0.2
    assert [(r["score"], r["label"]) for r in total] == [("4.70", "mild")]
    regions = {r["region"]: r for r in rows if r["record"] == "easi_region"}
    assert regions["trunk"]["score"] == "4.50" and regions["trunk"]["area_score"] == "3"
    assert regions["head_neck"]["score"] == "0.20"
    intensities = [r for r in rows if r["record"] == "easi_intensity" and r["region"] == "trunk"]
    assert [r["score"] for r in intensities] == ["2.00", "1.50", "1.00", "0.50"]
    notices = [r["label"] for r in rows if r["record"] == "notice"]
    assert notices == [DISCLAIMER, SYNTHETIC_NOTICE]


def test_csv_without_easi_and_real_model(make_assessment):
    rows = _rows(to_csv(make_assessment(with_easi=False, synthetic=False)))
    assert not [r for r in rows if r["record"].startswith("easi")]
    assert [r["label"] for r in rows if r["record"] == "notice"] == [DISCLAIMER]


def test_json_round_trip(assessment):
    text = to_json(assessment)
    data = json.loads(text)
    assert data["pseudonym"] == "PT-0001" and data["visit_date"] == "2026-03-14"
    assert data["model"] == {"name": "dermsev-demo", "version": "0.1.0", "synthetic": True}
    assert data["easi"]["total"] == 4.7 and data["easi"]["band"] == "mild"
    assert "Not a medical device" in data["disclaimer"]
    assert "synthetic" in data["disclaimer"]
    sign = data["photos"][0]["signs"]["erythema"]
    assert set(sign) == {"score", "label", "affected_area_pct", "uncertainty"}
    back = assessment_from_json(text)
    assert isinstance(back, Assessment)
    again = json.loads(to_json(back))
    data.pop("exported_at"), again.pop("exported_at")
    assert again == data
    assert back.easi == assessment.easi


def test_json_rejects_other_files():
    with pytest.raises(ValueError, match="not a dermsev assessment"):
        assessment_from_json('{"hello": 1}')


@pytest.mark.parametrize(
    "raw, expected",
    [("PT-0001", "PT-0001"), ("../../etc/passwd", "etc_passwd"), ("a b/c", "a_b_c"),
     (".hidden", "hidden"), ("", "patient"), ("Zoë", "Zo"), ("x" * 100, "x" * 64)],
)  # fmt: skip
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


def test_file_names(assessment):
    assert file_name(assessment, "csv") == "dermsev_PT-0001_2026-03-14.csv"
    assert file_name(assessment, ".pdf") == "dermsev_PT-0001_2026-03-14.pdf"


def test_pdf(assessment, tmp_path):
    pdf = to_pdf(assessment)
    assert pdf.startswith(b"%PDF")
    assert len(pdf) < 2_000_000
    path = tmp_path / file_name(assessment, "pdf")
    path.write_bytes(pdf)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed: text content not checked")
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "PT-0001" in text and "2026-03-14" in text
    assert "Not a medical device" in text
    assert "trained on synthetic images, not for clinical use" in text
    assert "dermsev-demo 0.1.0" in text
    assert "Total EASI 4.70" in text and "mild" in text
    assert f"{assessment.photos[0].scores['erythema']:.2f}" in text


def test_pdf_without_pixels_or_easi(make_assessment):
    a = make_assessment(with_easi=False, synthetic=False)
    for p in a.photos:
        p.image = p.maps = None
    pdf = to_pdf(a)
    assert pdf.startswith(b"%PDF")


def test_assessment_validation(make_assessment):
    a = make_assessment()
    with pytest.raises(ValueError, match="never the patient's name"):
        Assessment("John Smith", dt.date(2026, 1, 1), 30, "F", "trunk")
    with pytest.raises(ValueError, match="from 0 to 130"):  # the model's age rule
        Assessment("PT-1", dt.date(2026, 1, 1), 200, "F", "trunk")
    assert Assessment("PT-1", dt.date(2026, 1, 1), None, "F", "trunk").age is None  # unknown
    with pytest.raises(ValueError, match="out of range") as err:
        Assessment("PT-1", dt.date(2026, 1, 1), -3, "F", "trunk")
    assert "None" not in str(err.value)
    with pytest.raises(ValueError, match="sex must be F or M"):  # the model's sex rule
        Assessment("PT-1", dt.date(2026, 1, 1), 30, "X", "trunk")
    with pytest.raises(ValueError, match="allowed: head_neck"):
        Assessment("PT-1", dt.date(2026, 1, 1), 30, "F", "feet")
    assert Assessment("PT-1", "2026-01-02", 30, "unknown", "trunk").sex is None
    assert a.mean_scores()["erythema"] > a.mean_scores()["lichenification"]


def test_unknown_age_in_every_export(make_assessment, tmp_path):
    a = make_assessment()
    a.age = None
    a.easi = compute_easi({"head_neck": ({"erythema": 3}, 6)}, age=None)
    rows = _rows(to_csv(a))
    assert {r["age"] for r in rows} == {""}  # blank = unknown, as in manifest.csv
    back = assessment_from_json(to_json(a))
    assert back.age is None and back.easi.age_assumed and back.easi.total == pytest.approx(1.8)
    path = tmp_path / "r.pdf"
    path.write_bytes(to_pdf(a))
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "unknown" in text and "age unknown" in text and "None" not in text


def _realistic_photos(a, side=768, seed=0):
    """Display-size (768 px, as the page keeps them) skin-like photos with texture and noise,
    and smooth maps with a lesion, so JPEG and deflate work on something like real photos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    for i, p in enumerate(a.photos):
        base = np.stack([200 + 30 * np.sin(xx / (40 + i)), 150 + 20 * np.cos(yy / 55),
                         130 + 10 * np.sin((xx + yy) / 70)], -1)  # fmt: skip
        p.image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        blob = np.exp(-(((yy - side / 2) / (side / 4)) ** 2 + ((xx - side / 3) / (side / 4)) ** 2))
        p.maps = np.stack([np.clip(blob * k + rng.normal(0, 0.1, blob.shape), 0, 3)
                           for k in (3, 2, 1.2, 0.4)]).astype(np.float32)  # fmt: skip


def test_three_photo_pdf_is_compact_and_holds_every_map(make_assessment, tmp_path):
    a = make_assessment(n_photos=3)
    _realistic_photos(a)
    pdf = to_pdf(a)
    assert len(pdf) < 1_000_000, f"{len(pdf) / 1e6:.2f} MB"
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]  # fmt: skip
    kinds = [(row.split()[2], row.split()[8]) for row in listing]  # (type, encoding)
    # one photo + its band layer (with its alpha mask) per sign: 3 photos x 4 signs
    assert kinds.count(("image", "jpeg")) == 12  # the photo under each map, DCT (JPEG)
    assert kinds.count(("image", "image")) == 12 and kinds.count(("smask", "image")) == 12
    objects = {row.split()[10] for row in listing if row.split()[8] == "jpeg"}
    assert len(objects) == 3  # each photo's JPEG is stored once and drawn under its 4 maps
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    for p in a.photos:
        assert p.name in text
        for sign in a.signs:
            assert f"{sign}: {p.scores[sign]:.2f}" in text


def test_band_layer_matches_the_overlay():
    from dashboard.figures import band_layer, overlay_png

    photo = np.full((40, 60, 3), 180, np.uint8)
    sign_map = np.zeros((40, 60), np.float32)
    sign_map[:, 20:40], sign_map[:, 40:] = 1.0, 2.7  # none | mild | severe
    layer = np.asarray(band_layer(sign_map, (40, 60), opacity=0.55), dtype=np.float32)
    assert layer.shape == (40, 60, 4) and (layer[:, :20, 3] == 0).all()
    alpha = layer[..., 3:] / 255
    composed = photo * (1 - alpha) + layer[..., :3] * alpha
    overlay = np.asarray(overlay_png(photo, sign_map, opacity=0.55), dtype=np.float32)
    assert np.abs(composed - overlay).max() <= 1.5  # same colours, same bands
    assert len({tuple(v) for v in layer.reshape(-1, 4)}) == 3  # flat: one colour per band
