"""The dataset contract (SPEC: dataset.yaml + manifest.csv + images/ + masks/), read and checked.

Every mistake a user can make in a dataset is reported as a DermsevError naming the row and
file, at load time, before any training starts.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from model.data.io import IGNORE, image_shape, read_image, read_mask
from model.data.patient import check_age, check_sex
from model.data.scores import mask_image_score
from model.errors import DermsevError

SPLITS = ("train", "val", "test")
# Optional manifest column: a per-image skin mask (1 skin, 0 background/clothing/hair, 255 unknown).
SKIN_COLUMN = "skin_mask"
DEFAULT_LABELS = ("none", "mild", "moderate", "severe")


@dataclass(frozen=True)
class DatasetSpec:
    """What dataset.yaml says: sign names, the top of the severity scale, channel names."""

    signs: tuple[str, ...] = ("erythema", "papulation", "excoriation", "lichenification")
    max_score: float = 3.0
    channels: tuple[str, ...] = ("red", "green", "blue")
    labels: tuple[str, ...] = DEFAULT_LABELS

    def __post_init__(self) -> None:
        if not self.signs:
            raise DermsevError("dataset.yaml: 'signs' must list at least one sign")
        if len(set(self.signs)) != len(self.signs):
            raise DermsevError(f"dataset.yaml: duplicate sign names in {list(self.signs)}")
        if not self.channels:
            raise DermsevError("dataset.yaml: 'channels' must list at least one channel")
        if not (0 < self.max_score < IGNORE):
            raise DermsevError(f"dataset.yaml: max_score must be between 1 and 254, got {self.max_score}")
        if len(self.labels) != int(math.floor(self.max_score)) + 1:
            raise DermsevError(
                f"dataset.yaml: 'labels' needs one name per level 0..{int(self.max_score)}, "
                f"got {len(self.labels)}"
            )

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Label cut-points halfway between integer levels: 0.5, 1.5, 2.5 for max_score 3."""
        return tuple(k + 0.5 for k in range(int(math.floor(self.max_score))))

    @classmethod
    def from_mapping(cls, raw: dict, path: Path) -> DatasetSpec:
        """The spec from dataset.yaml's parsed content (`path` names it in errors)."""
        if not isinstance(raw, dict):
            raise DermsevError(f"{path}: expected a mapping with signs, max_score, channels")
        try:
            max_score = float(raw.get("max_score", 3))
        except (TypeError, ValueError):
            raise DermsevError(f"{path}: max_score must be a number") from None
        signs = tuple(str(s) for s in raw.get("signs") or ())
        channels = tuple(str(c) for c in raw.get("channels") or ("red", "green", "blue"))
        n_levels = int(math.floor(max_score)) + 1
        default_labels = DEFAULT_LABELS if n_levels == 4 else tuple(str(k) for k in range(n_levels))
        labels = tuple(str(x) for x in raw.get("labels") or default_labels)
        for bad in (s for s in signs if not s.replace("_", "").replace("-", "").isalnum()):
            raise DermsevError(f"{path}: sign name {bad!r} may only use letters, digits, '_' and '-'")
        return cls(signs=signs, max_score=max_score, channels=channels, labels=labels)


def read_yaml(path: Path):
    """dataset.yaml's content (any YAML value; the spec checks it is a mapping)."""
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DermsevError(f"{path}: dataset.yaml not found") from None
    except yaml.YAMLError as exc:
        raise DermsevError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


@dataclass
class Record:
    """One manifest row, with paths resolved and values parsed."""

    id: str
    image: Path
    patient_id: str
    row: int
    age: float | None = None
    sex: str | None = None
    fitzpatrick: int | None = None
    split: str | None = None
    masks: dict[str, Path | None] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    skin_mask: Path | None = None  # (H, W) uint8: 1 skin, 0 not skin, 255 unknown


@dataclass
class Dataset:
    root: Path
    spec: DatasetSpec
    records: list[Record]
    extra: dict = field(default_factory=dict)

    def subset(self, split: str) -> list[Record]:
        return [r for r in self.records if split == "all" or r.split == split]


def _parse_float(value: str, what: str, where: str, lo: float, hi: float | None) -> float | None:
    value = value.strip()
    if value == "":
        return None
    try:
        x = float(value)
    except ValueError:
        raise DermsevError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(x) or x < lo or (hi is not None and x > hi):
        rng = f"{lo:g}..{hi:g}" if hi is not None else f">= {lo:g}"
        raise DermsevError(f"{where}: {what} {value!r} is out of range ({rng})")
    return x


