"""The page's "Correct the skin mask" expander: widgets and session state (logic in mask_edit).

The clinician draws a lasso (or, from the chart's tool bar, a box) on the photo; the region is
taken out of the skin mask or added to it, and the scores, labels and affected area are
recomputed over the new mask. The chart's selection callback only files the selection under
`pending_key`; `mask_editor` applies it when the page is drawn, before the photo's overlay and
score table, so they show the corrected mask in the same run. (AppTest cannot make a plotly
selection: tests file one there.) The expander's contents are drawn only while it is open.
"""

from __future__ import annotations

import functools
from typing import Any

import streamlit as st

from dashboard import mask_edit
from dashboard.figures import PLOTLY_CONFIG
from dashboard.view_explain import _cache

_CORRECTIONS = "mask_corrections"  # session key: {photo key: MaskCorrection}
MODE_LABELS = {"exclude": "Exclude from skin", "include": "Include as skin"}


def pending_key(k: str) -> str:
    """Session key of the selection waiting to be applied to photo `k` (f"{batch}_{i}")."""
    return f"mask_selection_{k}"


def open_key(k: str) -> str:
    """Session key of photo `k`'s expander: True while it is open."""
    return f"mask_open_{k}"


def _file_selection(chart_key: str, k: str) -> None:
    st.session_state[pending_key(k)] = dict(st.session_state[chart_key]["selection"])


def _apply_pending(corr: mask_edit.MaskCorrection, k: str, predictor: Any) -> str | None:
    """Apply the filed selection, if any; a sentence for the clinician when nothing changed."""
    selection = st.session_state.pop(pending_key(k), None)
    if selection is None:
        return None
    region = mask_edit.selection_region(selection, corr.mask.shape)
    if region is None:
        return "The selection covers no pixel of the photo: draw around a region."
    if st.session_state.get(f"mask_snap_{k}"):
        region = mask_edit.grabcut_region(corr.photo.image, region)
    mode = st.session_state.get(f"mask_mode_{k}", "exclude")
    if not corr.apply(region, mode, predictor):
        return "Nothing changed: the region is already so, or no skin would be left."
    return None


def mask_editor(predictor: Any, photo: Any, k: str) -> None:
    """The expander for photo `k`, shown once its labels are shown; call it before the photo's
    overlay and score table are drawn."""
    if not photo.labels_shown or photo.maps is None or photo.image is None:
        return
    store = _cache(_CORRECTIONS, k)
    if k not in store or store[k].photo is not photo:
        store[k] = mask_edit.MaskCorrection(photo)
    corr = store[k]
    note = _apply_pending(corr, k, predictor)
    # drawn only while open (a rerun on open and close): no second photo sent for every photo
    box = st.expander("Correct the skin mask", key=open_key(k), on_change="rerun")
    if not box.open:
        if photo.skin_corrected:
            st.caption("Skin mask corrected by you: the scores and areas are over your mask.")
        return
    with box:
        c = st.columns([1.3, 1.4, 1, 1.2])
        c[0].radio("Selection", list(MODE_LABELS), format_func=MODE_LABELS.get, key=f"mask_mode_{k}",
                   horizontal=True, label_visibility="collapsed")  # fmt: skip
        c[1].checkbox("Snap to edges (GrabCut)", key=f"mask_snap_{k}",
                      help="Keep only what stands out inside your selection from its surroundings.")  # fmt: skip
        c[2].button("Undo", key=f"mask_undo_{k}", disabled=not corr.undo_stack,
                    on_click=corr.undo, args=(predictor,))  # fmt: skip
        c[3].button("Reset to the model's mask", key=f"mask_reset_{k}", disabled=not photo.skin_corrected,
                    on_click=corr.reset, args=(predictor,))  # fmt: skip
        st.caption("Draw around a region with the lasso (or pick the box in the chart's tool bar): "
                   "it is taken out of the skin or added to it, and the scores and affected area "
                   "are recomputed over the skin. Dimmed: not skin.")  # fmt: skip
        chart_key = f"mask_{k}_{corr.edits}"  # a new chart after each change: no stale selection
        st.plotly_chart(mask_edit.mask_figure(photo.image, corr.mask), key=chart_key,
                        on_select=functools.partial(_file_selection, chart_key, k), selection_mode=("lasso", "box"),
                        config=PLOTLY_CONFIG)  # fmt: skip
        if note:
            st.info(note)
        who = "corrected by you" if photo.skin_corrected else "as the model found it"
        st.caption(f"Skin: {100 * corr.mask.mean():.0f} % of the photo, {who}.")
