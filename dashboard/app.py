"""The dermatologist's page: widgets and session state only; the logic lives in dashboard/*.

Run with `make run` (or `streamlit run dashboard/app.py`). The model is loaded once per
process (st.cache_resource); each patient's results live only in this browser session's
st.session_state and in the history store when the clinician saves them.
"""

from __future__ import annotations

import datetime as dt
import functools

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import charts, easi, figures, report, scoring, tables, view_explain, view_mask
from dashboard.assessment import DISCLAIMER, check_pseudonym, check_sex
from dashboard.easi import EASI_SIGNS, REGION_LABELS, REGIONS, compute_easi, easi_sign
from dashboard.figures import PLOTLY_CONFIG
from dashboard.history import HistoryStore
from dashboard.inference_queue import QueuedPredictor, shared_queue
from dashboard.models import check_installed, default_choice, installed_models, model_record
from dashboard.store.errors import STORE_ERRORS, describe
from dashboard.view_auth import audit_tab, current_user, record_export, users_tab
from dashboard.view_colour import neutral_patch, white_balance_choice
from dashboard.view_history import history_view, score_columns
from dashboard.view_interop import clinical_exports, dicom_header_notes, remember_headers
from model.inference import check_age

SEX_LABELS = {"unknown": "unknown", "F": "female", "M": "male"}


@st.cache_resource(show_spinner="Loading the model...")
def get_predictor(model_dir: str):
    """The one shared, read-only resource: a loaded model ("" = the bundled demo), the one
    `python -m dashboard.serve` loaded before the server started when there is one."""
    from dashboard.serve import preloaded
    from model.inference import load_model

    return preloaded(model_dir) or load_model(model_dir or None)


def sidebar(store):
    with st.sidebar:
        st.header("Model")
        models = installed_models()  # only what the administrator installed: no typed paths
        choices = list(models)
        model_dir = st.selectbox(
            "Model", choices, index=choices.index(default_choice(models)), key="model_dir_choice",
            format_func=models.get,
            help="Models installed on the server by an administrator (DERMSEV_MODELS folder, "
                 "DERMSEV_MODEL); DERMSEV_MODEL is chosen by default.",
        )  # fmt: skip
        try:
            predictor = get_predictor(check_installed(model_dir))
        except Exception as exc:  # any broken model directory: say so, keep the page
            st.error(f"Could not load the model {models.get(model_dir, model_dir)}: {exc}")
            st.stop()
        info = predictor.info
        st.caption(f"**{info['name']}** {info['version']}  \n{info['description']}")
        st.caption("Signs: " + ", ".join(predictor.signs))
        view_explain.channel_importance_sidebar(predictor)  # models with a mixing layer
        st.markdown("**Overlay colours**")
        legend_slot = st.empty()  # filled last: see colour_legend
        st.header("Patient history")
        st.caption(f"Stored in `{store.folder}` (set DERMSEV_DATA to change), {store.backend}.")
    return predictor, legend_slot


# Seconds after a session's first page before its colour legend is drawn (see colour_legend).
LEGEND_DELAY_S = 1.5


def colour_legend(slot, predictor):
    """The sidebar's legend of the overlay colours, drawn from the page's second script run on.

    The legend is the page's first plotly chart: drawing it makes the browser fetch and
    evaluate plotly.js (4.7 MB, about half a second of a 2-core machine's browser) and set up
    its chart element, which the first overlay then does not wait for. Drawn on the first page,
    it delayed the form by that much. So the first run of a session leaves the slot empty and
    asks for one more run LEGEND_DELAY_S later (a fragment that reruns the app once); any run
    after the first, that one or the upload's, draws the legend.
    """
    s = st.session_state
    if s.get("page_drawn"):
        legend = charts.legend_figure(predictor.thresholds, predictor.max_score, predictor.label_names)
        slot.plotly_chart(legend, key="legend", config={"displayModeBar": False})
        return

    @st.fragment(run_every=LEGEND_DELAY_S)
    def draw_legend_soon():
        if st.session_state.get("page_drawn"):  # a timed run, not the one inside this script run
            st.rerun()

    draw_legend_soon()
    s.page_drawn = True


