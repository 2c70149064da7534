"""The patient store on SQLite and PostgreSQL (fixture `make_store`): atomic saves, trends,
deletion, EXIF stripping. Migrations of older stores: test_store_migrate.py."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from dashboard import history
from dashboard.history import HistoryStore, clean_image, data_dir


def _count(store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()


def test_data_dir_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEV_DATA", str(tmp_path / "env"))
    assert data_dir() == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("DERMSEV_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".dermsev"


def test_save_list_load(make_store, make_assessment):
    store = make_store()
    a = make_assessment()
    a.model["weights_sha256"] = "ab" * 32
    visit = store.save(a, assessor="dr_lee")
    [summary] = store.visits("PT-0001")
    assert (summary.assessor, summary.model_hash) == ("dr_lee", "ab" * 32)
    assert summary.id == visit and summary.visit_date == dt.date(2026, 3, 14)
    assert summary.n_photos == 2 and summary.easi_total == pytest.approx(4.7)
    assert summary.model == "dermsev-demo 0.1.0"
    back = store.load(visit)
    assert back.pseudonym == "PT-0001" and back.easi == a.easi
    assert back.photos[0].scores["erythema"] == pytest.approx(
        a.photos[0].scores["erythema"], abs=0.005
    )
    assert back.photos[0].image.shape == a.photos[0].image.shape
    assert back.photos[0].maps.shape == a.photos[0].maps.shape
    assert np.allclose(back.photos[0].maps, a.photos[0].maps, atol=0.01)
    assert store.patients() == ["PT-0001"]
    with pytest.raises(KeyError, match="no visit with id 999"):
        store.load(999)


def test_save_is_atomic(make_store, tmp_path, make_assessment, monkeypatch):
    store = make_store()
    a = make_assessment()
    calls = {"n": 0}
    real = history.clean_image

    def fail_on_second(image, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(history, "clean_image", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        store.save(a)
    assert store.patients() == [] and store.visits("PT-0001") == []
    assert not list(tmp_path.glob("images/*/*"))  # the first photo's file is gone too
    assert _count(store, "sign_scores") == 0 and _count(store, "visits") == 0
    assert _count(store, "audit") == 0  # the save's audit record went with it


def test_trend_and_change_from_baseline(make_store, make_assessment):
    store = make_store()
    first = make_assessment(visit_date=dt.date(2026, 1, 10))
    second = make_assessment(visit_date=dt.date(2026, 2, 10), with_easi=False)
    third = make_assessment(visit_date=dt.date(2026, 3, 10))
    for photo in third.photos:
        photo.scores = {s: v / 2 for s, v in photo.scores.items()}
    from dashboard.easi import compute_easi

    third.easi = compute_easi(
        {"trunk": ({"erythema": 1, "papulation": 1, "excoriation": 0, "lichenification": 0}, 3)},
        age=34,
    )  # 2 x 3 x 0.3 = 1.8
    for a in (third, first, second):  # saved out of order on purpose
        store.save(a)
    trend = store.trend("PT-0001")
    assert list(trend.columns) == ["visit_id", "visit_date", "series", "value", "change_pct"]
    ery = trend[trend.series == "erythema"]
    assert list(ery.visit_date.dt.strftime("%m")) == ["01", "02", "03"]
    assert list(ery.change_pct.round(6)) == [0.0, 0.0, -50.0]
    base = np.mean([p.scores["erythema"] for p in first.photos])
    assert ery.value.iloc[0] == pytest.approx(base)
    easi = trend[trend.series == "EASI"]
    assert list(easi.value) == pytest.approx([4.7, 1.8])
    assert easi.change_pct.iloc[1] == pytest.approx((1.8 - 4.7) / 4.7 * 100)
    lich = trend[trend.series == "lichenification"]  # baseline 0: change undefined
    assert lich.change_pct.isna().all()
    assert [v.visit_date.month for v in store.visits("PT-0001")] == [1, 2, 3]


def test_compare_orders_visits(make_store, make_assessment):
    store = make_store()
    late = store.save(make_assessment(visit_date=dt.date(2026, 5, 1)))
    early = store.save(make_assessment(visit_date=dt.date(2026, 1, 1)))
    a, b = store.compare(late, early)
    assert a.visit_date < b.visit_date


def test_patients_are_separate_and_deletable(make_store, make_assessment):
    store = make_store()
    store.save(make_assessment(pseudonym="A-1"))
    store.save(make_assessment(pseudonym="B-2"))
    store.save(make_assessment(pseudonym="B-2", visit_date=dt.date(2026, 4, 1)))
    assert store.patients() == ["A-1", "B-2"]
    assert len(store.visits("A-1")) == 1 and len(store.visits("B-2")) == 2
    assert store.delete_patient("B-2") == 2
    assert store.patients() == ["A-1"] and store.visits("B-2") == []
    assert store.trend("B-2").empty
    assert _count(store, "photos") == 2 and _count(store, "sign_scores") == 8


def test_names_refused(make_store):
    store = make_store()
    with pytest.raises(ValueError, match="never the patient's name"):
        store.visits("Jane Doe")


def _jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (40, 20), (200, 120, 100))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)  # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "E", (2.0, 21.0, 3.0)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as check:  # the fixture really carries GPS
        assert check.getexif().get_ifd(0x8825)
    return data


def test_clean_image_strips_exif_and_keeps_orientation():
    out = clean_image(_jpeg_with_gps())
    with Image.open(io.BytesIO(out)) as img:
        assert img.format == "JPEG"
        assert not img.getexif() and "exif" not in img.info
        assert img.size == (20, 40)  # EXIF orientation applied to the pixels
    assert b"PhoneMaker" not in out and b"Exif" not in out


def test_stored_photo_has_no_exif(tmp_path, make_assessment):
    store = HistoryStore(tmp_path)
    a = make_assessment(n_photos=1)
    a.photos[0].image = _jpeg_with_gps()  # the uploaded file, as is
    store.save(a)
    [stored] = list((tmp_path / "images").rglob("*.jpg"))
    raw = stored.read_bytes()
    assert b"Exif" not in raw and b"PhoneMaker" not in raw
    with Image.open(stored) as img:
        assert not img.getexif() and img.size == (20, 40)


def test_clean_image_limits_size_and_checks_arrays():
    big = np.zeros((3000, 1000, 3), np.uint8)
    with Image.open(io.BytesIO(clean_image(big, max_side=600))) as img:
        assert img.size == (200, 600)
    with pytest.raises(ValueError, match="uint8 RGB"):
        clean_image(np.zeros((10, 10), np.float32))


def test_trend_series_order_and_empty(make_store, make_assessment):
    store = make_store()
    empty = store.trend("NOBODY")
    assert empty.empty and "change_pct" in empty.columns
    store.save(make_assessment())
    series = list(dict.fromkeys(store.trend("PT-0001").series))
    assert series == ["erythema", "papulation", "excoriation", "lichenification", "EASI"]


