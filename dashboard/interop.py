"""Clinical-system exports of an assessment: a FHIR Bundle, DICOM overlays, DICOM headers.

`to_fhir(assessment)` is the "FHIR bundle" download (the Bundle's layout and codes:
model/scoring/fhir.py); `dicom_overlays(assessment, sources)` is the "DICOM overlays"
download: one Secondary Capture per photo and sign, in one series per photo, joined to the
source photo's study when it was a DICOM file. `header_notes` reads what uploaded DICOM
headers say about the patient, to show beside what the clinician entered (never used in
its place). Nothing here imports streamlit.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dashboard.assessment import Assessment
from dashboard.easi import REGION_LABELS
from dashboard.figures import overlay_png
from dashboard.history import clean_image
from dashboard.models import weights_sha256
from dashboard.report import file_name, safe_name, to_pdf
from model.errors import DermsevError
from model.inference import fhir, is_dicom, new_uid, read_header, secondary_capture

# Body Part Examined / anatomic region words -> the EASI region they lie in (first match wins).
BODY_PART_WORDS: dict[str, tuple[str, ...]] = {
    "head_neck": ("HEAD", "NECK", "HEADNECK", "FACE", "SCALP", "EAR", "NOSE", "LIP", "EYE", "CHEEK", "FOREHEAD", "CHIN"),
    "upper_limbs": ("UPPER LIMB", "UPPER EXTREMITY", "ARM", "FOREARM", "HAND", "FINGER", "THUMB", "WRIST", "ELBOW",
                    "SHOULDER", "AXILLA", "UPRLIMB", "UPR"),
    "lower_limbs": ("LOWER LIMB", "LOWER EXTREMITY", "LEG", "THIGH", "KNEE", "ANKLE", "FOOT", "TOE",
                    "HEEL", "HIP", "BUTTOCK", "LWRLIMB", "LWR"),
    "trunk": ("TRUNK", "CHEST", "THORAX", "ABDOMEN", "BACK", "BREAST", "PELVIS", "SPINE", "FLANK",
              "GROIN", "PERINEUM"),
}  # fmt: skip


def region_of(body_part: str | None) -> str | None:
    """The EASI region a DICOM body part names ("ARM" -> "upper_limbs"), or None if unclear."""
    text = (body_part or "").upper().replace("_", " ")
    for region, words in BODY_PART_WORDS.items():
        if any(w in text.split() or (" " in w and w in text) for w in words):
            return region
    return None


def device(assessment: Assessment) -> dict:
    """The model as FHIR sees it: name, version, weights hash, synthetic flag, description."""
    m = assessment.model
    return {"name": m.get("name", ""), "version": m.get("version", ""), "synthetic": assessment.synthetic,
            "description": m.get("description", ""),
            "weights_sha256": m.get("weights_sha256") or weights_sha256(m.get("model_dir"))}  # fmt: skip


def to_fhir(
    assessment: Assessment,
    sources: Mapping[str, bytes] | None = None,
    *,
    pdf: bool = True,
    embed_photos: bool = False,
    confirmed: bool = False,
    version: str = "R5",
) -> str:
    """The FHIR Bundle (JSON text) of an assessment, checked with fhir.resources.

    sources: the uploaded files {name: bytes} (referenced by name, SHA-1 and a DICOM photo's
    SOP Instance UID); embed_photos: put each photo in, re-encoded as JPEG from the page's
    pixels (longest side 768 px) without any metadata; pdf: attach the PDF report as the DiagnosticReport's presentedForm;
    confirmed: the clinician confirmed the scores (status final, else preliminary).
    """
    refs = fhir.photo_refs({p.name: sources[p.name] for p in assessment.photos if p.name in (sources or {})})
    if embed_photos:  # the pixels alone, as JPEG: a DICOM header (names) or EXIF (GPS) never travels
        for p in assessment.photos:
            if isinstance(p.image, np.ndarray):
                ref = refs.setdefault(p.name, {})
                ref.pop("sha1", None)  # the hash is then the embedded JPEG's
                ref |= {"content_type": "image/jpeg", "data": clean_image(p.image)}
    bundle = fhir.bundle(assessment.to_dict(), device=device(assessment), photos=refs,
                         pdf=to_pdf(assessment) if pdf else None, confirmed=confirmed, version=version)  # fmt: skip
    return json.dumps(bundle, indent=2, ensure_ascii=False)


def from_fhir(text: str | bytes) -> dict:
    """A Bundle from `to_fhir` back to numbers (model/scoring/fhir.py `read`)."""
    return fhir.read(json.loads(text))


def dicom_overlays(assessment: Assessment, sources: Mapping[str, bytes] | None = None,
                   opacity: float = 0.55) -> bytes:
    """A zip of DICOM Secondary Captures: per photo (labels shown, maps kept) one series with
    one overlay per sign, at the page's preview size; a DICOM photo's overlays join its study
    and reference it, others form a new study under the pseudonym."""
    a, sources = assessment, sources or {}
    buf = io.BytesIO()
    model = f"{a.model.get('name', '')} {a.model.get('version', '')}".strip()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for j, photo in enumerate(a.photos):
            if not photo.labels_shown or photo.maps is None or not isinstance(photo.image, np.ndarray):
                continue
            data = sources.get(photo.name)
            source = data if data is not None and is_dicom(data) else None
            series = new_uid()  # every sign of this photo in one series
            for i, sign in enumerate(a.signs):
                rgb = np.asarray(overlay_png(photo.image, photo.maps[i], a.max_score, thresholds=a.thresholds,
                                             opacity=opacity, max_side=max(photo.image.shape[:2])).convert("RGB"))
                comments = (f"{sign}: score {photo.scores[sign]:.2f} ({photo.labels.get(sign, '')}), affected "
                            f"{100 * photo.affected_area[sign]:.1f} % of the skin; model {model}. "
                            "Decision support, not a diagnosis.")  # fmt: skip
                out = secondary_capture(rgb, source=source, description=f"dermsev {sign} severity overlay",
                                        comments=comments, series_uid=series, series_number=900 + j + 1,
                                        instance_number=i + 1, patient_id=a.pseudonym, software=model or "dermsev")
                zf.writestr(f"{safe_name(Path(photo.name).stem, 'photo')}_{safe_name(sign, 'sign')}.dcm", out)
    return buf.getvalue()


def overlay_file_name(assessment: Assessment) -> str:
    return file_name(assessment, "dicom.zip")


def _same(entered, header) -> bool:
    """An entered value agrees with the header's: equal, or ages less than a year apart."""
    if entered is None:
        return False
    if isinstance(header, float):
        return abs(float(entered) - header) < 1
    return entered == header


def header_notes(files: Mapping[str, bytes], age: float | None, sex: str | None, region: str) -> list[dict]:
    """For each DICOM upload whose header has an age, sex or body part: what it says and
    where that differs from what the clinician entered. [{name, summary, age, sex, region,
    differs: [field, ...]}]; the clinician's values are the ones used."""
    out = []
    for name, data in files.items():
        if not is_dicom(data):
            continue
        try:
            h = read_header(data, name)
        except DermsevError:
            continue  # scoring reports the file
        hregion = region_of(h.body_part)
        if h.age is None and h.sex is None and h.body_part is None:
            continue
        differs = [f for f, mine, theirs in (("age", age, h.age), ("sex", sex, h.sex), ("region", region, hregion))
                   if theirs is not None and not _same(mine, theirs)]
        summary = h.summary + (f" ({REGION_LABELS[hregion].lower()})" if hregion else "")
        out.append({"name": name, "summary": summary, "age": h.age, "sex": h.sex, "region": hregion,
                    "differs": differs})
    return out


__all__ = ["dicom_overlays", "from_fhir", "header_notes", "region_of", "to_fhir"]
