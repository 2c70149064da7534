"""The local code system of dermsev's FHIR output, and the code and quantity helpers.

No standard LOINC or SNOMED CT code exists for the EASI score or its parts that we could find,
so they are codes of a local code system, CODE_SYSTEM (the whole list: `code_system()`). Its
URI is under the reserved .invalid domain (RFC 2606), which can never clash with a real one:
a site that publishes the code system replaces it. Body sites are SNOMED CT, age and sex LOINC,
units UCUM.
"""

from __future__ import annotations

from collections.abc import Mapping

CODE_SYSTEM = "https://dermsev.invalid/fhir/CodeSystem/dermsev"
PSEUDONYM_SYSTEM = "https://dermsev.invalid/fhir/NamingSystem/pseudonym"
WEIGHTS_SYSTEM = "https://dermsev.invalid/fhir/NamingSystem/model-weights-sha256"
DICOM_UID_SYSTEM = "urn:dicom:uid"
SNOMED, LOINC, UCUM = "http://snomed.info/sct", "http://loinc.org", "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
GENDER = "http://hl7.org/fhir/administrative-gender"
VERSIONS = ("R5", "R4B")
EASI_SIGNS = ("erythema", "papulation", "excoriation", "lichenification")
# SNOMED CT body structures of the four EASI regions.
REGION_SITES: dict[str, tuple[str, str]] = {
    "head_neck": ("774007", "Structure of head and/or neck"),
    "upper_limbs": ("53120007", "Upper limb structure"),
    "trunk": ("22943007", "Trunk structure"),
    "lower_limbs": ("61685007", "Lower limb structure"),
}
FIXED_CODES: dict[str, str] = {
    "skin-severity-assessment": "Skin disease severity assessment from photographs (dermsev)",
    "easi-total": "EASI total score (0-72)",
    "easi-band": "EASI severity band (Leshem et al. 2015)",
    "easi-region-score": "EASI region score",
    "easi-area-score": "EASI area score (0-6)",
    "easi-region-weight": "EASI region weight",
    **{f"easi-intensity-{s}": f"EASI {s} intensity (0-3), as checked by the clinician" for s in EASI_SIGNS},
    "photo-sign-scores": "Per-sign severity scores of one photograph (model)",
    "photo-check": "Photo check verdict (pass, warn, fail)",
    "skin-fraction": "Skin, % of the photograph",
}


def sign_codes(sign: str) -> dict[str, str]:
    """The local codes of one model sign: '<sign>-intensity' and '<sign>-affected-area'."""
    return {f"{sign}-intensity": f"{sign} severity, median over the affected skin (model)",
            f"{sign}-affected-area": f"{sign} affected area, % of the skin in the photograph (model)"}


def code_system(signs: tuple[str, ...] = EASI_SIGNS) -> dict:
    """The local code system as a FHIR CodeSystem resource (for the docs, or to publish)."""
    codes = dict(FIXED_CODES)
    for s in signs:
        codes |= sign_codes(s)
    return {"resourceType": "CodeSystem", "url": CODE_SYSTEM, "name": "DermsevCodes",
            "title": "dermsev local codes: EASI and per-photo model scores", "status": "draft",
            "content": "complete", "caseSensitive": True,
            "description": "No standard LOINC or SNOMED CT code exists for the EASI score or its parts; "
                           "these are local codes of dermsev.",
            "concept": [{"code": c, "display": d} for c, d in codes.items()]}  # fmt: skip


def concept(code: str, display: str | None = None, system: str = CODE_SYSTEM, text: str | None = None) -> dict:
    """A CodeableConcept with one coding (a local code's display from FIXED_CODES by default)."""
    coding = {"system": system, "code": code}
    if display is None and system == CODE_SYSTEM:
        display = FIXED_CODES.get(code)
    if display:
        coding["display"] = display
    out: dict = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


UCUM_CODES = {"score": "{score}", "%": "%", "years": "a", "1": "1"}


def quantity(value: float, unit: str = "score") -> dict:
    """A Quantity in UCUM: unit "score" ({score}), "%", "years" (a) or "1" (a pure number)."""
    return {"value": value, "unit": unit, "system": UCUM, "code": UCUM_CODES[unit]}


def coded(concept: Mapping | None, system: str = CODE_SYSTEM) -> str | None:
    """The code of `system` in a CodeableConcept, or None."""
    for c in (concept or {}).get("coding", []):
        if c.get("system") == system:
            return c.get("code")
    return None
