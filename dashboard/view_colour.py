"""The page's white-balance widgets: the choice in the patient form, the neutral-patch picker.

Logic (choices, the picker figure, the re-score): dashboard/colour.py.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from dashboard import colour
from dashboard.assessment import Assessment, PhotoResult
from model.errors import DermsevError

log = logging.getLogger(__name__)
_PATCHES = "neutral_patches"  # session key: {photo key: the (x0, y0, x1, y1) box scored with}


def white_balance_choice(container: Any = st) -> None:
    """The "White balance" select box (inside the patient form); its value: session key white_balance."""
    container.selectbox(
        "White balance", list(colour.CHOICES), key="white_balance", format_func=colour.CHOICES.get,
        help="Phones and lamps tint photos, and redness is read from colour. Grey-world moves the "
             "photo's colour towards that of the photos the model learnt from, removing warm or "
             "cool light; a neutral patch (a grey card or white paper in the photo) is the most "
             "faithful when there is one. A model trained with exposure normalisation also has each "
             "photo's brightness brought to that of its training photos (except with none).",
    )  # fmt: skip


def neutral_patch(predictor: Any, a: Assessment, i: int, photo: PhotoResult, k: str) -> PhotoResult:
    """With "neutral patch" chosen: the picker under the photo; a new box re-scores the photo
    (a.photos[i] is replaced). Returns the photo to show."""
    s = st.session_state
    if s.get("white_balance") != "patch":
        return photo
    patches = s.setdefault(_PATCHES, {})
    picked = patches.get(k)
    with st.expander("White balance: neutral patch" + (" (picked)" if picked else ""), expanded=picked is None):
        if picked is None:
            st.caption(f"Scored with {colour.FIRST_PASS} until you drag a box over something that should "
                       "be neutral grey or white (a grey card, paper).")  # fmt: skip
        event = st.plotly_chart(colour.picker_figure(photo.image, box=picked), key=f"patch_{k}",
                                on_select="rerun", selection_mode="box", config={"displaylogo": False})  # fmt: skip
        box = colour.box_from_selection(getattr(event, "selection", None), photo.image.shape)
        if box is None or box == picked:
            if picked:
                st.caption(f"Balanced on the box x {picked[0]}-{picked[2]}, y {picked[1]}-{picked[3]} px.")
            return photo
        data = s.get("photo_sources", {}).get(photo.name)
        if data is None:
            st.error("The photo's file is no longer in this session: upload and score it again.")
            return photo
        try:
            new = colour.rescore_with_patch(predictor, data, photo, box, age=a.age, sex=a.sex, tta=bool(s.get("tta")))
        except (DermsevError, ValueError) as exc:
            st.error(f"This patch cannot balance the photo: {exc}")
            return photo
        except Exception as exc:  # never lose the page over one re-score
            log.exception("re-scoring %s with a neutral patch failed", photo.name)
            st.error(f"Could not re-score the photo ({exc.__class__.__name__}).")
            return photo
        patches[k] = box
        a.photos[i] = new
        st.caption(f"Balanced on the box x {box[0]}-{box[2]}, y {box[1]}-{box[3]} px: scores updated.")
        return new
