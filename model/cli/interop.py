"""`dermsev predict` for clinical systems: `--out FILE.fhir.json` (a FHIR Bundle) and the
notes on what DICOM headers say about the patient (shown, never used in place of --age/--sex).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from model.data.dicom import is_dicom, read_header
from model.errors import DermsevError
from model.scoring import fhir

if TYPE_CHECKING:
    from model.inference import Predictor

FHIR_SUFFIX = ".fhir.json"
# The dashboard's rule for a pseudonym (dashboard/assessment.py): a code, never a name.
PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_fhir(out: str | None) -> bool:
    return bool(out) and str(out).lower().endswith(FHIR_SUFFIX)


def check_fhir_args(out: str | None, pseudonym: str | None, version: str) -> None:
    """--pseudonym and --fhir-version belong to --out FILE.fhir.json; a pseudonym is a code."""
    if not is_fhir(out) and (pseudonym or version != "R5"):
        raise DermsevError("--pseudonym and --fhir-version are for --out FILE.fhir.json")
    if pseudonym is not None and not PSEUDONYM.match(pseudonym):
        raise DermsevError(f"--pseudonym {pseudonym!r}: a code of 1-64 letters, digits, '.', '_' or '-' "
                           "(no spaces, never the patient's name)")
    if version not in fhir.VERSIONS:
        raise DermsevError(f"--fhir-version {version!r}: must be one of {', '.join(fhir.VERSIONS)}")


def header_note(path: Path, age: float | None, sex: str | None) -> str | None:
    """'x.dcm: the DICOM header says age 45 years, sex F; scored with --age unknown, --sex
    unknown (the header is not used)' for a DICOM file whose header has any of them."""
    try:
        data = path.read_bytes()[:1 << 20] if path.is_file() else b""
        if not is_dicom(data):
            return None
        h = read_header(path, str(path))
    except (DermsevError, OSError):
        return None  # predict reports the file
    if h.age is None and h.sex is None and h.body_part is None:
        return None
    given = f"--age {'unknown' if age is None else f'{age:g}'}, --sex {sex or 'unknown'}"
    return f"{path}: the DICOM header says {h.summary}; scored with {given} (the header is not used)"


def write_fhir(out: str, predictor: Predictor, rows: list[dict], age: float | None, sex: str | None,
               pseudonym: str | None, version: str) -> None:
    """The scored rows (predict's JSON rows) as a FHIR Bundle: preliminary (no clinician has
    confirmed), no EASI (no regions or areas on the command line), photos referenced by name
    and hash."""
    photos, sources = [], {}
    for row in rows:
        if row.get("error"):
            continue
        failed = row["check"] == "fail"
        photos.append({
            "name": row["image"],
            "signs": {s: {"score": row[f"score_{s}"], "label": None if failed else row[f"label_{s}"],
                          "affected_area_pct": round(100 * row[f"area_{s}"], 2)} for s in predictor.signs},
            "check": {"verdict": row["check"], "reasons": row["check_reasons"], "confirmed": False,
                      "skin_pct": None if row["skin_fraction"] is None else round(100 * row["skin_fraction"], 2)},
        })  # fmt: skip
        sources[row["image"]] = Path(row["image"]).read_bytes()
    from model.inference import file_sha256

    info = predictor.info
    weights = predictor.model_dir / "model.safetensors"
    device = {"name": info["name"], "version": info["version"], "synthetic": info["synthetic"],
              "description": info["description"], "weights_sha256": file_sha256(weights) if weights.is_file() else None}
    data = {"pseudonym": pseudonym, "age": age, "sex": sex, "photos": photos}
    bundle = fhir.bundle(data, device=device, photos=fhir.photo_refs(sources), version=version)
    Path(out).write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n")