def open_store():
    try:
        return HistoryStore()
    except (*STORE_ERRORS, RuntimeError) as exc:  # read-only folder, database down, too new
        st.error(describe(exc, "open the patient store"))
        st.stop()


def patient_form(predictor):
    with st.form("patient"):
        c = st.columns([2, 1.3, 1.2, 1.3, 1.5])
        c[0].text_input("Patient pseudonym", key="pseudonym", placeholder="e.g. PT-0042",
                        help="A study or clinic code. Never the patient's name.")  # fmt: skip
        c[1].number_input("Age (years)", key="age", value=None, step=1.0, format="%g",
                          placeholder="unknown", help="Leave empty if unknown.")  # fmt: skip
        c[2].selectbox("Sex", list(SEX_LABELS), key="sex", format_func=SEX_LABELS.get)
        c[3].date_input("Visit date", key="visit_date", value=dt.date.today())
        c[4].selectbox("Body region", REGIONS, key="region", format_func=REGION_LABELS.get)
        st.file_uploader("Photos (JPEG, PNG, TIFF, DICOM)", type=list(scoring.UPLOAD_TYPES),
                         accept_multiple_files=True, key="uploads")  # fmt: skip
        st.checkbox("Uncertainty band (test-time augmentation)", value=True, key="tta")
        white_balance_choice()
        if st.form_submit_button("Score photos", type="primary", key="score"):
            score_batch(predictor)


def score_batch(predictor):
    s = st.session_state
    problems = []
    for check, value in ((check_pseudonym, s.pseudonym), (check_age, s.age)):  # age may be unknown
        try:
            check(value)
        except ValueError as exc:
            msg = str(exc)
            problems.append(msg[:1].upper() + msg[1:])
    if not s.uploads:
        problems.append("Upload at least one photo.")
    for msg in problems:
        st.error(msg)
    if problems:
        return
    bar, done = st.progress(0.0, text="Scoring..."), [0.0]
    files = [(f.name, f.getvalue()) for f in s.uploads]

    shown = [None]

    def waiting(ahead):  # while this session's photo waits in the server's one queue
        # redrawn only when the count changes: ten waiting pages redrawing every poll kept the
        # browser and the server's websocket busy on the cores the scoring needs
        if ahead and ahead != shown[0]:
            shown[0] = ahead
            bar.progress(done[0], text=f"Waiting: {ahead} photo{'s' if ahead > 1 else ''} ahead of yours")

    def progress(i, n, name):
        done[0] = i / n
        bar.progress(i / n, text=f"Scoring {name} ({i + 1}/{n})")

    ctx = get_script_run_ctx()
    queued = QueuedPredictor(predictor, shared_queue(), ctx.session_id if ctx else "local", on_wait=waiting)
    batch = scoring.score_files(
        queued, files, age=s.age, sex=check_sex(s.sex),
        region=s.region, tta=s.tta, white_balance=s.white_balance,
        on_progress=progress,
    )  # fmt: skip
    bar.empty()
    s.upload_errors = batch.errors
    s.photo_sources = dict(files)  # for "why this score", the channel view and the FHIR/DICOM exports
    remember_headers(files, s.age, check_sex(s.sex), s.region)  # shown, never used unasked
    s.batch = s.get("batch", 0) + 1  # fresh keys for the new photos' widgets
    s.saved_visit = None
    s.assessment = None
    if batch.photos:
        s.assessment = scoring.new_assessment(
            predictor, batch, pseudonym=s.pseudonym.strip(), visit_date=s.visit_date,
            age=s.age, sex=check_sex(s.sex), region=s.region,
        )  # fmt: skip
        prefill_easi()


def prefill_easi():
    """Reset the EASI widgets to the intensities suggested by each region's photos."""
    a = st.session_state.assessment
    for region, values in scoring.easi_prefill(a.scored_photos, a.max_score).items():
        for sign, value in values.items():
            st.session_state[f"easi:{region}:{sign}"] = value
        st.session_state.setdefault(f"easi_area:{region}", 0)


