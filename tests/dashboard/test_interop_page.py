"""The page with DICOM uploads: scored, the header shown for confirmation (never used unasked),
FHIR bundle and DICOM overlay downloads offered."""

from __future__ import annotations

import pytest

from model.data.io import read_image
from tests.dashboard.test_app import app, fill, png  # noqa: F401  (the page fixture)
from tests.dicom_files import ct_bytes, dicom_bytes, photo


@pytest.fixture
def dicom_app(app, fake_predictor, monkeypatch):  # noqa: F811
    """The fake model decodes through the real reader (DICOM included)."""
    monkeypatch.setattr(fake_predictor, "decode", lambda image, name=None: (read_image(image, name),
                                                                             read_image(image, name).shape[:2]))
    return app


def test_dicom_upload_scored_header_shown_not_used(dicom_app):
    at = dicom_app
    arm = dicom_bytes(photo(64, 96), PatientAge="045Y", PatientSex="F", BodyPartExamined="ARM")
    fill(at, [("arm.dcm", arm, "application/dicom"), ("b.png", png(1), "image/png"),
              ("ct.dcm", ct_bytes(), "application/dicom")])  # fmt: skip
    a = at.session_state["assessment"]
    assert [p.name for p in a.photos] == ["arm.dcm", "b.png"]
    assert a.age == 41 and a.sex is None and a.region == "trunk"  # what the clinician entered
    assert any(e.value.startswith("ct.dcm: a DICOM CT Image Storage (CT), not a photograph") for e in at.error)
    note = [i.value for i in at.info if "arm.dcm" in i.value]
    assert note and "the DICOM header says age 45 years, sex F, body part ARM (upper limbs)" in note[0]
    assert "Differs: age, sex, region" in note[0]
    labels = [b.label for b in at.download_button]
    assert "FHIR bundle" in labels and "DICOM overlays" in labels
    at.button(key="dicom_use_0").click()
    at.run()
    assert not at.exception
    s = at.session_state
    assert (s["age"], s["sex"], s["region"]) == (45.0, "F", "upper_limbs")  # in the form, for the next scoring
    assert at.session_state["assessment"].age == 41  # nothing rescored behind the clinician's back
