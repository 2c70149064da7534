"""An assessment as a FHIR Bundle (R5 by default, R4B on request), and read back.

The input is an assessment as plain data, the dashboard's `Assessment.to_dict()` layout
(`dermsev predict` builds the same layout without EASI): pseudonym, visit_date, age, sex,
signs, max_score, photos (name, region, signs {sign: score, label, affected_area_pct}, check)
and easi (total, band, regions {region: intensities, area, weight, score}) or None.

The Bundle (type "collection") holds, in order:
- DiagnosticReport: status "preliminary" until a clinician confirms (then "final"), the PDF
  report as presentedForm when given, conclusion "EASI 12.3 (moderate)", every Observation
  as a result;
- Device: the model (name, version; the SHA-256 of its weights as an identifier; a demo model's
  synthetic-data notice as a note), referenced by every model Observation;
- Observations: the patient's age (LOINC 30525-0) and sex (LOINC 46098-0) as entered; the
  EASI total, whose *members* are one Observation per region (SNOMED CT body site) with the
  area score, weight and the four intensities as *components*; one Observation per photo,
  with each sign's intensity and affected area (and the photo check) as *components*;
- DocumentReference per photo (title, content type, SHA-1 hash; DICOM photos carry their SOP
  Instance UID as an identifier), referenced by the photo's Observation (derivedFrom); the
  photo itself only when the caller puts it in (`photos[name]["data"]`).

The patient is never a resource: every subject is a logical reference by identifier (the
pseudonym, `pseudonym_system`), no name, no birth date. No standard LOINC or SNOMED CT code
exists for the EASI score or its parts that we could find, so they are codes of a local code
system (model/scoring/fhir_codes.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import mimetypes
import uuid
from collections.abc import Mapping

from model.scoring.fhir_codes import (
    CODE_SYSTEM,
    DICOM_UID_SYSTEM,
    EASI_SIGNS,
    GENDER,
    LOINC,
    OBS_CATEGORY,
    PSEUDONYM_SYSTEM,
    REGION_SITES,
    SNOMED,
    VERSIONS,
    WEIGHTS_SYSTEM,
    code_system,
    coded,
    concept,
    quantity,
    sign_codes,
)


def _category(code: str) -> list[dict]:
    return [{"coding": [{"system": OBS_CATEGORY, "code": code}]}]


def _ref(full_url: str) -> dict:
    return {"reference": full_url}


def _attachment(content_type: str, data: bytes | None, title: str, sha1: bytes | None = None) -> dict:
    out = {"contentType": content_type, "title": title}
    if data is not None:
        out["data"] = base64.b64encode(data).decode("ascii")
    if sha1 is not None or data is not None:
        digest = sha1 if sha1 is not None else hashlib.sha1(data).digest()  # noqa: S324 (FHIR's hash is SHA-1)
        out["hash"] = base64.b64encode(digest).decode("ascii")
    return out


def _device(device: Mapping, version: str) -> dict:
    name = str(device.get("name") or "dermsev model")
    out: dict = {"resourceType": "Device"}
    if device.get("weights_sha256"):
        out["identifier"] = [{"system": WEIGHTS_SYSTEM, "value": str(device["weights_sha256"])}]
    if version == "R5":
        out["name"] = [{"value": name, "type": "user-friendly-name"}]
    else:
        out["deviceName"] = [{"name": name, "type": "user-friendly-name"}]
    if device.get("version"):
        out["version"] = [{"value": str(device["version"])}]
    notes = [str(device["description"])] if device.get("description") else []
    if device.get("synthetic"):
        notes.append("Demo model: trained on synthetic images, not for clinical use.")
    if notes:
        out["note"] = [{"text": n} for n in notes]
    return out


def bundle(
    data: Mapping,
    *,
    device: Mapping,
    photos: Mapping[str, Mapping] | None = None,
    pdf: bytes | None = None,
    confirmed: bool = False,
    version: str = "R5",
    pseudonym_system: str = PSEUDONYM_SYSTEM,
    validate: bool = True,
) -> dict:
    """The assessment `data` as a FHIR Bundle (a JSON-ready dict); see the module docstring.

    device: {name, version, weights_sha256, synthetic, description}. photos: {photo name:
    {"content_type", "sha1" (bytes), "data" (bytes: embedded), "sop_instance_uid"}}, each key
    optional. confirmed: the clinician confirmed the assessment (status final). validate:
    parse the result with fhir.resources for `version` (ValueError if it does not conform).
    """
    if version not in VERSIONS:
        raise ValueError(f"FHIR version must be one of {', '.join(VERSIONS)}, got {version!r}")
    status = "final" if confirmed else "preliminary"
    entries: list[tuple[str, dict]] = []

    def add(resource: dict) -> str:
        url = f"urn:uuid:{uuid.uuid4()}"
        entries.append((url, resource))
        return url

    pseudonym = data.get("pseudonym")
    subject = {"subject": {"identifier": {"system": pseudonym_system, "value": pseudonym}}} if pseudonym else {}
    when = {"effectiveDateTime": str(data["visit_date"])} if data.get("visit_date") else {}
    issued = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    def observation(code: dict, category: str, **fields) -> dict:
        return {"resourceType": "Observation", "status": status, "category": _category(category), "code": code,
                **subject, **when, "issued": issued, **fields}

    report = {"resourceType": "DiagnosticReport", "status": status}
    add(report)  # the first entry; filled in below
    device_url = add(_device(device, version))
    results: list[str] = []
    if data.get("age") is not None:
        results.append(add(observation(concept("30525-0", "Age", LOINC), "survey",
                                       valueQuantity=quantity(float(data["age"]), "years"))))
    if data.get("sex") in ("F", "M"):
        gender = {"F": "female", "M": "male"}[data["sex"]]
        results.append(add(observation(concept("46098-0", "Sex", LOINC), "survey",
                                       valueCodeableConcept=concept(gender, gender.capitalize(), GENDER))))
    easi = data.get("easi")
    if easi:
        members = []
        for region, r in easi["regions"].items():
            site, name = REGION_SITES[region]
            comps = [{"code": concept("easi-area-score"), "valueInteger": int(r["area"])},
                     {"code": concept("easi-region-weight"), "valueQuantity": quantity(float(r["weight"]), "1")}]
            comps += [{"code": concept(f"easi-intensity-{s}"), "valueQuantity": quantity(float(v))}
                      for s, v in r["intensities"].items()]
            members.append(add(observation(concept("easi-region-score"), "exam", bodySite=concept(site, name, SNOMED),
                                           valueQuantity=quantity(float(r["score"])), component=comps)))
        total = observation(concept("easi-total"), "exam", valueQuantity=quantity(float(easi["total"])),
                            interpretation=[{"text": str(easi["band"])}],
                            hasMember=[_ref(u) for u in members],
                            component=[{"code": concept("easi-band"), "valueString": str(easi["band"])}])
        if easi.get("age") is None:
            total["note"] = [{"text": "Age unknown: region weights for 8 years and over."}]
        results += [add(total), *members]
    for photo in data.get("photos", []):
        results.append(_photo(photo, observation, add, device_url, (photos or {}).get(photo["name"], {}), subject))
    report |= {"code": concept("skin-severity-assessment"), **subject, **when, "issued": issued,
               "result": [_ref(u) for u in results]}
    if easi:
        report["conclusion"] = f"EASI {float(easi['total']):.1f} ({easi['band']})"
    if pdf is not None:
        report["presentedForm"] = [_attachment("application/pdf", pdf, "dermsev report (PDF)")]
    out = {"resourceType": "Bundle", "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
           "type": "collection", "timestamp": issued,
           "entry": [{"fullUrl": url, "resource": res} for url, res in entries]}  # fmt: skip
    if validate:
        check(out, version)
    return out


def _photo(photo: Mapping, observation, add, device_url: str, ref: Mapping, subject: dict) -> str:
    """One photo: its DocumentReference and its Observation (components per sign); the latter's URL."""
    doc: dict = {"resourceType": "DocumentReference", "status": "current", **subject,
                 "description": f"Photograph {photo['name']}",
                 "content": [{"attachment": _attachment(ref.get("content_type", "application/octet-stream"),
                                                         ref.get("data"), photo["name"], ref.get("sha1"))}]}  # fmt: skip
    if ref.get("sop_instance_uid"):
        doc["identifier"] = [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{ref['sop_instance_uid']}"}]
    doc_url = add(doc)
    check = photo.get("check") or {}
    comps = []
    for sign, s in photo["signs"].items():
        intensity = {"code": concept(f"{sign}-intensity", sign_codes(sign)[f"{sign}-intensity"]),
                     "valueQuantity": quantity(float(s["score"]))}
        if s.get("label"):  # None: withheld (a failed photo not confirmed by the clinician)
            intensity["interpretation"] = [{"text": s["label"]}]
        comps += [intensity, {"code": concept(f"{sign}-affected-area", sign_codes(sign)[f"{sign}-affected-area"]),
                              "valueQuantity": quantity(float(s["affected_area_pct"]), "%")}]
    notes = []
    if check.get("verdict"):
        comps.append({"code": concept("photo-check"), "valueString": check["verdict"]})
        notes += list(check.get("reasons") or [])
        if check["verdict"] == "fail" and not check.get("confirmed"):
            notes.append("Photo check failed: labels withheld, not confirmed by the clinician.")
    if check.get("skin_pct") is not None:
        comps.append({"code": concept("skin-fraction"), "valueQuantity": quantity(float(check["skin_pct"]), "%")})
    if photo.get("skin_corrected"):
        notes.append("Skin mask corrected by the clinician: scores and affected area are taken over it.")
    fields: dict = {"device": _ref(device_url), "derivedFrom": [_ref(doc_url)], "component": comps}
    if photo.get("region") in REGION_SITES:
        fields["bodySite"] = concept(*REGION_SITES[photo["region"]], SNOMED)
    if notes:
        fields["note"] = [{"text": n} for n in notes]
    return add(observation(concept("photo-sign-scores", text=f"Severity scores of {photo['name']}"), "imaging", **fields))


def photo_refs(sources: Mapping[str, bytes]) -> dict[str, dict]:
    """`bundle`'s photos argument from the files {name: bytes}: content type, SHA-1, the SOP
    Instance UID of a DICOM photo; never the bytes (a DICOM header names the patient, EXIF may
    hold GPS: a caller that embeds a photo puts in its pixels alone)."""
    from model.data.dicom import is_dicom, read_header
    from model.errors import DermsevError

    out = {}
    for name, data in sources.items():
        dicom = is_dicom(data)
        ref = {"content_type": "application/dicom" if dicom else (mimetypes.guess_type(name)[0]
                                                                  or "application/octet-stream"),
               "sha1": hashlib.sha1(data).digest()}  # noqa: S324 (FHIR Attachment.hash is SHA-1)
        if dicom:
            try:
                ref["sop_instance_uid"] = read_header(data, name).sop_instance_uid
            except DermsevError:
                pass  # scoring reports the file
        out[name] = ref
    return out


def check(data: Mapping, version: str = "R5") -> None:
    """Parse a Bundle with fhir.resources (structure, types, cardinality: not value sets);
    ValueError naming the first problems if it does not conform to `version`."""
    if version not in VERSIONS:
        raise ValueError(f"FHIR version must be one of {', '.join(VERSIONS)}, got {version!r}")
    if version == "R5":
        from fhir.resources.bundle import Bundle
    else:
        from fhir.resources.R4B.bundle import Bundle
    try:
        Bundle.model_validate(dict(data))
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        detail = ("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors()[:5])
                  if callable(errors) else str(exc).split("\n")[0])
        raise ValueError(f"not a valid FHIR {version} Bundle: {detail}") from None


def read(data: Mapping) -> dict:
    """What a Bundle from `bundle` says, back as plain numbers (for round trips and importers):
    {"status", "pseudonym", "device": {name, version, weights_sha256}, "photos": {name: {sign:
    {"score", "affected_area_pct", "label"}}}, "easi": {"total", "band", "regions": {region:
    {"score", "area", "intensities"}}} or None}."""
    resources = {e["fullUrl"]: e["resource"] for e in data.get("entry", [])}
    out: dict = {"status": None, "pseudonym": None, "device": {}, "photos": {}, "easi": None}
    sites = {code: region for region, (code, _) in REGION_SITES.items()}
    docs = {url: r for url, r in resources.items() if r["resourceType"] == "DocumentReference"}
    for r in resources.values():
        kind = r["resourceType"]
        if kind == "DiagnosticReport":
            out["status"] = r["status"]
            out["pseudonym"] = r.get("subject", {}).get("identifier", {}).get("value")
        elif kind == "Device":
            names = r.get("name") or [{"value": n["name"]} for n in r.get("deviceName", [])]
            out["device"] = {"name": names[0]["value"] if names else None,
                             "version": (r.get("version") or [{}])[0].get("value"),
                             "weights_sha256": next((i["value"] for i in r.get("identifier", [])
                                                     if i.get("system") == WEIGHTS_SYSTEM), None)}  # fmt: skip
    for r in resources.values():
        code = coded(r.get("code")) if r["resourceType"] == "Observation" else None
        comps = {coded(c["code"]): c for c in r.get("component", [])}
        if code == "easi-total":
            out["easi"] = {"total": r["valueQuantity"]["value"], "band": comps["easi-band"]["valueString"],
                           "regions": {}}
            for member in r.get("hasMember", []):
                m = resources[member["reference"]]
                mc = {coded(c["code"]): c for c in m.get("component", [])}
                region = sites[coded(m["bodySite"], SNOMED)]
                out["easi"]["regions"][region] = {
                    "score": m["valueQuantity"]["value"], "area": mc["easi-area-score"]["valueInteger"],
                    "intensities": {s: mc[f"easi-intensity-{s}"]["valueQuantity"]["value"]
                                    for s in EASI_SIGNS if f"easi-intensity-{s}" in mc}}  # fmt: skip
        elif code == "photo-sign-scores":
            doc = docs[r["derivedFrom"][0]["reference"]]
            name = doc["content"][0]["attachment"]["title"]
            signs = {}
            for c, comp in comps.items():
                if c and c.endswith("-intensity"):
                    sign = c[: -len("-intensity")]
                    signs[sign] = {"score": comp["valueQuantity"]["value"],
                                   "affected_area_pct": comps[f"{sign}-affected-area"]["valueQuantity"]["value"],
                                   "label": (comp.get("interpretation") or [{}])[0].get("text")}  # fmt: skip
            out["photos"][name] = signs
    return out


__all__ = ["CODE_SYSTEM", "EASI_SIGNS", "PSEUDONYM_SYSTEM", "REGION_SITES", "VERSIONS", "WEIGHTS_SYSTEM", "bundle",
           "check", "code_system", "photo_refs", "read"]