def load_dataset(root: str | Path, check_files: bool = True) -> Dataset:
    """Read and validate DATASET/ (dataset.yaml, manifest.csv and every file they name)."""
    root = Path(root)
    if not root.is_dir():
        raise DermsevError(f"{root}: dataset folder not found")
    raw_yaml = read_yaml(root / "dataset.yaml")
    spec = DatasetSpec.from_mapping(raw_yaml, root / "dataset.yaml")
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise DermsevError(f"{manifest}: manifest.csv not found")
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in reader]
    for col in ("id", "image"):
        if col not in header:
            raise DermsevError(f"{manifest}: required column {col!r} is missing (have {header})")
    for col in header:
        for prefix in ("mask_", "score_"):
            if col.startswith(prefix) and col[len(prefix):] not in spec.signs:
                raise DermsevError(
                    f"{manifest}: column {col!r} names sign {col[len(prefix):]!r}, "
                    f"which is not in dataset.yaml signs {list(spec.signs)}"
                )
    if not rows:
        raise DermsevError(f"{manifest}: no rows")

    records: list[Record] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"manifest.csv line {i}"
        rid = row["id"].strip()
        if not rid:
            raise DermsevError(f"{where}: empty id")
        if rid in seen:
            raise DermsevError(f"{where}: duplicate id {rid!r} (first on line {seen[rid]})")
        seen[rid] = i
        where = f"{where} (id {rid})"
        if not row["image"].strip():
            raise DermsevError(f"{where}: empty image path")
        try:
            sex = check_sex(row.get("sex", ""))
            age = check_age(row.get("age", ""))
        except DermsevError as exc:
            raise DermsevError(f"{where}: {exc}") from None
        split = row.get("split", "").strip().lower() or None
        if split not in (None, *SPLITS):
            raise DermsevError(f"{where}: split {row['split']!r} must be one of {list(SPLITS)} or blank")
        fitz = _parse_float(row.get("fitzpatrick", ""), "fitzpatrick", where, 1, 6)
        if fitz is not None and fitz != int(fitz):
            raise DermsevError(f"{where}: fitzpatrick {row['fitzpatrick']!r} must be a whole number 1..6")
        rec = Record(
            id=rid,
            image=root / row["image"].strip(),
            patient_id=row.get("patient_id", "").strip() or rid,
            row=i,
            age=age,
            sex=sex,
            fitzpatrick=int(fitz) if fitz is not None else None,
            split=split,
        )
        skin = row.get(SKIN_COLUMN, "").strip()
        rec.skin_mask = root / skin if skin else None
        for sign in spec.signs:
            m = row.get(f"mask_{sign}", "").strip()
            rec.masks[sign] = root / m if m else None
            rec.scores[sign] = _parse_float(
                row.get(f"score_{sign}", ""), f"score_{sign}", where, 0, spec.max_score
            )
        if check_files:
            _check_files(rec, spec, where)
        records.append(rec)
    return Dataset(root=root, spec=spec, records=records, extra=raw_yaml)


def _check_files(rec: Record, spec: DatasetSpec, where: str) -> None:
    """Image readable with the declared channel count; masks the image's size with valid values."""
    h, w, c = image_shape(rec.image, f"{where}: image {rec.image.name}")
    if c != len(spec.channels):
        raise DermsevError(
            f"{where}: image {rec.image.name} has {c} channel(s), dataset.yaml declares "
            f"{len(spec.channels)} {list(spec.channels)}"
        )
    for sign, path in rec.masks.items():
        if path is None:
            continue
        label = f"{where}: mask_{sign} {path.name}"
        mask = read_mask(path, label)
        if mask.shape != (h, w):
            raise DermsevError(f"{label}: mask is {mask.shape[1]}x{mask.shape[0]}, image is {w}x{h}")
        bad = (mask > spec.max_score) & (mask != IGNORE)
        if bad.any():
            raise DermsevError(
                f"{label}: mask value {int(mask[bad][0])} outside 0..{int(spec.max_score)} and {IGNORE}"
            )
        if rec.scores[sign] is None:
            rec.scores[sign] = mask_image_score(mask, spec.max_score)
    if rec.skin_mask is not None:
        label = f"{where}: {SKIN_COLUMN} {rec.skin_mask.name}"
        mask = read_mask(rec.skin_mask, label)
        if mask.shape != (h, w):
            raise DermsevError(f"{label}: mask is {mask.shape[1]}x{mask.shape[0]}, image is {w}x{h}")
        bad = (mask > 1) & (mask != IGNORE)
        if bad.any():
            raise DermsevError(f"{label}: skin mask value {int(mask[bad][0])} is not 0 (not skin), 1 (skin) or {IGNORE}")


def load_skin(rec: Record, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 skin mask of a record: 1 skin, 0 not skin, IGNORE where unknown (all IGNORE
    without a `skin_mask` column)."""
    if rec.skin_mask is None:
        return np.full(shape, IGNORE, np.uint8)
    return read_mask(rec.skin_mask, f"manifest.csv line {rec.row} (id {rec.id}): {SKIN_COLUMN}")


def load_example(rec: Record, spec: DatasetSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """Decode one record: image (H, W, C) float32 0..1 and one (H, W) uint8 mask per sign.

    A sign without a mask gets an all-IGNORE mask, so the pixel loss skips it.
    """
    from model.data.io import to_float

    label = f"manifest.csv line {rec.row} (id {rec.id})"
    img = to_float(read_image(rec.image, name=f"{label}: image {rec.image.name}"))
    if img.shape[2] != len(spec.channels):
        raise DermsevError(f"{label}: image has {img.shape[2]} channels, expected {len(spec.channels)}")
    h, w = img.shape[:2]
    masks = []
    for sign in spec.signs:
        path = rec.masks.get(sign)
        if path is None:
            masks.append(np.full((h, w), IGNORE, np.uint8))
        else:
            masks.append(read_mask(path, f"{label}: mask_{sign}"))
    return img, masks


def load_for_model(root: str | Path, signs: list[str], n_channels: int) -> Dataset:
    """`load_dataset`, refused unless its signs (names and order) and channel count are a model's."""
    ds = load_dataset(root)
    if list(ds.spec.signs) != list(signs):
        raise DermsevError(f"{root}: dataset signs {list(ds.spec.signs)} differ from the model's {list(signs)}")
    if len(ds.spec.channels) != n_channels:
        raise DermsevError(f"{root}: dataset has {len(ds.spec.channels)} channels, the model expects {n_channels}")
    return ds
