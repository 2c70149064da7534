"""The patient store: one SQLite file plus image files in a data folder.

Data folder: `$DERMSEV_DATA` if set, else `~/.dermsev` (outside the source tree, so patient
data is never next to code that gets committed, copied or cleaned). Inside it:
`history.sqlite3` and `images/<visit id>/<n>.jpg` (+ `<n>.npz`: the display-size maps, and
the skin mask as scored, `skin`, with the model's own mask, `model_skin`, when the clinician
corrected it; visits saved before masks were stored have `maps` alone).

Schema (migrations in dashboard/schema.py; `PRAGMA user_version` holds the version):
  patients(id, pseudonym UNIQUE, sex, created_at)          pseudonyms only, never names
  visits(id, patient_id, visit_date, age, region, model_*, created_at, assessment_json)
  photos(id, visit_id, position, name, region, image_path, maps_path)
  sign_scores(photo_id, sign, score, label, affected_area, uncertainty_low/high)
  easi(visit_id, age_group, total, band) and easi_regions(visit_id, region, area, 4 signs, score)

Stored images are re-encoded from pixels only, so EXIF (GPS, camera, time) never reaches disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from dashboard.assessment import Assessment, PhotoResult, check_pseudonym
from dashboard.easi import EASI_SIGNS
from dashboard.schema import migrate

DB_NAME = "history.sqlite3"
EASI_SERIES = "EASI"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data folder: `path`, else $DERMSEV_DATA, else ~/.dermsev (created if missing)."""
    folder = Path(path or os.environ.get("DERMSEV_DATA") or Path.home() / ".dermsev")
    folder = folder.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def clean_image(image: np.ndarray | bytes | Image.Image, max_side: int = 2048) -> bytes:
    """Re-encode an image from its pixels alone as JPEG (quality 90), long side <= max_side.

    Bytes are decoded with Pillow and turned upright by their EXIF orientation first (so
    dropping the orientation tag does not rotate the photo); no metadata is copied over.
    """
    if isinstance(image, (bytes, bytearray)):
        with Image.open(io.BytesIO(image)) as img:
            pixels = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    elif isinstance(image, Image.Image):
        pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    else:
        pixels = np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[2] < 3 or pixels.dtype != np.uint8:
            raise ValueError(
                f"image must be (h, w, 3) uint8 RGB, got {pixels.shape} {pixels.dtype}"
            )
        pixels = pixels[..., :3]
    fresh = Image.fromarray(np.ascontiguousarray(pixels))  # a new image: pixels, no info
    fresh.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    fresh.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@dataclass(frozen=True)
class VisitSummary:
    id: int
    visit_date: dt.date
    age: float | None  # None = unknown
    region: str
    n_photos: int
    easi_total: float | None
    easi_band: str | None
    model: str


