"""One visit's assessment: patient fields, per-photo results, EASI. Shared by report and history.

Data flows one way: a model result -> `PhotoResult.from_prediction` -> `Assessment` ->
report (CSV/JSON/PDF) and history (SQLite). Nothing here imports streamlit; from the model,
only the patient checks (`model.inference.check_age`, `check_sex`). The age may be unknown
(None): the model takes it as unknown, EASI uses the 8-and-over weights and says so.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dashboard.easi import REGIONS, EasiResult
from model.inference import check_age, check_sex, resize_mask

# The severity scale when nothing else is known (a model's config.json says its own).
DEFAULT_MAX_SCORE = 3.0
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 1.5, 2.5)
DEFAULT_LABELS: tuple[str, ...] = ("none", "mild", "moderate", "severe")
PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DISCLAIMER = (
    "Not a medical device. The scores are decision support for a qualified clinician, "
    "who has the last word; they do not replace clinical examination or judgement."
)
SYNTHETIC_NOTICE = "Demo model: trained on synthetic images, not for clinical use."


def check_pseudonym(pseudonym: str) -> str:
    """A pseudonym code (not a name): 1-64 letters, digits, '.', '_' or '-', no spaces."""
    value = (pseudonym or "").strip()
    if not PSEUDONYM_RE.match(value):
        raise ValueError(
            "pseudonym must be a code of 1-64 letters, digits, '.', '_' or '-' "
            f"(no spaces, never the patient's name), got {pseudonym!r}"
        )
    return value


def check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"unknown body region {region!r}; allowed: {', '.join(REGIONS)}")
    return region


@dataclass
class PhotoResult:
    """The model's reading of one photo, with display-size pixels for overlays.

    scores: {sign: 0..max_score}; labels: {sign: label name}; affected_area: {sign: 0..1};
    uncertainty: {sign: (low, high)} or None; image: (h, w, 3) uint8 RGB display image (or
    raw image bytes when loaded for storage); maps: (n_signs, h, w) float32 on 0..max_score.
    check: the photo checks' verdict (pass, warn, fail; None for visits saved before the
    checks existed) and check_reasons its reasons; skin_fraction: 0..1 of the photo; skin:
    (h, w) bool skin mask at the display size; confirmed: the clinician looked at a failed
    photo and asked for its labels (a failed photo's labels are withheld until then);
    skin_corrected: the clinician corrected the skin mask (`skin` is theirs, the scores were
    recomputed over it) and model_skin is the model's mask, kept for reset.
    """

    name: str
    region: str
    scores: dict[str, float]
    labels: dict[str, str]
    affected_area: dict[str, float]
    uncertainty: dict[str, tuple[float, float]] | None = None
    image: np.ndarray | bytes | None = None
    maps: np.ndarray | None = None
    check: str | None = None
    check_reasons: list[str] = field(default_factory=list)
    skin_fraction: float | None = None
    skin: np.ndarray | None = None
    confirmed: bool = False
    skin_corrected: bool = False
    model_skin: np.ndarray | None = None

    @property
    def failed(self) -> bool:
        """The photo failed the checks (not skin, or too blurred, dark, bright or small)."""
        return self.check == "fail"

    @property
    def labels_shown(self) -> bool:
        """Labels and overlays are shown: the photo did not fail, or the clinician confirmed it."""
        return not self.failed or self.confirmed

    @classmethod
    def from_prediction(
        cls, name: str, region: str, result: Any, max_side: int = 768
    ) -> PhotoResult:
        """Copy what the page and the report need out of a `predictor.predict` result."""
        image, maps = result.preview(max_side=max_side)
        unc = result.uncertainty
        skin = getattr(result, "skin", None)
        if skin is not None:
            skin = resize_mask(skin, *maps.shape[1:])
        return cls(
            name=name,
            region=check_region(region),
            scores={k: float(v) for k, v in result.scores.items()},
            labels=dict(result.labels),
            affected_area={k: float(v) for k, v in result.affected_area.items()},
            uncertainty=None
            if unc is None
            else {k: (float(a), float(b)) for k, (a, b) in unc.items()},
            image=np.asarray(image),
            maps=np.asarray(maps, dtype=np.float32),
            check=getattr(result, "check", None),
            check_reasons=list(getattr(result, "check_reasons", ())),
            skin_fraction=None if getattr(result, "skin_fraction", None) is None else float(result.skin_fraction),
            skin=skin,
        )

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixels): per sign score, label, area %, uncertainty; the
        photo checks (verdict, reasons, skin %, whether a failed photo was confirmed); whether
        the clinician corrected the skin mask."""
        signs = {}
        for sign, score in self.scores.items():
            band = (self.uncertainty or {}).get(sign)
            signs[sign] = {
                "score": round(score, 2),
                # a failed photo's labels are withheld until the clinician confirms it
                "label": self.labels.get(sign, "") if self.labels_shown else None,
                "affected_area_pct": round(100 * self.affected_area.get(sign, 0.0), 1),
                "uncertainty": None if band is None else [round(band[0], 2), round(band[1], 2)],
            }
        check = None if self.check is None else {
            "verdict": self.check, "reasons": list(self.check_reasons), "confirmed": self.confirmed,
            "skin_pct": None if self.skin_fraction is None else round(100 * self.skin_fraction, 1)}
        return {"name": self.name, "region": self.region, "signs": signs, "check": check,
                "skin_corrected": self.skin_corrected}

    @classmethod
    def from_dict(cls, data: dict) -> PhotoResult:
        signs = data["signs"]
        unc = {s: tuple(v["uncertainty"]) for s, v in signs.items() if v.get("uncertainty")}
        check = data.get("check") or {}
        skin = check.get("skin_pct")
        return cls(
            name=data["name"],
            region=check_region(data["region"]),
            scores={s: float(v["score"]) for s, v in signs.items()},
            labels={s: v["label"] or "" for s, v in signs.items()},
            affected_area={s: float(v["affected_area_pct"]) / 100 for s, v in signs.items()},
            uncertainty=unc or None,
            check=check.get("verdict"),
            check_reasons=list(check.get("reasons", [])),
            skin_fraction=None if skin is None else float(skin) / 100,
            confirmed=bool(check.get("confirmed", False)),
            skin_corrected=bool(data.get("skin_corrected", False)),
        )


@dataclass
class Assessment:
    """One visit: who, when, the model used, each photo's result and the EASI (if computed).

    model: predictor.info ({name, version, synthetic, description}); signs, max_score,
    thresholds and label_names as in the model's config.
    """

    pseudonym: str
    visit_date: dt.date
    age: float | None  # years; None = unknown
    sex: str | None
    region: str
    photos: list[PhotoResult] = field(default_factory=list)
    easi: EasiResult | None = None
    model: dict = field(default_factory=dict)
    signs: list[str] = field(default_factory=list)
    max_score: float = DEFAULT_MAX_SCORE
    thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    label_names: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))

    def __post_init__(self) -> None:
        self.pseudonym = check_pseudonym(self.pseudonym)
        self.age = check_age(self.age)
        self.sex = check_sex(self.sex)
        self.region = check_region(self.region)
        if isinstance(self.visit_date, str):
            self.visit_date = dt.date.fromisoformat(self.visit_date)
        if isinstance(self.visit_date, dt.datetime):
            self.visit_date = self.visit_date.date()
        if not isinstance(self.visit_date, dt.date):
            raise ValueError(f"visit date must be a date (YYYY-MM-DD), got {self.visit_date!r}")
        if not self.signs and self.photos:
            self.signs = list(self.photos[0].scores)

    @property
    def synthetic(self) -> bool:
        return bool(self.model.get("synthetic", False))

    @property
    def notices(self) -> list[str]:
        """Disclaimer lines every export carries (plus the demo-model notice)."""
        return [DISCLAIMER] + ([SYNTHETIC_NOTICE] if self.synthetic else [])

    @property
    def scored_photos(self) -> list[PhotoResult]:
        """The photos whose scores count: all but failed photos the clinician did not confirm."""
        return [p for p in self.photos if p.labels_shown]

    @property
    def age_text(self) -> str:
        """The age for people: '34 years', '7.5 years' or 'unknown'."""
        return "unknown" if self.age is None else f"{self.age:g} years"

    def mean_scores(self) -> dict[str, float]:
        """{sign: mean score over the scored photos}: the visit's value for trends."""
        out = {}
        for sign in self.signs:
            values = [p.scores[sign] for p in self.scored_photos if sign in p.scores]
            if values:
                out[sign] = float(np.mean(values))
        return out

    def to_dict(self) -> dict:
        return {
            "format": "dermsev-assessment",
            "format_version": 1,
            "pseudonym": self.pseudonym,
            "visit_date": self.visit_date.isoformat(),
            "age": self.age,
            "sex": self.sex,
            "region": self.region,
            "model": {
                "name": self.model.get("name", ""),
                "version": self.model.get("version", ""),
                "synthetic": self.synthetic,
            },
            "signs": list(self.signs),
            "max_score": self.max_score,
            "thresholds": list(self.thresholds),
            "label_names": list(self.label_names),
            "photos": [p.to_dict() for p in self.photos],
            "easi": None if self.easi is None else self.easi.to_dict(),
            "disclaimer": " ".join(self.notices),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Assessment:
        if data.get("format") != "dermsev-assessment":
            raise ValueError("not a dermsev assessment (missing format: dermsev-assessment)")
        return cls(
            pseudonym=data["pseudonym"],
            visit_date=dt.date.fromisoformat(data["visit_date"]),
            age=data.get("age"),
            sex=data.get("sex"),
            region=data["region"],
            photos=[PhotoResult.from_dict(p) for p in data.get("photos", [])],
            easi=None if data.get("easi") is None else EasiResult.from_dict(data["easi"]),
            model=dict(data.get("model", {})),
            signs=list(data.get("signs", [])),
            max_score=float(data.get("max_score", DEFAULT_MAX_SCORE)),
            thresholds=[float(t) for t in data.get("thresholds", DEFAULT_THRESHOLDS)],
            label_names=list(data.get("label_names", DEFAULT_LABELS)),
        )
