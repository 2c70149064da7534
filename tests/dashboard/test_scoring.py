"""The page's logic without streamlit: batch scoring, EASI pre-fill, model choice (tables:
test_tables.py)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
from PIL import Image

from dashboard import scoring
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


def test_new_assessment(fake_predictor):
    batch = scoring.score_files(fake_predictor, [("a.png", _png())], age=9, sex=None,
                                region="head_neck")  # fmt: skip
    a = scoring.new_assessment(fake_predictor, batch, pseudonym="PT-9",
                               visit_date=dt.date(2026, 1, 2), age=9, sex=None,
                               region="head_neck")  # fmt: skip
    assert a.model["name"] == "fake-demo" and a.synthetic and a.signs == fake_predictor.signs
    assert a.max_score == 3.0 and a.photos[0].name == "a.png"


def test_easi_prefill_by_region(make_result):
    from dashboard.assessment import PhotoResult

    photos = [PhotoResult.from_prediction("a", "trunk", make_result(0)),
              PhotoResult.from_prediction("b", "trunk", make_result(1))]  # fmt: skip
    pre = scoring.easi_prefill(photos, max_score=3.0)
    assert set(pre) == {"head_neck", "upper_limbs", "trunk", "lower_limbs"}
    assert pre["head_neck"] == dict.fromkeys(pre["head_neck"], 0.0)
    mean = np.mean([p.scores["erythema"] for p in photos])
    assert pre["trunk"]["erythema"] == round(mean * 2) / 2
    values = {f"{r}:{s}": v for r, d in pre.items() for s, v in d.items()}
    inputs = scoring.easi_inputs(values, dict.fromkeys(pre, 2))
    assert inputs["trunk"] == (pre["trunk"], 2)
