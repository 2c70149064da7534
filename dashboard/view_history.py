"""The page's History tab: a patient's visits, trends and two visits side by side (widgets only)."""

from __future__ import annotations

import streamlit as st

from dashboard import audit, charts, figures, tables
from dashboard.assessment import Assessment
from dashboard.auth import LOCAL_USER, User
from dashboard.easi import REGION_LABELS
from dashboard.figures import PLOTLY_CONFIG
from dashboard.history import HistoryStore
from dashboard.store.errors import STORE_ERRORS, describe


def score_columns(a: Assessment) -> dict:
    """st.dataframe column_config of `tables.score_table`, on the assessment's score scale."""
    return {
        "score": st.column_config.NumberColumn(
            format="%.2f", help=tables.score_help(a.max_score, a.label_names)),
        "affected area %": st.column_config.NumberColumn("area %", format="%.1f",
                                                         help="Affected area, % of the skin"),
        "uncertainty": st.column_config.TextColumn(help="Lowest-highest score over the photo turned by quarter turns"),
    }  # fmt: skip


def history_view(store: HistoryStore, current: str = "", user: User = LOCAL_USER) -> None:
    try:
        patients = store.patients()
    except STORE_ERRORS as exc:
        st.error(describe(exc, "read the history"))
        return
    if not patients:
        st.info("No saved visits yet. Score photos, then press **Save to history**.")
        return
    current = current.strip()
    # No patient is shown until one is chosen (or is the one being assessed): opening the page
    # must not show, nor log as viewed, whichever patient sorts first.
    who = st.selectbox("Patient", patients, key="history_patient", placeholder="Choose a patient",
                       index=patients.index(current) if current in patients else None)  # fmt: skip
    if who is None:
        n = len(patients)
        st.caption(f"{n} patient{'s' if n != 1 else ''} with saved visits. Choose one to see their visits, "
                   "or type their pseudonym on the Assessment tab.")  # fmt: skip
        return
    viewed = st.session_state.setdefault("audit_viewed", set())
    if who not in viewed:  # one "view" entry per patient and session, not one per rerun
        audit.record(store.engine, user.name, "view", pseudonym=who, detail="history")
        viewed.add(who)
    visits = store.visits(who)
    st.dataframe(tables.visits_table(visits), hide_index=True)
    trend = store.trend(who)
    if not trend.empty:
        left, right = st.columns([2, 1])
        max_score = store.load(visits[-1].id).max_score
        fig = charts.trend_figure(trend, max_score=max_score)
        left.plotly_chart(fig, key="trend", config=PLOTLY_CONFIG)
        right.markdown("**Change from baseline**")
        right.dataframe(tables.change_table(trend), hide_index=True)
    if len(visits) >= 2:
        side_by_side(store, visits)
    if not user.may("save"):  # a reviewer reads only
        return
    with st.expander("Erase this patient's history"):
        st.caption("Deletes every saved visit and stored photo of this pseudonym.")
        sure = st.checkbox(f"Yes, erase {who}", key="erase_sure")
        if st.button("Erase", disabled=not sure, key="erase"):
            n = store.delete_patient(who, actor=user.name)
            st.success(f"Erased {n} visit(s) of {who}.")


def side_by_side(store: HistoryStore, visits) -> None:
    st.subheader("Two visits side by side")
    by_id = {v.id: v for v in visits}
    ids = list(by_id)
    c = st.columns(3)
    first = c[0].selectbox("Visit", ids, index=0, key="cmp_a",
                           format_func=lambda i: tables.visit_label(by_id[i]))  # fmt: skip
    second = c[1].selectbox("compared with", ids, index=len(ids) - 1, key="cmp_b",
                            format_func=lambda i: tables.visit_label(by_id[i]))  # fmt: skip
    older, newer = store.compare(first, second)
    sign = c[2].selectbox("Sign", older.signs or newer.signs, key="cmp_sign")
    cols = st.columns(2)
    for side, col, a in zip("ab", cols, (older, newer), strict=True):
        with col:
            easi = "" if a.easi is None else f" · EASI {a.easi.total:.1f} ({a.easi.band})"
            st.markdown(f"**{a.visit_date.isoformat()}** · age {a.age_text}{easi}")
            for j, photo in enumerate(a.photos):
                if photo.image is not None and photo.maps is not None and sign in a.signs:
                    fig = figures.overlay_figure(
                        photo.image, photo.maps[a.signs.index(sign)], sign,
                        max_score=a.max_score, thresholds=a.thresholds, labels=a.label_names,
                        max_side=384, title=f"{photo.name} · {REGION_LABELS[photo.region]}",
                    )  # fmt: skip
                    fig.update_layout(height=340)
                    st.plotly_chart(fig, key=f"cmp_{side}_{j}", config=PLOTLY_CONFIG)
                st.dataframe(tables.score_table(photo, a.signs), hide_index=True,
                             column_config=score_columns(a))  # fmt: skip
