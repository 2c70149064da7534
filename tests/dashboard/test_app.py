"""The page driven by streamlit's AppTest, with a fake model (the real one in test_app_demo)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from model.errors import DermsevError

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def png(seed=0, size=(96, 64)):
    rng = np.random.default_rng(seed)
    img = np.full((size[1], size[0], 3), (200, 160, 140), np.uint8)
    img[16:48, 24:72] = (230, 90, 80)  # a red lesion
    img = np.clip(img.astype(int) + rng.integers(-5, 5, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app(monkeypatch, tmp_path, fake_predictor):
    import model.inference

    monkeypatch.setenv("DERMSEV_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DERMSEV_MODEL", raising=False)

    def load_model(model_dir=None):
        if model_dir is None:
            return fake_predictor
        raise DermsevError(f"{model_dir}: no config.json (not a model directory)")

    monkeypatch.setattr(model.inference, "load_model", load_model)
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    yield at
    st.cache_resource.clear()


def fill(at, files, pseudonym="PT-0042", age=41.0, region="trunk"):
    at.text_input(key="pseudonym").input(pseudonym)
    at.selectbox(key="region").set_value(region)
    at.number_input(key="age").set_value(age)
    at.date_input(key="visit_date").set_value(dt.date(2026, 3, 14))
    at.file_uploader(key="uploads").set_value(files)
    at.button(key="score").click()
    at.run()
    assert not at.exception, at.exception


def test_page_loads_with_demo_banner(app):
    assert app.title[0].value == "Skin severity assessment"
    assert any("synthetic images, not for clinical use" in w.value for w in app.warning)
    assert "Not a medical device" in app.caption[0].value
    assert "fake-demo" in " ".join(c.value for c in app.sidebar.caption)


def test_upload_scores_and_offers_exports(app, downloads):
    fill(app, [("a.png", png(0), "image/png"), ("b.png", png(1), "image/png")])
    a = app.session_state["assessment"]
    assert [p.name for p in a.photos] == ["a.png", "b.png"]
    assert [s.value for s in app.subheader][:2] == ["a.png", "b.png"]
    table = app.dataframe[0].value
    assert list(table.columns) == ["sign", "score", "label", "affected area %", "uncertainty"]
    assert table["score"].iloc[0] == pytest.approx(round(a.photos[0].scores["erythema"], 2))
    assert table["uncertainty"].iloc[0] == "0.10 - 0.30"
    assert len(app.get("plotly_chart")) == 1 + 4  # legend; overlay + small multiples per photo
    labels = [b.label for b in app.download_button if "audit" not in b.label]  # not the Audit tab's
    assert labels[:5] == ["CSV summary", "JSON summary", "PDF report", "FHIR bundle", "DICOM overlays"]
    rows = list(csv.DictReader(io.StringIO(downloads["dermsev_PT-0042_2026-03-14.csv"].decode())))
    signs = [r for r in rows if r["record"] == "sign"]
    assert len(signs) == 8 and signs[0]["pseudonym"] == "PT-0042" and signs[0]["age"] == "41"
    assert signs[0]["score"] == f"{a.photos[0].scores['erythema']:.2f}"
    assert "dermsev_PT-0042_2026-03-14.json" in downloads


def test_bad_file_gets_a_message_and_the_rest_is_scored(app):
    fill(app, [("broken.jpg", b"this is not a jpeg", "image/jpeg"), ("ok.png", png(), "image/png"),
               ("empty.png", b"", "image/png")])  # fmt: skip
    errors = [e.value for e in app.error]
    assert any(e.startswith("broken.jpg: not an image") for e in errors)
    assert any(e.startswith("empty.png: file is empty") for e in errors)
    assert [p.name for p in app.session_state["assessment"].photos] == ["ok.png"]


@pytest.mark.parametrize("age", [-1.0, 200.0])
def test_impossible_age_refused(app, age):
    fill(app, [("a.png", png(), "image/png")], age=age)
    assert any("from 0 to 130" in e.value for e in app.error)  # the model's age rule
    assert app.session_state.get("assessment") is None


def test_unknown_age_is_scored_and_easi_says_which_weights(app, fake_predictor):
    fill(app, [("a.png", png(), "image/png")], age=None)
    assert not app.error
    a = app.session_state["assessment"]
    assert a.age is None and a.easi.age_assumed
    assert any("Age unknown: EASI uses the region weights for 8 years and over" in i.value
               for i in app.info)  # fmt: skip


def test_out_of_range_age_message_is_plain(app):
    fill(app, [("a.png", png(), "image/png")], age=-5.0)
    [msg] = [e.value for e in app.error]
    assert msg.startswith("Age -5") and "or left unknown" in msg and "None" not in msg


def _figures(app) -> dict[str, dict]:
    """{widget key: plotly figure JSON} of every chart on the page."""
    return {
        c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in app.get("plotly_chart")
    }


def test_the_first_page_draws_no_chart_and_the_next_run_draws_the_legend(app):
    """A session's first page has no plotly chart (its form is ready sooner without the chart
    library); the next run (timed, or the upload's) draws the colour legend."""
    fresh = AppTest.from_file(APP, default_timeout=30).run()  # a new session
    assert not fresh.exception
    assert not fresh.get("plotly_chart")
    assert fresh.text_input(key="pseudonym") is not None  # the form is there
    fresh.run()
    assert not fresh.exception
    assert [c.key for c in fresh.sidebar.get("plotly_chart")] == ["legend"]


@pytest.mark.parametrize("fake_predictor", [4.0], indirect=True)
def test_score_ranges_follow_the_model(app):
    """A model scoring 0..4: legend, overlays, score column, captions and trend say 0..4."""
    fill(app, [("a.png", png(0), "image/png")])
    a = app.session_state["assessment"]
    assert a.max_score == 4.0 and a.label_names[-1] == "very severe"
    figs = _figures(app)
    assert figs["legend"]["layout"]["xaxis"]["range"] == [0, 4]
    heats = [
        t for k in ("overlay_0", "multiples_0") for t in figs[k]["data"] if t["type"] == "heatmap"
    ]
    assert len(heats) == 1 + 4 and {t["zmax"] for t in heats} == {4}
    assert heats[0]["colorbar"]["ticktext"][-1] == "very severe"
    columns = json.loads(app.dataframe[0].proto.columns)
    assert columns["score"]["help"] == "0 none .. 4 very severe"
    captions = " ".join(c.value for c in app.caption)
    assert "affected skin, 0-4." in captions and "from the model's 0-4" in captions
    for day in (14, 15):  # two saved visits: the history's trend
        app.date_input(key="visit_date").set_value(dt.date(2026, 4, day))
        app.button(key="score").click()
        app.run()
        app.button(key="save").click()
        app.run()
    trend = _figures(app)["trend"]["layout"]["yaxis"]
    assert trend["range"] == pytest.approx([0, 4 * 1.04])
    assert trend["title"]["text"] == "sign score (0-4)"


def test_name_as_pseudonym_refused(app):
    fill(app, [("a.png", png(), "image/png")], pseudonym="Jane Doe")
    assert any("never the patient's name" in e.value for e in app.error)


def test_easi_prefilled_and_editable(app):
    fill(app, [("a.png", png(), "image/png")])
    a = app.session_state["assessment"]
    expected = round(a.photos[0].scores["erythema"] * 2) / 2
    assert app.number_input(key="easi:trunk:erythema").value == expected
    assert app.number_input(key="easi:head_neck:erythema").value == 0
    app.number_input(key="easi:trunk:erythema").set_value(3.0)
    app.number_input(key="easi:trunk:papulation").set_value(2.0)
    app.number_input(key="easi:trunk:excoriation").set_value(1.0)
    app.number_input(key="easi:trunk:lichenification").set_value(0.0)
    app.selectbox(key="easi_area:trunk").set_value(4)
    app.run()
    # (3 + 2 + 1 + 0) x 4 x 0.3 = 7.2 -> moderate
    assert app.metric[0].value == "7.2"
    assert app.metric[1].value == "moderate"
    assert app.session_state["assessment"].easi.total == pytest.approx(7.2)


def test_save_and_history(app):
    fill(app, [("a.png", png(), "image/png")])
    app.button(key="save").click()
    app.run()
    assert any("Saved as visit #1" in s.value for s in app.success)
    assert app.selectbox(key="history_patient").value == "PT-0042"
    tables = [d.value for d in app.dataframe]
    history = [t for t in tables if "visit" in t.columns][0]
    assert list(history["date"]) == ["2026-03-14"] and list(history["photos"]) == [1]
    # a second visit: trend and side by side appear
    app.date_input(key="visit_date").set_value(dt.date(2026, 4, 14))
    app.file_uploader(key="uploads").set_value([("b.png", png(3), "image/png")])
    app.button(key="score").click()
    app.run()
    app.button(key="save").click()
    app.run()
    assert not app.exception
    assert app.selectbox(key="cmp_a").value == 1 and app.selectbox(key="cmp_b").value == 2
    assert any("Change from baseline" in m.value for m in app.markdown)


def test_broken_model_directory_is_reported(app, monkeypatch):
    monkeypatch.setenv("DERMSEV_MODEL", "/nowhere")  # installed by an admin, but broken
    app.run()
    app.selectbox(key="model_dir_choice").set_value("/nowhere")
    app.run()
    assert not app.exception
    assert any("Could not load the model nowhere (DERMSEV_MODEL)" in e.value for e in app.sidebar.error)
    app.selectbox(key="model_dir_choice").set_value("")
    app.run()
    assert app.title[0].value == "Skin severity assessment"


def test_no_model_path_can_be_typed(app):
    """The browser chooses among installed models only: no text field takes a path."""
    assert [w.label for w in app.sidebar.text_input] == []
    assert app.selectbox(key="model_dir_choice").options == ["bundled demo model"]
