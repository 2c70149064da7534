"""The "Correct the skin mask" expander on the page (AppTest, fake model).

AppTest cannot draw a plotly selection, so the tests file one where the chart's selection
callback files it (view_mask.pending_key) and check that the page reacts: the score table,
the overlay's title, undo and reset, and the saved visit. The browser path (a lasso drawn with
the mouse) is in tests/e2e/test_browser.py.
"""

from __future__ import annotations

import json

import pytest

from dashboard.history import HistoryStore
from dashboard.view_mask import open_key, pending_key
from tests.dashboard.test_app import app, fill, png  # noqa: F401  (the page fixture)

K = "1_0"  # the first batch's first photo
LESION = {"box": [{"xref": "x", "yref": "y", "x": [20, 80], "y": [10, 55]}], "lasso": []}


def erythema_row(at) -> dict:
    table = at.dataframe[0].value
    return table[table["sign"] == "erythema"].iloc[0].to_dict()


def overlay_title(at) -> str:
    chart = [c for c in at.get("plotly_chart") if c.proto.id.endswith("overlay_0")][0]
    return json.loads(chart.proto.spec)["layout"]["title"]["text"]


@pytest.fixture
def scored(app):  # noqa: F811
    fill(app, [("a.png", png(0), "image/png")])
    assert len(app.get("plotly_chart")) == 1 + 2  # closed: the editor's photo is not sent
    app.session_state[open_key(K)] = True
    app.run()
    assert not app.exception, app.exception
    assert any(c.proto.id.endswith(f"mask_{K}_0") for c in app.get("plotly_chart"))
    return app


def test_excluding_the_lesion_updates_the_scores_at_once(scored, tmp_path):
    at = scored
    before = erythema_row(at)
    assert before["score"] > 1 and before["affected area %"] > 10
    at.session_state[pending_key(K)] = LESION  # what the chart's selection callback files
    at.run()
    assert not at.exception, at.exception
    # left: the fake's reading of the photo's plain skin, (200 - 150) / 40 = 1.25 +- noise, on
    # all of it (the lesion scored 3: red 230 - 85 over 40, capped)
    after = erythema_row(at)
    assert after["score"] == pytest.approx(1.25, abs=0.06) and after["label"] == "mild"
    assert after["score"] < before["score"] and after["affected area %"] == 100
    assert after["uncertainty"] == "-"
    photo = at.session_state["assessment"].photos[0]
    assert overlay_title(at) == f"erythema: {photo.scores['erythema']:.2f} (mild)"
    assert photo.skin_corrected and not photo.skin[30, 50] and photo.skin[5, 5]
    assert any("corrected by you" in c.value for c in at.caption)
    # a fresh chart (no stale selection), and the selection is applied once
    assert any(c.proto.id.endswith(f"mask_{K}_1") for c in at.get("plotly_chart"))
    assert pending_key(K) not in at.session_state
    # saved with the visit
    at.button(key="save").click()
    at.run()
    stored = HistoryStore(tmp_path / "data").load(1).photos[0]
    assert stored.skin_corrected and (stored.skin == photo.skin).all()


def test_undo_and_reset_bring_back_the_models_numbers(scored):
    at = scored
    before = erythema_row(at)
    assert at.button(key=f"mask_reset_{K}").disabled and at.button(key=f"mask_undo_{K}").disabled
    at.session_state[pending_key(K)] = LESION
    at.run()
    at.session_state[pending_key(K)] = {"box": [{"x": [0, 10], "y": [0, 63]}], "lasso": []}
    at.run()
    assert at.session_state["assessment"].photos[0].skin.sum() == 96 * 64 - 61 * 46 - 11 * 64
    at.button(key=f"mask_undo_{K}").click()
    at.run()
    assert at.session_state["assessment"].photos[0].skin.sum() == 96 * 64 - 61 * 46
    assert erythema_row(at)["score"] == pytest.approx(1.25, abs=0.06)
    at.button(key=f"mask_reset_{K}").click()
    at.run()
    assert not at.exception, at.exception
    assert erythema_row(at) == before
    photo = at.session_state["assessment"].photos[0]
    assert not photo.skin_corrected and photo.skin is None  # the fake model gave no skin mask


def test_a_selection_covering_nothing_says_so_and_changes_nothing(scored):
    at = scored
    before = erythema_row(at)
    at.session_state[pending_key(K)] = {"box": [{"x": [200, 300], "y": [0, 10]}], "lasso": []}
    at.run()
    assert any("covers no pixel" in i.value for i in at.info)
    assert erythema_row(at) == before and not at.session_state["assessment"].photos[0].skin_corrected