def photo_panel(a, i, photo, predictor):
    st.subheader(photo.name)
    c, k = st.columns([1.2, 1, 1]), f"{st.session_state.get('batch', 0)}_{i}"
    sign = c[0].selectbox("Sign", a.signs, key=f"sign_{k}")
    opacity = c[1].slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key=f"opacity_{k}")
    photo.region = c[2].selectbox("Body region", REGIONS, key=f"region_{k}",
                                  index=REGIONS.index(photo.region),
                                  format_func=REGION_LABELS.get)  # fmt: skip
    photo = neutral_patch(predictor, a, i, photo, k)  # "neutral patch" chosen: pick it, re-score
    if not photo_check(photo, k):
        return
    view_mask.mask_editor(predictor, photo, k)  # before the overlay: it shows the corrected mask
    data = st.session_state.get("photo_sources", {}).get(photo.name)
    shown = figures.dim_outside(view_explain.channel_picker(predictor, photo, k, data), photo.skin)
    left, right = st.columns([1.5, 1])
    fig = figures.overlay_figure(
        shown, photo.maps[a.signs.index(sign)], sign, max_score=a.max_score,
        thresholds=a.thresholds, labels=a.label_names, opacity=opacity,
        title=f"{sign}: {photo.scores[sign]:.2f} ({photo.labels[sign]})",
    )  # fmt: skip
    left.plotly_chart(fig, key=f"overlay_{i}", config=PLOTLY_CONFIG)
    right.dataframe(tables.score_table(photo, a.signs), hide_index=True,
                    column_config=score_columns(a))  # fmt: skip
    right.caption(f"Score: typical (median) severity over the affected skin, 0-{a.max_score:g}. "
                  "Uncertainty: lowest and highest score over the photo turned by quarter turns (test-time augmentation).")  # fmt: skip
    small = figures.small_multiples(
        shown, photo.maps, a.signs, scores=photo.scores, max_score=a.max_score,
        thresholds=a.thresholds, labels=a.label_names, opacity=opacity,
    )  # fmt: skip
    st.plotly_chart(small, key=f"multiples_{i}", config=PLOTLY_CONFIG)
    view_explain.why_this_score(predictor, a, photo, k, data, shown)


def photo_check(photo, k) -> bool:
    """The photo checks' verdict beside the photo; False while a failed photo's scores wait
    for the clinician's confirmation (then only the photo and the reasons are shown)."""
    reasons = "  \n".join(f"- {r}" for r in photo.check_reasons)
    if photo.check == "warn":
        st.warning(f"**Photo check: scores may be off**  \n{reasons}", icon="⚠️")
    elif photo.failed:
        st.error(f"**Photo check failed**: no labels are shown for this photo.  \n{reasons}", icon="🚫")
        photo.confirmed = st.checkbox(
            "I have looked at this photo: show its scores anyway", key=f"confirm_{k}",
            help="The scores of a photo that failed the checks are likely wrong.")  # fmt: skip
        if not photo.confirmed:
            st.image(photo.image, width=320)
            return False
    elif photo.check == "pass":
        st.caption(f"Photo check passed · skin {100 * (photo.skin_fraction or 0):.0f} % of the photo")
    return True


def easi_helper(a):
    st.subheader("EASI helper")
    if not any(easi_sign(s) for s in a.signs):
        st.info("This model's signs are not the EASI signs: enter the intensities yourself.")
    st.caption(f"Intensities (0-{easi.MAX_INTENSITY:g}) start from each region's photos (mean "
               f"score, from the model's 0-{a.max_score:g}, nearest half point) and are yours "
               "to edit; enter each region's area score.")  # fmt: skip
    st.button("Re-fill intensities from the photos", on_click=prefill_easi)
    for region in REGIONS:
        c = st.columns([1.3, 1, 1, 1, 1, 1.4])
        c[0].markdown(f"**{REGION_LABELS[region]}**")
        for col, sign in zip(c[1:5], EASI_SIGNS, strict=True):
            col.number_input(sign, 0.0, easi.MAX_INTENSITY, step=0.5, key=f"easi:{region}:{sign}")
        c[5].selectbox("area score", range(easi.MAX_AREA_SCORE + 1), key=f"easi_area:{region}",
                       format_func=tables.area_label)  # fmt: skip
    s = st.session_state
    values = {f"{r}:{g}": s[f"easi:{r}:{g}"] for r in REGIONS for g in EASI_SIGNS}
    areas = {r: s[f"easi_area:{r}"] for r in REGIONS}
    a.easi = compute_easi(scoring.easi_inputs(values, areas), a.age)
    if a.easi.age_assumed:
        st.info("Age unknown: EASI uses the region weights for 8 years and over. "
                "For a child under 8, enter the age and score again.")  # fmt: skip
    c = st.columns(6)
    c[0].metric(f"EASI (0-{easi.MAX_EASI:g})", f"{a.easi.total:.1f}", help=a.easi.weights_note.capitalize() + ".")
    c[1].metric("Severity band", a.easi.band, help="Leshem et al. 2015")
    for col, region in zip(c[2:], REGIONS, strict=True):
        col.metric(REGION_LABELS[region], f"{a.easi.regions[region].score:.2f}")