class HistoryStore:
    """The patient store in `folder` (see `data_dir`); opens a connection per call, so one
    store may be shared by the page's threads."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = data_dir(folder)
        self.path = self.folder / DB_NAME
        with self._connect() as db:
            migrate(db)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        try:
            yield db
        finally:
            db.close()

    def save(self, assessment: Assessment) -> int:
        """Store one visit atomically (all rows and image files, or nothing); return its id."""
        a, now = assessment, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        written: Path | None = None
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO patients (pseudonym, sex, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(pseudonym) DO UPDATE SET sex = COALESCE(excluded.sex, sex)",
                    (a.pseudonym, a.sex, now),
                )
                patient = db.execute(
                    "SELECT id FROM patients WHERE pseudonym = ?", (a.pseudonym,)
                ).fetchone()[0]
                visit = db.execute(
                    "INSERT INTO visits (patient_id, visit_date, age, region, model_name, "
                    "model_version, created_at, assessment_json) VALUES (?,?,?,?,?,?,?,?)",
                    (patient, a.visit_date.isoformat(), a.age, a.region,
                     a.model.get("name"), a.model.get("version"), now, json.dumps(a.to_dict())),
                ).lastrowid  # fmt: skip
                written = self.folder / "images" / str(visit)
                if written.exists():  # left over by an earlier failed save
                    shutil.rmtree(written)
                written.mkdir(parents=True)
                for n, photo in enumerate(a.photos):
                    image_path = maps_path = None
                    if photo.image is not None:
                        image_path = f"images/{visit}/{n}.jpg"
                        (self.folder / image_path).write_bytes(clean_image(photo.image))
                    if photo.maps is not None:
                        maps_path = f"images/{visit}/{n}.npz"
                        np.savez_compressed(self.folder / maps_path, **_pixel_arrays(photo))
                    pid = db.execute(
                        "INSERT INTO photos (visit_id, position, name, region, image_path, "
                        "maps_path) VALUES (?,?,?,?,?,?)",
                        (visit, n, photo.name, photo.region, image_path, maps_path),
                    ).lastrowid
                    unc = photo.uncertainty or {}
                    db.executemany(
                        "INSERT INTO sign_scores VALUES (?,?,?,?,?,?,?)",
                        [(pid, s, v, photo.labels.get(s, ""), photo.affected_area.get(s, 0.0),
                          *(unc[s] if s in unc else (None, None)))
                         for s, v in photo.scores.items()],
                    )  # fmt: skip
                if a.easi is not None:
                    e = a.easi
                    db.execute("INSERT INTO easi VALUES (?,?,?,?)",
                               (visit, e.age_group, e.total, e.band))  # fmt: skip
                    db.executemany(
                        "INSERT INTO easi_regions VALUES (?,?,?,?,?,?,?,?)",
                        [(visit, r.region, r.area, *(r.intensities[s] for s in EASI_SIGNS),
                          r.score) for r in e.regions.values()],
                    )  # fmt: skip
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                if written is not None:
                    shutil.rmtree(written, ignore_errors=True)
                raise
        return visit

    def patients(self) -> list[str]:
        """All pseudonyms, sorted."""
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT pseudonym FROM patients ORDER BY pseudonym")]

    def visits(self, pseudonym: str) -> list[VisitSummary]:
        """A patient's visits, oldest first (ties by save order)."""
        check_pseudonym(pseudonym)
        with self._connect() as db:
            rows = db.execute(
                """SELECT v.id, v.visit_date, v.age, v.region, v.model_name, v.model_version,
                          (SELECT COUNT(*) FROM photos p WHERE p.visit_id = v.id) AS n,
                          e.total, e.band
                   FROM visits v JOIN patients pt ON pt.id = v.patient_id
                   LEFT JOIN easi e ON e.visit_id = v.id
                   WHERE pt.pseudonym = ? ORDER BY v.visit_date, v.id""",
                (pseudonym,),
            ).fetchall()
        return [
            VisitSummary(r["id"], dt.date.fromisoformat(r["visit_date"]), r["age"], r["region"],
                         r["n"], r["total"], r["band"],
                         f"{r['model_name'] or ''} {r['model_version'] or ''}".strip())
            for r in rows
        ]  # fmt: skip

    def load(self, visit_id: int) -> Assessment:
        """One stored visit with its photos' stored images and maps (for side by side)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT assessment_json FROM visits WHERE id = ?", (visit_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no visit with id {visit_id}")
            photos = db.execute(
                "SELECT image_path, maps_path FROM photos WHERE visit_id = ? ORDER BY position",
                (visit_id,),
            ).fetchall()
        a = Assessment.from_dict(json.loads(row[0]))
        for photo, paths in zip(a.photos, photos, strict=True):
            _attach_pixels(photo, self.folder, paths["image_path"], paths["maps_path"])
        return a

    def compare(self, visit_a: int, visit_b: int) -> tuple[Assessment, Assessment]:
        """Two visits for side by side, older first."""
        a, b = self.load(visit_a), self.load(visit_b)
        return (a, b) if a.visit_date <= b.visit_date else (b, a)

    def trend(self, pseudonym: str) -> pd.DataFrame:
        """Per visit, each sign's mean score over its photos and the EASI total, with the
        change from the first visit that has a value, in % (NaN when that baseline is 0).

        Long table: visit_id, visit_date, series (sign name or "EASI"), value, change_pct.
        """
        check_pseudonym(pseudonym)
        with self._connect() as db:
            rows = db.execute(
                """SELECT v.id AS visit_id, v.visit_date, s.sign AS series, AVG(s.score) AS value,
                          MIN(s.rowid) AS k
                   FROM visits v JOIN patients pt ON pt.id = v.patient_id
                   JOIN photos p ON p.visit_id = v.id JOIN sign_scores s ON s.photo_id = p.id
                   WHERE pt.pseudonym = ? GROUP BY v.id, s.sign
                   UNION ALL
                   SELECT v.id, v.visit_date, ?, e.total, NULL
                   FROM visits v JOIN patients pt ON pt.id = v.patient_id
                   JOIN easi e ON e.visit_id = v.id WHERE pt.pseudonym = ?""",
                (pseudonym, EASI_SERIES, pseudonym),
            ).fetchall()
        columns = ["visit_id", "visit_date", "series", "value", "k"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        df["visit_date"] = pd.to_datetime(df["visit_date"])
        # Signs in the model's order (the order they were stored in), EASI last.
        df["k"] = df.groupby("series")["k"].transform("min").astype(float).fillna(np.inf)
        df = df.sort_values(["k", "series", "visit_date", "visit_id"], kind="stable")
        df = df.drop(columns="k")
        base = df.groupby("series")["value"].transform("first")
        df["change_pct"] = np.where(
            base > 0, (df["value"] - base) / base.where(base > 0) * 100, np.nan
        )
        return df.reset_index(drop=True)

    def delete_patient(self, pseudonym: str) -> int:
        """Erase a patient, their visits and stored images; return the number of visits."""
        check_pseudonym(pseudonym)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            ids = [r[0] for r in db.execute(
                "SELECT v.id FROM visits v JOIN patients p ON p.id = v.patient_id "
                "WHERE p.pseudonym = ?", (pseudonym,))]  # fmt: skip
            db.execute("DELETE FROM patients WHERE pseudonym = ?", (pseudonym,))
            db.execute("COMMIT")
        for visit in ids:
            shutil.rmtree(self.folder / "images" / str(visit), ignore_errors=True)
        return len(ids)


def _attach_pixels(photo: PhotoResult, folder: Path, image_path, maps_path) -> None:
    if image_path and (folder / image_path).exists():
        with Image.open(folder / image_path) as img:
            photo.image = np.asarray(img.convert("RGB"))
    if maps_path and (folder / maps_path).exists():
        with np.load(folder / maps_path, allow_pickle=False) as data:
            photo.maps = data["maps"].astype(np.float32)
            for name in ("skin", "model_skin"):
                if name in data.files:
                    setattr(photo, name, data[name].astype(bool))


def _pixel_arrays(photo: PhotoResult) -> dict[str, np.ndarray]:
    """What a photo's .npz holds: maps (float16), and the skin masks (bool) it has."""
    arrays = {"maps": np.asarray(photo.maps, dtype=np.float16)}
    if photo.skin is not None:
        arrays["skin"] = np.asarray(photo.skin, dtype=bool)
    if photo.skin_corrected and photo.model_skin is not None:
        arrays["model_skin"] = np.asarray(photo.model_skin, dtype=bool)
    return arrays
