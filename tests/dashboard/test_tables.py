"""The page's tables and labels: one photo's scores, a patient's visits and changes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from dashboard import tables
from dashboard.assessment import PhotoResult
from dashboard.history import VisitSummary

SIGNS = ["erythema", "papulation", "excoriation", "lichenification"]


def test_score_table(make_result):
    photo = PhotoResult.from_prediction("a.png", "trunk", make_result(0, tta=True))
    table = tables.score_table(photo, SIGNS)
    assert list(table.columns) == ["sign", "score", "label", "affected area %", "uncertainty"]
    assert list(table["sign"]) == SIGNS
    assert table["score"].iloc[0] == round(photo.scores["erythema"], 2)
    assert table["label"].iloc[0] == photo.labels["erythema"]
    assert table["uncertainty"].tolist()[:2] == ["0.00 - 0.40", "0.10 - 0.50"]
    no_tta = PhotoResult.from_prediction("b.png", "trunk", make_result(1))
    assert tables.score_table(no_tta, SIGNS)["uncertainty"].iloc[0] == "-"


def test_score_help_follows_the_scale():
    assert tables.score_help(3.0, ["none", "mild", "moderate", "severe"]) == "0 none .. 3 severe"
    assert tables.score_help(4.0, ["none", "a", "b", "c", "worst"]) == "0 none .. 4 worst"


def test_area_labels():
    assert tables.area_label(0) == "0  (0 %)"
    assert tables.area_label(3) == "3  (30-49 %)"


def test_visit_tables():
    visits = [VisitSummary(1, dt.date(2026, 1, 1), 30, "trunk", 2, 4.7, "mild", "m 1"),
              VisitSummary(2, dt.date(2026, 2, 1), 30, "trunk", 1, None, None, "m 1")]  # fmt: skip
    table = tables.visits_table(visits)
    assert list(table["region"]) == ["Trunk", "Trunk"] and table["EASI"].iloc[0] == 4.7
    assert tables.visit_label(visits[0]) == "2026-01-01 (#1, 2 photo(s), EASI 4.7)"
    assert tables.visits_table([]).empty
    trend = pd.DataFrame({"visit_date": [1, 2, 1, 2], "series": ["e", "e", "EASI", "EASI"],
                          "value": [2.0, 1.0, 0.0, 3.0],
                          "change_pct": [0.0, -50.0, np.nan, np.nan]})  # fmt: skip
    change = tables.change_table(trend)
    assert change.iloc[0].tolist() == ["e", 2.0, 1.0, -50.0]
    assert pd.isna(change.iloc[1]["change %"])
