"""The page's clinical exports: the FHIR bundle, DICOM overlays, DICOM header notes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image

from dashboard.figures import overlay_png
from dashboard.interop import dicom_overlays, from_fhir, header_notes, region_of, to_fhir
from model.scoring import fhir
from tests.dicom_files import dicom_bytes, photo


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_fhir_bundle_reads_back_to_the_assessments_numbers(assessment, version):
    text = to_fhir(assessment, version=version)
    fhir.check(json.loads(text), version)
    back = from_fhir(text)
    d = assessment.to_dict()
    assert back["status"] == "preliminary" and back["pseudonym"] == "PT-0001"
    for p in d["photos"]:
        assert {s: (v["score"], v["affected_area_pct"], v["label"]) for s, v in back["photos"][p["name"]].items()} \
            == {s: (v["score"], v["affected_area_pct"], v["label"]) for s, v in p["signs"].items()}
    assert back["easi"]["total"] == d["easi"]["total"] == 4.7 and back["easi"]["band"] == "mild"
    assert back["easi"]["regions"]["trunk"]["intensities"] == d["easi"]["regions"]["trunk"]["intensities"]
    assert back["device"]["name"] == "dermsev-demo"


def test_fhir_pdf_attached_confirmed_final_photos_embedded_only_when_asked(assessment):
    sources = {"photo_0.jpg": b"JPEGBYTES", "photo_1.jpg": b"OTHER"}
    bundle = json.loads(to_fhir(assessment, sources, confirmed=True))
    report = bundle["entry"][0]["resource"]
    assert report["status"] == "final"
    assert base64.b64decode(report["presentedForm"][0]["data"]).startswith(b"%PDF")
    docs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert [d["content"][0]["attachment"]["contentType"] for d in docs] == ["image/jpeg", "image/jpeg"]
    assert all("data" not in d["content"][0]["attachment"] for d in docs)
    embedded = json.loads(to_fhir(assessment, sources, pdf=False, embed_photos=True))
    assert "presentedForm" not in embedded["entry"][0]["resource"]
    attached = [e["resource"]["content"][0]["attachment"] for e in embedded["entry"]
                if e["resource"]["resourceType"] == "DocumentReference"]
    for att, p in zip(attached, assessment.photos, strict=True):  # the page's pixels, re-encoded
        data = base64.b64decode(att["data"])
        assert att["contentType"] == "image/jpeg" and att["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
        pixels = np.asarray(Image.open(io.BytesIO(data)))
        assert pixels.shape == p.image.shape and np.abs(pixels.astype(int) - p.image).mean() < 8  # JPEG of a noisy photo


def test_embedded_dicom_photo_carries_no_header(assessment):
    source = dicom_bytes(photo(), PatientName="Doe^Jane", PatientID="HOSP-123")
    assessment.photos[0].name = "arm.dcm"
    text = to_fhir(assessment, {"arm.dcm": source}, pdf=False, embed_photos=True)
    docs = [e["resource"] for e in json.loads(text)["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    data = base64.b64decode(docs[0]["content"][0]["attachment"]["data"])
    assert data[:2] == b"\xff\xd8" and b"Doe" not in data and b"HOSP-123" not in data
    assert docs[0]["identifier"][0]["value"].startswith("urn:oid:")  # still referenced by its UID
    assert "Doe" not in text and "HOSP-123" not in text


def test_dicom_overlays_round_trip(assessment):
    """One series per photo, one Secondary Capture per sign: pixels as rendered, the source's
    study and SOP instance referenced for a DICOM photo, a new study under the pseudonym otherwise."""
    source = dicom_bytes(photo(), StudyDate="20260314")
    src = pydicom.dcmread(io.BytesIO(source))
    assessment.photos[0].name = "arm.dcm"
    zf = zipfile.ZipFile(io.BytesIO(dicom_overlays(assessment, {"arm.dcm": source})))
    names = sorted(zf.namelist())
    assert len(names) == 8 and "arm_erythema.dcm" in names and "photo_1_lichenification.dcm" in names
    first = [pydicom.dcmread(io.BytesIO(zf.read(f"arm_{s}.dcm"))) for s in assessment.signs]
    assert {d.StudyInstanceUID for d in first} == {src.StudyInstanceUID}
    assert len({d.SeriesInstanceUID for d in first}) == 1 and [d.InstanceNumber for d in first] == [1, 2, 3, 4]
    assert first[0].SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    p = assessment.photos[0]
    expected = np.asarray(overlay_png(p.image, p.maps[0], 3.0, thresholds=assessment.thresholds, opacity=0.55,
                                      max_side=max(p.image.shape[:2])).convert("RGB"))
    assert np.array_equal(first[0].pixel_array, expected)
    assert f"erythema: score {p.scores['erythema']:.2f}" in first[0].ImageComments
    other = pydicom.dcmread(io.BytesIO(zf.read("photo_1_erythema.dcm")))
    assert other.PatientID == "PT-0001" and other.StudyInstanceUID != src.StudyInstanceUID
    assert "SourceImageSequence" not in other


def test_dicom_overlays_leave_out_a_failed_unconfirmed_photo(assessment):
    assessment.photos[1].check = "fail"
    names = zipfile.ZipFile(io.BytesIO(dicom_overlays(assessment))).namelist()
    assert len(names) == 4 and all(n.startswith("photo_0_") for n in names)


def test_header_notes_say_what_differs_from_what_was_entered():
    files = {"a.dcm": dicom_bytes(PatientAge="045Y", PatientSex="F", BodyPartExamined="LEFT ARM"),
             "b.dcm": dicom_bytes(), "c.jpg": b"\xff\xd8 not dicom"}
    notes = header_notes(files, age=None, sex="F", region="trunk")
    assert notes == [{"name": "a.dcm", "summary": "age 45 years, sex F, body part LEFT ARM (upper limbs)",
                      "age": 45.0, "sex": "F", "region": "upper_limbs", "differs": ["age", "region"]}]
    assert header_notes(files, age=45.4, sex="F", region="upper_limbs")[0]["differs"] == []


@pytest.mark.parametrize(("part", "region"), [
    ("ARM", "upper_limbs"), ("HAND", "upper_limbs"), ("Upper limb", "upper_limbs"), ("HEADNECK", "head_neck"),
    ("FACE", "head_neck"), ("CHEST", "trunk"), ("ABDOMEN", "trunk"), ("LEG", "lower_limbs"),
    ("FOOT", "lower_limbs"), ("Lower limb structure", "lower_limbs"), ("SKIN", None), (None, None),
])  # fmt: skip
def test_region_of_body_part(part, region):
    assert region_of(part) == region