def exports(a, store, user):
    st.subheader("Export and save")
    c = st.columns(4)

    def logged(fmt):  # each download goes into the audit trail
        return {"on_click": record_export, "args": (store, user, a.pseudonym, fmt)}

    c[0].download_button("CSV summary", report.to_csv(a), report.file_name(a, "csv"),
                         mime="text/csv", disabled=not user.may("export"), **logged("csv"))  # fmt: skip
    c[1].download_button("JSON summary", report.to_json(a), report.file_name(a, "json"),
                         mime="application/json", disabled=not user.may("export"), **logged("json"))  # fmt: skip
    c[2].download_button("PDF report", functools.partial(report.to_pdf, a),
                         report.file_name(a, "pdf"), mime="application/pdf",
                         disabled=not user.may("export"), **logged("pdf"))  # fmt: skip
    if c[3].button("Save to history", type="primary", key="save", disabled=not user.may("save")):
        if st.session_state.get("saved_visit"):
            st.info(f"Already saved as visit #{st.session_state.saved_visit}.")
        else:
            try:
                a.model = model_record(a.model)  # the weights' sha256 goes with the visit
                st.session_state.saved_visit = store.save(a, assessor=user.name)
            except STORE_ERRORS as exc:  # full disk, read-only folder, database down
                st.error(describe(exc))
    if st.session_state.get("saved_visit"):
        st.success(f"Saved as visit #{st.session_state.saved_visit} of {a.pseudonym}.")
    clinical_exports(a, disabled=not user.may("export"), logged=logged)  # FHIR bundle, DICOM overlays (audited)


def main():
    st.set_page_config(page_title="dermsev: skin severity", page_icon="🩺", layout="wide")
    store = open_store()
    user = current_user(store)  # the sign-in form, when sign-in is required
    predictor, legend_slot = sidebar(store)
    st.title("Skin severity assessment")
    if predictor.info.get("synthetic"):
        st.warning("**Demo model**: trained on synthetic images, not for clinical use. "
                   "Its scores only show how the page works.", icon="⚠️")  # fmt: skip
    st.caption(DISCLAIMER)
    names = [n for n, right in (("Assessment", "assess"), ("History", "history"), ("Audit", "audit"),
                                ("Users", "users")) if user.may(right)]  # fmt: skip
    tabs = dict(zip(names, st.tabs(names), strict=True))
    if "Assessment" in tabs:
        with tabs["Assessment"]:
            patient_form(predictor)
            for msg in st.session_state.get("upload_errors", []):
                st.error(msg)
            dicom_header_notes()
            a = st.session_state.get("assessment")
            if a is not None:
                for i, photo in enumerate(a.photos):
                    photo_panel(a, i, photo, predictor)
                easi_helper(a)
                exports(a, store, user)
    if "History" in tabs:
        with tabs["History"]:
            history_view(store, st.session_state.get("pseudonym", ""), user)
    if "Audit" in tabs:
        with tabs["Audit"]:
            audit_tab(store, user)
    if "Users" in tabs:
        with tabs["Users"]:
            users_tab(store, user)
    colour_legend(legend_slot, predictor)


main()
