"""The page's logic without streamlit: batch scoring, tables, EASI pre-fill, model choice."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
from PIL import Image

from dashboard import scoring
from dashboard.history import VisitSummary
from model.errors import DermsevError


def _png():
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 50, 3), (220, 120, 110), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Exploding:
    """A predictor that fails in every way a file can make it fail."""

    def __init__(self, inner):
        self.inner = inner

    def predict(self, data, name=None, **kw):
        if name == "bug.png":
            raise RuntimeError("unexpected")
        if name == "huge.png":
            raise MemoryError
        if name == "bad.png":
            raise DermsevError("not an image")  # message without the file name
        return self.inner.predict(data, name=name, **kw)


def test_score_files_keeps_going(fake_predictor):
    files = [("ok.png", _png()), ("empty.png", b""), ("bug.png", _png()),
             ("huge.png", _png()), ("bad.png", _png()), ("ok2.png", _png())]  # fmt: skip
    seen = []
    batch = scoring.score_files(
        Exploding(fake_predictor), files, age=30, sex="F", region="trunk", tta=True,
        on_progress=lambda i, n, name: seen.append((i, n, name)),
    )  # fmt: skip
    assert [p.name for p in batch.photos] == ["ok.png", "ok2.png"]
    assert batch.errors == [
        "empty.png: file is empty",
        "bug.png: could not be scored (RuntimeError)",
        "huge.png: too large to score on this machine",
        "bad.png: not an image",
    ]
    assert seen[0] == (0, 6, "ok.png") and len(seen) == 6
    photo = batch.photos[0]
    assert photo.region == "trunk" and photo.uncertainty["erythema"] == (0.1, 0.3)
    assert photo.image.dtype == np.uint8 and photo.maps.dtype == np.float32


def test_new_assessment_and_tables(fake_predictor):
    batch = scoring.score_files(fake_predictor, [("a.png", _png())], age=9, sex=None,
                                region="head_neck")  # fmt: skip
    a = scoring.new_assessment(fake_predictor, batch, pseudonym="PT-9",
                               visit_date=dt.date(2026, 1, 2), age=9, sex=None,
                               region="head_neck")  # fmt: skip
    assert a.model["name"] == "fake-demo" and a.synthetic and a.signs == fake_predictor.signs
    table = scoring.score_table(a.photos[0], a.signs)
    assert list(table["sign"]) == a.signs
    assert table["score"].iloc[0] == round(a.photos[0].scores["erythema"], 2)
    assert table["uncertainty"].iloc[0] == "0.10 - 0.30"
    no_tta = scoring.score_files(fake_predictor, [("a.png", _png())], age=9, sex=None,
                                 region="trunk", tta=False)  # fmt: skip
    assert scoring.score_table(no_tta.photos[0], a.signs)["uncertainty"].iloc[0] == "-"


def test_easi_prefill_by_region(make_result):
    from dashboard.assessment import PhotoResult

    photos = [PhotoResult.from_prediction("a", "trunk", make_result(0)),
              PhotoResult.from_prediction("b", "trunk", make_result(1))]  # fmt: skip
    pre = scoring.easi_prefill(photos)
    assert set(pre) == {"head_neck", "upper_limbs", "trunk", "lower_limbs"}
    assert pre["head_neck"] == dict.fromkeys(pre["head_neck"], 0.0)
    mean = np.mean([p.scores["erythema"] for p in photos])
    assert pre["trunk"]["erythema"] == round(mean * 2) / 2
    values = {f"{r}:{s}": v for r, d in pre.items() for s, v in d.items()}
    inputs = scoring.easi_inputs(values, dict.fromkeys(pre, 2))
    assert inputs["trunk"] == (pre["trunk"], 2)


def test_area_labels():
    assert scoring.area_label(0) == "0  (0 %)"
    assert scoring.area_label(3) == "3  (30-49 %)"


def test_model_choices(monkeypatch):
    monkeypatch.delenv("DERMSEV_MODEL", raising=False)
    assert scoring.model_choices() == [""]
    monkeypatch.setenv("DERMSEV_MODEL", "/models/v2")
    assert scoring.default_model_dir() == "/models/v2"
    assert scoring.model_choices() == ["", "/models/v2"]
    assert scoring.model_choices("/other") == ["", "/models/v2", "/other"]


def test_visit_tables():
    visits = [VisitSummary(1, dt.date(2026, 1, 1), 30, "trunk", 2, 4.7, "mild", "m 1"),
              VisitSummary(2, dt.date(2026, 2, 1), 30, "trunk", 1, None, None, "m 1")]  # fmt: skip
    table = scoring.visits_table(visits)
    assert list(table["region"]) == ["Trunk", "Trunk"] and table["EASI"].iloc[0] == 4.7
    assert scoring.visit_label(visits[0]) == "2026-01-01 (#1, 2 photo(s), EASI 4.7)"
    assert scoring.visits_table([]).empty
    trend = pd.DataFrame({"visit_date": [1, 2, 1, 2], "series": ["e", "e", "EASI", "EASI"],
                          "value": [2.0, 1.0, 0.0, 3.0],
                          "change_pct": [0.0, -50.0, np.nan, np.nan]})  # fmt: skip
    change = scoring.change_table(trend)
    assert change.iloc[0].tolist() == ["e", 2.0, 1.0, -50.0]
    assert pd.isna(change.iloc[1]["change %"])
