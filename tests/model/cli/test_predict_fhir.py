"""`dermsev predict` with DICOM photos in and a FHIR Bundle out (--out FILE.fhir.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.cli import main
from model.scoring import fhir
from tests.dicom_files import ct_bytes, dicom_bytes


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A skin-toned DICOM photo whose header has an age, sex and body part, and a PNG."""
    rng = np.random.default_rng(0)
    skin = np.clip(np.float32([224, 172, 150]) + rng.normal(0, 6, (96, 128, 3)), 0, 255).astype(np.uint8)
    (tmp_path / "arm.dcm").write_bytes(dicom_bytes(skin, PatientAge="045Y", PatientSex="F", BodyPartExamined="ARM"))
    Image.fromarray(skin[::-1]).save(tmp_path / "back.png")
    (tmp_path / "ct.dcm").write_bytes(ct_bytes())
    return {"dcm": tmp_path / "arm.dcm", "png": tmp_path / "back.png", "ct": tmp_path / "ct.dcm", "root": tmp_path}


def test_fhir_bundle_round_trips_the_json_scores(files, tiny_model_dir, capsys):
    root, model = files["root"], str(tiny_model_dir)
    images = [str(files["dcm"]), str(files["png"])]
    assert main(["predict", model, *images, "--out", str(root / "s.json")]) == 0
    assert main(["predict", model, *images, "--out", str(root / "s.fhir.json"), "--pseudonym", "PT-7"]) == 0
    err = capsys.readouterr().err
    assert "arm.dcm: the DICOM header says age 45 years, sex F, body part ARM; scored with --age unknown, " \
           "--sex unknown (the header is not used)" in err
    plain = json.loads((root / "s.json").read_text())
    bundle = json.loads((root / "s.fhir.json").read_text())
    fhir.check(bundle, "R5")
    back = fhir.read(bundle)
    assert back["pseudonym"] == "PT-7" and back["status"] == "preliminary" and back["easi"] is None
    assert back["device"]["weights_sha256"] and len(back["device"]["weights_sha256"]) == 64
    assert plain["age"] is None  # the header's age was not used
    for row in plain["images"]:
        got = back["photos"][row["image"]]
        for sign in ("erythema", "papulation", "excoriation", "lichenification"):
            assert got[sign]["score"] == row[f"score_{sign}"]
            assert got[sign]["affected_area_pct"] == pytest.approx(100 * row[f"area_{sign}"], abs=0.01)
    docs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    dicom_doc = [d for d in docs if d["content"][0]["attachment"]["contentType"] == "application/dicom"][0]
    assert dicom_doc["identifier"][0]["value"].startswith("urn:oid:")
    assert all("data" not in d["content"][0]["attachment"] for d in docs)  # referenced, not embedded
    assert "Doe" not in (root / "s.fhir.json").read_text()  # the header's patient name never travels


def test_fhir_r4b_on_request(files, tiny_model_dir):
    out = files["root"] / "r4b.fhir.json"
    assert main(["predict", str(tiny_model_dir), str(files["dcm"]), "--out", str(out), "--fhir-version", "R4B"]) == 0
    bundle = json.loads(out.read_text())
    fhir.check(bundle, "R4B")
    with pytest.raises(ValueError, match=r"^not a valid FHIR R5 Bundle: .*deviceName"):
        fhir.check(bundle, "R5")


def test_a_ct_is_refused_in_one_line_naming_the_file(files, tiny_model_dir, capsys):
    assert main(["predict", str(tiny_model_dir), str(files["ct"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dermsev predict: error: {files['ct']}: a DICOM CT Image Storage (CT), not a photograph")
    assert "\n" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--pseudonym", "PT-1"], "--pseudonym and --fhir-version are for --out FILE.fhir.json"),
    (["--out", "x.fhir.json", "--pseudonym", "Jane Doe"], "--pseudonym 'Jane Doe': a code of 1-64 letters"),
])  # fmt: skip
def test_ill_args(files, tiny_model_dir, capsys, args, message):
    assert main(["predict", str(tiny_model_dir), str(files["png"]), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_dicom_photo_scores_as_the_same_pixels_in_a_png(tmp_path, tiny_model_dir):
    """DICOM is only a container: uncompressed DICOM and PNG of the same pixels score the same."""
    from model.inference import load_model

    rng = np.random.default_rng(3)
    skin = np.clip(np.float32([210, 150, 130]) + rng.normal(0, 8, (80, 112, 3)), 0, 255).astype(np.uint8)
    (tmp_path / "p.dcm").write_bytes(dicom_bytes(skin))
    Image.fromarray(skin).save(tmp_path / "p.png")
    predictor = load_model(tiny_model_dir, backend="torch-fp32")
    a, b = (predictor.predict(str(tmp_path / n), white_balance="none") for n in ("p.dcm", "p.png"))
    assert a.scores == b.scores and a.affected_area == b.affected_area and a.check == b.check
    assert np.array_equal(a.maps, b.maps)
