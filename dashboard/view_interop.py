"""The page's clinical-systems parts (widgets only): what uploaded DICOM headers say about
the patient, for the clinician to confirm, and the FHIR bundle and DICOM overlay downloads.
The logic is in dashboard/interop.py."""

from __future__ import annotations

import functools

import streamlit as st

from dashboard import interop
from dashboard.easi import REGION_LABELS
from dashboard.report import file_name


def remember_headers(files: list[tuple[str, bytes]], age, sex, region) -> None:
    """After scoring: keep what the DICOM uploads' headers say (shown by `dicom_header_notes`)."""
    st.session_state.dicom_notes = interop.header_notes(dict(files), age, sex, region)


def _use_header(note: dict) -> None:
    """The clinician's choice: put the header's values into the form (scored on the next press)."""
    s = st.session_state
    if note["age"] is not None:
        s.age = float(note["age"])
    if note["sex"]:
        s.sex = note["sex"]
    if note["region"]:
        s.region = note["region"]
    s.dicom_notes = []


def dicom_header_notes() -> None:
    """One note per DICOM upload whose header has an age, sex or body part: the scores use what
    the clinician entered; a button copies the header's values into the form."""
    s = st.session_state
    for i, note in enumerate(s.get("dicom_notes") or []):
        entered = (f"age {'unknown' if s.get('age') is None else f'{s.age:g}'}, sex {s.get('sex') or 'unknown'}, "
                   f"region {REGION_LABELS.get(s.get('region'), 'unknown').lower()}")  # fmt: skip
        text = f"**{note['name']}**: the DICOM header says {note['summary']}. Scored with what you entered ({entered})."
        if not note["differs"]:
            st.caption(text + " The header agrees.")
            continue
        st.info(text + " Differs: " + ", ".join(note["differs"]) + ".", icon="🩻")
        st.button("Use the header's values (then score again)", key=f"dicom_use_{i}",
                  on_click=_use_header, args=(note,))  # fmt: skip


def clinical_exports(a, disabled: bool = False, logged=None) -> None:
    """The FHIR bundle (R5 or R4B; preliminary until confirmed) and the DICOM overlays.

    disabled: the user may not export; logged(fmt) -> the download buttons' on_click keyword
    arguments (the page's audit trail), by default none."""
    extra = logged or (lambda fmt: {"on_click": "ignore"})
    s = st.session_state
    sources = s.get("photo_sources", {})
    c = st.columns([1.2, 1, 1, 1.2, 1.2])
    confirmed = c[0].checkbox("I confirm these scores", key="fhir_confirmed",
                              help="The FHIR report's status: final when confirmed, else preliminary.")  # fmt: skip
    embed = c[1].checkbox("Embed photos", key="fhir_embed", help="Put each photo's pixels in the FHIR "
                          "bundle, as a JPEG without metadata (otherwise referenced by name and hash).")  # fmt: skip
    version = c[2].selectbox("FHIR version", ("R5", "R4B"), key="fhir_version")
    c[3].download_button(
        "FHIR bundle", functools.partial(interop.to_fhir, a, sources, embed_photos=embed, confirmed=confirmed,
                                         version=version),
        file_name(a, "fhir.json"), mime="application/fhir+json", disabled=disabled, **extra("fhir"),
    )  # fmt: skip
    c[4].download_button("DICOM overlays", functools.partial(interop.dicom_overlays, a, sources),
                         interop.overlay_file_name(a), mime="application/zip", disabled=disabled,
                         **extra("dicom"),
                         help="One DICOM Secondary Capture per photo and sign; a DICOM photo's "
                              "overlays join its study.")  # fmt: skip
