"""The FHIR Bundle of an assessment: valid R5 and R4B, read back to the same numbers, honest status."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from model.scoring import fhir

DATA = {
    "pseudonym": "PT-0042", "visit_date": "2026-03-14", "age": 7, "sex": "M",
    "photos": [
        {"name": "arm.dcm", "region": "upper_limbs", "skin_corrected": True,
         "signs": {"erythema": {"score": 1.85, "label": "moderate", "affected_area_pct": 23.1},
                   "papulation": {"score": 0.4, "label": "none", "affected_area_pct": 0.0}},
         "check": {"verdict": "pass", "reasons": [], "confirmed": False, "skin_pct": 81.5}},
        {"name": "odd.jpg", "region": "trunk",
         "signs": {"erythema": {"score": 2.9, "label": None, "affected_area_pct": 5.0},
                   "papulation": {"score": 0.0, "label": None, "affected_area_pct": 0.0}},
         "check": {"verdict": "fail", "reasons": ["this does not look like a photo of skin"],
                   "confirmed": False, "skin_pct": 2.0}},
    ],
    "easi": {"age": 7, "total": 2.7, "band": "mild", "regions": {
        "upper_limbs": {"intensities": {"erythema": 2.0, "papulation": 0.5, "excoriation": 0.0,
                                        "lichenification": 0.0}, "area": 2, "weight": 0.2, "score": 1.0},
        "trunk": {"intensities": {"erythema": 1.0, "papulation": 1.0, "excoriation": 0.5,
                                  "lichenification": 0.5}, "area": 2, "weight": 0.3, "score": 1.8}}},
}  # fmt: skip
DEVICE = {"name": "dermsev-demo", "version": "0.1.0", "weights_sha256": "0f" * 32, "synthetic": True}


def _resources(bundle, kind):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_bundle_validates_and_reads_back_the_same_numbers(version):
    bundle = fhir.bundle(DATA, device=DEVICE, version=version)  # validate=True: fhir.resources parses it
    back = fhir.read(json.loads(json.dumps(bundle)))
    assert back["pseudonym"] == "PT-0042" and back["status"] == "preliminary"
    assert back["device"] == {"name": "dermsev-demo", "version": "0.1.0", "weights_sha256": "0f" * 32}
    for photo in DATA["photos"]:
        assert back["photos"][photo["name"]] == photo["signs"]
    assert back["easi"]["total"] == 2.7 and back["easi"]["band"] == "mild"
    for region, r in DATA["easi"]["regions"].items():
        got = back["easi"]["regions"][region]
        assert (got["score"], got["area"], got["intensities"]) == (r["score"], r["area"], r["intensities"])


def test_the_validator_can_fail():
    """fhir.resources really checks: an R4B Device (deviceName) is not R5, a missing code is not FHIR."""
    r4b = fhir.bundle(DATA, device=DEVICE, version="R4B")
    with pytest.raises(ValueError, match=r"^not a valid FHIR R5 Bundle: entry\.1\.resource\.deviceName: Extra inputs are not permitted$"):
        fhir.check(r4b, "R5")
    broken = copy.deepcopy(fhir.bundle(DATA, device=DEVICE))
    del _resources(broken, "Observation")[0]["code"]
    with pytest.raises(ValueError, match=r"^not a valid FHIR R5 Bundle: entry\.\d+\.resource\.code: Field required$"):
        fhir.check(broken, "R5")


def test_report_layout_status_and_codes():
    bundle = fhir.bundle(DATA, device=DEVICE, pdf=b"%PDF-1.4 test", confirmed=True)
    assert bundle["type"] == "collection"
    report = bundle["entry"][0]["resource"]
    assert report["resourceType"] == "DiagnosticReport" and report["status"] == "final"
    assert base64.b64decode(report["presentedForm"][0]["data"]) == b"%PDF-1.4 test"
    assert report["conclusion"] == "EASI 2.7 (mild)"
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert {r["reference"] for r in report["result"]} <= urls
    obs = _resources(bundle, "Observation")
    assert all(o["status"] == "final" for o in obs) and len(report["result"]) == len(obs)
    by_code = {o["code"]["coding"][0]["code"]: o for o in obs}
    assert by_code["30525-0"]["valueQuantity"]["value"] == 7  # age, LOINC
    assert by_code["46098-0"]["valueCodeableConcept"]["coding"][0]["code"] == "male"
    total = by_code["easi-total"]
    assert total["code"]["coding"][0]["system"] == fhir.CODE_SYSTEM and len(total["hasMember"]) == 2
    regions = [o for o in obs if o["code"]["coding"][0]["code"] == "easi-region-score"]
    assert {o["bodySite"]["coding"][0]["code"] for o in regions} == {"53120007", "22943007"}  # SNOMED CT
    units = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["code"] for c in regions[0]["component"]
             if "valueQuantity" in c}
    assert units == {"easi-region-weight": "1", **{f"easi-intensity-{s}": "{score}" for s in fhir.EASI_SIGNS}}
    photo = [o for o in obs if o["code"]["coding"][0]["code"] == "photo-sign-scores"][0]
    assert [c["valueQuantity"]["code"] for c in photo["component"][:2]] == ["{score}", "%"]
    device = _resources(bundle, "Device")[0]
    assert device["name"][0]["value"] == "dermsev-demo"
    assert "synthetic" in device["note"][0]["text"]


def test_patient_by_pseudonym_only_and_photos_not_embedded_unless_asked():
    refs = {"arm.dcm": {"content_type": "application/dicom", "data": b"PIXELS", "sop_instance_uid": "1.2.3"},
            "odd.jpg": {"content_type": "image/jpeg", "sha1": b"\x01" * 20}}
    bundle = fhir.bundle(DATA, device=DEVICE, photos=refs)
    assert not _resources(bundle, "Patient")
    subjects = [r["subject"] for e in bundle["entry"] if "subject" in (r := e["resource"])]
    assert subjects and all(s == {"identifier": {"system": fhir.PSEUDONYM_SYSTEM, "value": "PT-0042"}} for s in subjects)
    docs = {d["content"][0]["attachment"]["title"]: d for d in _resources(bundle, "DocumentReference")}
    assert docs["arm.dcm"]["identifier"][0] == {"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}
    assert base64.b64decode(docs["arm.dcm"]["content"][0]["attachment"]["data"]) == b"PIXELS"  # asked: embedded
    assert "data" not in docs["odd.jpg"]["content"][0]["attachment"]
    odd = [o for o in _resources(bundle, "Observation") if o["code"].get("text") == "Severity scores of odd.jpg"][0]
    assert "interpretation" not in odd["component"][0]  # withheld label
    assert any("labels withheld" in n["text"] for n in odd["note"])


def test_without_pseudonym_or_easi():
    data = {"visit_date": "2026-03-14", "photos": DATA["photos"][:1]}
    bundle = fhir.bundle(data, device={"name": "m"}, version="R4B")
    assert all("subject" not in e["resource"] for e in bundle["entry"])
    assert fhir.read(bundle)["easi"] is None and "conclusion" not in bundle["entry"][0]["resource"]


def test_code_system_is_valid_and_lists_the_codes():
    from fhir.resources.codesystem import CodeSystem

    cs = CodeSystem.model_validate(fhir.code_system())
    codes = {c.code for c in cs.concept}
    assert {"easi-total", "easi-region-score", "easi-intensity-erythema", "erythema-intensity",
            "lichenification-affected-area"} <= codes
    assert cs.url == fhir.CODE_SYSTEM


def test_ill_args():
    with pytest.raises(ValueError, match=r"FHIR version must be one of R5, R4B, got 'R4'"):
        fhir.bundle(DATA, device=DEVICE, version="R4")
    with pytest.raises(ValueError, match=r"FHIR version must be one of R5, R4B, got 'STU3'"):
        fhir.check({}, "STU3")
