"""Exports: CSV parses back, JSON round-trips, the PDF is a PDF naming the patient."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess

import pytest

from dashboard.assessment import DISCLAIMER, SYNTHETIC_NOTICE, Assessment
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
    with pytest.raises(ValueError, match="age is needed for EASI"):  # the model allows unknown
        Assessment("PT-1", dt.date(2026, 1, 1), None, "F", "trunk")
    with pytest.raises(ValueError, match="sex must be F or M"):  # the model's sex rule
        Assessment("PT-1", dt.date(2026, 1, 1), 30, "X", "trunk")
    with pytest.raises(ValueError, match="allowed: head_neck"):
        Assessment("PT-1", dt.date(2026, 1, 1), 30, "F", "feet")
    assert Assessment("PT-1", "2026-01-02", 30, "unknown", "trunk").sex is None
    assert a.mean_scores()["erythema"] > a.mean_scores()["lichenification"]
