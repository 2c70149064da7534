"""The patient store: a database (SQLite by default, PostgreSQL when configured) plus image
files in a data folder.

Data folder: `$DERMSEV_DATA` if set, else `~/.dermsev` (outside the source tree, so patient
data is never next to code that gets committed, copied or cleaned). Inside it:
`history.sqlite3` (unless $DERMSEV_DATABASE_URL names a PostgreSQL database) and
`images/<visit id>/<n>.jpg` (+ `<n>.npz`: the display-size maps, and the skin mask as scored,
`skin`, with the model's own mask, `model_skin`, when the clinician corrected it; visits saved
before masks were stored have `maps` alone).

Photos and maps stay on disk, not in the database: they are written once and never queried,
a visit's are ~10x its rows, and as files they keep the database small (fast backups, no WAL
or TOAST churn, the same schema on SQLite and PostgreSQL) and can be backed up or erased with
ordinary tools. With PostgreSQL the data folder must be on a volume every server shares.

Tables: dashboard/store/tables.py; migrations (Alembic) run when the store opens.
Stored images are re-encoded from pixels only, so EXIF (GPS, camera, time) never reaches disk.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from dashboard.assessment import Assessment, PhotoResult, check_pseudonym
from dashboard.audit import now
from dashboard.easi import EASI_SIGNS
from dashboard.store import engine as db
from dashboard.store import tables as t
from dashboard.store.engine import DB_NAME  # noqa: F401  (re-exported: the file's name)
from dashboard.store.migrate import upgrade

EASI_SERIES = "EASI"
ORPHAN_AGE_S = 3600  # photo folders without a visit row older than this are swept at start


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
    assessor: str | None = None  # None: saved before accounts existed
    model_hash: str | None = None  # sha256 of the weights file


class HistoryStore:
    """The patient store: images in `folder` (see `data_dir`), rows in the database at `url`
    (default $DERMSEV_DATABASE_URL, else `folder/history.sqlite3`). Thread-safe: each call
    takes a connection from the process's pool; the database is migrated once per process."""

    _migrated: set[str] = set()

    def __init__(self, folder: str | os.PathLike | None = None, url: str | None = None) -> None:
        self.folder = data_dir(folder)
        self.url = db.database_url(self.folder, url)
        sqlite_file = make_url(self.url).get_backend_name() == "sqlite"
        self.path = Path(make_url(self.url).database) if sqlite_file else None
        self.engine = db.get_engine(self.url)
        if self.url not in HistoryStore._migrated:
            upgrade(self.engine)
            HistoryStore._migrated.add(self.url)
            self.sweep_orphans()

    @property
    def backend(self) -> str:
        """"sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def save(self, assessment: Assessment, assessor: str = "local") -> int:
        """Store one visit atomically (all rows, its audit record and image files, or nothing);
        return its id. assessor: who saved it; the model's weights hash is taken from
        assessment.model["weights_sha256"] when the page put it there."""
        a, when = assessment, now()
        written: Path | None = None
        try:
            with db.write(self.engine) as conn:
                upsert = (postgresql.insert if self.backend == "postgresql" else sqlite.insert)(t.patients)
                conn.execute(upsert.values(pseudonym=a.pseudonym, sex=a.sex, created_at=when)
                             .on_conflict_do_update(index_elements=["pseudonym"], set_={
                                 "sex": func.coalesce(upsert.excluded.sex, t.patients.c.sex)}))  # fmt: skip
                patient = conn.execute(select(t.patients.c.id)
                                       .where(t.patients.c.pseudonym == a.pseudonym)).scalar_one()  # fmt: skip
                visit = conn.execute(t.visits.insert().values(
                    patient_id=patient, visit_date=a.visit_date.isoformat(), age=a.age,
                    region=a.region, model_name=a.model.get("name"),
                    model_version=a.model.get("version"), model_hash=a.model.get("weights_sha256"),
                    assessor=assessor, created_at=when, assessment_json=json.dumps(a.to_dict()),
                )).inserted_primary_key[0]  # fmt: skip
                written = self.folder / "images" / str(visit)
                if written.exists():  # left over by an earlier failed save (SQLite reuses ids)
                    shutil.rmtree(written)
                written.mkdir(parents=True)
                for n, photo in enumerate(a.photos):
                    self._save_photo(conn, visit, n, photo)
                if a.easi is not None:
                    e = a.easi
                    conn.execute(t.easi.insert().values(visit_id=visit, age_group=e.age_group,
                                                        total=e.total, band=e.band))  # fmt: skip
                    conn.execute(t.easi_regions.insert(), [
                        {"visit_id": visit, "region": r.region, "area": r.area, "score": r.score,
                         **{s: r.intensities[s] for s in EASI_SIGNS}} for r in e.regions.values()])  # fmt: skip
                conn.execute(t.audit.insert().values(
                    at=when, actor=assessor, action="save", visit_id=visit, pseudonym=a.pseudonym,
                    detail=f"{len(a.photos)} photo(s); model {a.model.get('name')} "
                           f"{a.model.get('version')} {a.model.get('weights_sha256') or ''}".strip()))  # fmt: skip
        except BaseException:
            if written is not None:
                shutil.rmtree(written, ignore_errors=True)
            raise
        return visit

    def _save_photo(self, conn, visit: int, n: int, photo: PhotoResult) -> None:
        image_path = maps_path = None
        if photo.image is not None:
            image_path = f"images/{visit}/{n}.jpg"
            (self.folder / image_path).write_bytes(clean_image(photo.image))
        if photo.maps is not None:
            maps_path = f"images/{visit}/{n}.npz"
            np.savez_compressed(self.folder / maps_path, **_pixel_arrays(photo))
        pid = conn.execute(t.photos.insert().values(
            visit_id=visit, position=n, name=photo.name, region=photo.region,
            image_path=image_path, maps_path=maps_path)).inserted_primary_key[0]  # fmt: skip
        unc = photo.uncertainty or {}
        if photo.scores:
            conn.execute(t.sign_scores.insert(), [
                {"photo_id": pid, "sign": s, "score": v, "label": photo.labels.get(s, ""),
                 "affected_area": photo.affected_area.get(s, 0.0),
                 "uncertainty_low": unc[s][0] if s in unc else None,
                 "uncertainty_high": unc[s][1] if s in unc else None}
                for s, v in photo.scores.items()])  # fmt: skip

    def sweep_orphans(self, min_age_s: float = ORPHAN_AGE_S) -> list[int]:
        """Remove images/<id> folders with no visit row, left by a server killed mid-save, once
        they are older than `min_age_s` (a younger one may belong to a save still running in
        another process). Returns the ids removed."""
        folder = self.folder / "images"
        if not folder.is_dir():
            return []
        with self.engine.connect() as conn:
            known = set(conn.execute(select(t.visits.c.id)).scalars())
        cutoff, removed = time.time() - min_age_s, []
        for sub in folder.iterdir():
            if sub.name.isdigit() and int(sub.name) not in known and sub.stat().st_mtime < cutoff:
                shutil.rmtree(sub, ignore_errors=True)
                removed.append(int(sub.name))
        return sorted(removed)

    def patients(self) -> list[str]:
        """All pseudonyms, sorted."""
        with self.engine.connect() as conn:
            return sorted(conn.execute(select(t.patients.c.pseudonym)).scalars())

    def visits(self, pseudonym: str) -> list[VisitSummary]:
        """A patient's visits, oldest first (ties by save order)."""
        check_pseudonym(pseudonym)
        v, e = t.visits, t.easi
        n = select(func.count()).where(t.photos.c.visit_id == v.c.id).scalar_subquery()
        query = (select(v.c.id, v.c.visit_date, v.c.age, v.c.region, v.c.model_name,
                        v.c.model_version, n.label("n"), e.c.total, e.c.band, v.c.assessor,
                        v.c.model_hash)
                 .join(t.patients, t.patients.c.id == v.c.patient_id)
                 .outerjoin(e, e.c.visit_id == v.c.id)
                 .where(t.patients.c.pseudonym == pseudonym)
                 .order_by(v.c.visit_date, v.c.id))  # fmt: skip
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            VisitSummary(r["id"], dt.date.fromisoformat(r["visit_date"]), r["age"], r["region"],
                         r["n"], r["total"], r["band"],
                         f"{r['model_name'] or ''} {r['model_version'] or ''}".strip(), r["assessor"],
                         r["model_hash"])
            for r in rows
        ]  # fmt: skip

    def load(self, visit_id: int) -> Assessment:
        """One stored visit with its photos' stored images and maps (for side by side)."""
        with self.engine.connect() as conn:
            data = conn.execute(select(t.visits.c.assessment_json)
                                .where(t.visits.c.id == visit_id)).scalar()  # fmt: skip
            if data is None:
                raise KeyError(f"no visit with id {visit_id}")
            photos = conn.execute(select(t.photos.c.image_path, t.photos.c.maps_path)
                                  .where(t.photos.c.visit_id == visit_id)
                                  .order_by(t.photos.c.position)).all()  # fmt: skip
        a = Assessment.from_dict(json.loads(data))
        for photo, (image_path, maps_path) in zip(a.photos, photos, strict=True):
            _attach_pixels(photo, self.folder, image_path, maps_path)
        return a

    def visit_owner(self, visit_id: int) -> str | None:
        """The pseudonym a visit belongs to (None: no such visit)."""
        with self.engine.connect() as conn:
            return conn.execute(select(t.patients.c.pseudonym)
                                .join(t.visits, t.visits.c.patient_id == t.patients.c.id)
                                .where(t.visits.c.id == visit_id)).scalar()  # fmt: skip

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
        v, p, s = t.visits, t.photos, t.sign_scores
        mine = (select(v.c.id).join(t.patients, t.patients.c.id == v.c.patient_id)
                .where(t.patients.c.pseudonym == pseudonym))  # fmt: skip
        signs = (select(v.c.id, v.c.visit_date, s.c.sign, func.avg(s.c.score))
                 .join(p, p.c.visit_id == v.c.id).join(s, s.c.photo_id == p.c.id)
                 .where(v.c.id.in_(mine)).group_by(v.c.id, v.c.visit_date, s.c.sign))  # fmt: skip
        easi = (select(v.c.id, v.c.visit_date, t.easi.c.total)
                .join(t.easi, t.easi.c.visit_id == v.c.id).where(v.c.id.in_(mine)))  # fmt: skip
        with self.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(signs)]
            rows += [(i, d, EASI_SERIES, total) for i, d, total in conn.execute(easi)]
            stored = conn.execute(select(v.c.assessment_json).where(v.c.id.in_(mine))
                                  .order_by(v.c.id)).scalars().all()  # fmt: skip
        # Signs in the model's order, as first saved; EASI last.
        order: dict[str, int] = {}
        for data in stored:
            for sign in json.loads(data).get("signs", []):
                order.setdefault(sign, len(order))
        df = pd.DataFrame(rows, columns=["visit_id", "visit_date", "series", "value"])
        df["value"] = df["value"].astype(float)
        df["visit_date"] = pd.to_datetime(df["visit_date"])
        df["k"] = df["series"].map(lambda x: order.get(x, len(order) if x != EASI_SERIES else np.inf))
        df = df.sort_values(["k", "series", "visit_date", "visit_id"], kind="stable")
        df = df.drop(columns="k")
        base = df.groupby("series")["value"].transform("first")
        df["change_pct"] = np.where(
            base > 0, (df["value"] - base) / base.where(base > 0) * 100, np.nan
        )
        return df.reset_index(drop=True)

    def delete_patient(self, pseudonym: str, actor: str = "local") -> int:
        """Erase a patient, their visits and stored images; return the number of visits.
        The audit trail keeps the deletion (who, when, which visits)."""
        check_pseudonym(pseudonym)
        v = t.visits
        with db.write(self.engine) as conn:
            ids = conn.execute(select(v.c.id).join(t.patients, t.patients.c.id == v.c.patient_id)
                               .where(t.patients.c.pseudonym == pseudonym)).scalars().all()  # fmt: skip
            conn.execute(t.patients.delete().where(t.patients.c.pseudonym == pseudonym))
            conn.execute(t.audit.insert().values(
                at=now(), actor=actor, action="delete", visit_id=None, pseudonym=pseudonym,
                detail=f"erased {len(ids)} visit(s): {', '.join(map(str, ids))}"))  # fmt: skip
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
