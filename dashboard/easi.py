"""EASI (Eczema Area and Severity Index) arithmetic: area scores, region weights, bands.

Pure functions, no UI. The clinician has the last word: the page pre-fills intensities from
the model's per-sign scores (`prefill_intensities`) and lets them be edited before calling
`compute_easi`.

Conventions (Hanifin et al. 2001; bands from Leshem et al. 2015):
- four signs, each an intensity on 0..3 (half points allowed; any value in range accepted,
  since the pre-filled model scores are continuous);
- area score 0..6 per region from the percentage of the region affected;
- region score = (sum of the 4 intensities) x area score x region weight;
- weights depend on age: 8 years and over 0.1/0.2/0.3/0.4, under 8 years 0.2/0.2/0.3/0.3
  (head_neck/upper_limbs/trunk/lower_limbs); total 0..72.
- an unknown age (None) gets the weights for 8 years and over, the usual case in a clinic
  that records no age, and says so (`EasiResult.age_assumed`, `weights_note`): the two
  sets differ only for head/neck and lower limbs, so the page asks for the age of a child.

Band edges: the published bands are written with one decimal (mild 1.1-7.0, moderate
7.1-21.0, ...), leaving gaps such as 1.0 < x < 1.1 that real totals do fall into (EASI moves
in steps of 0.05: 0.1 weight x 0.5 intensity x area 1). We read each band as running from just
above the previous band's upper value up to and including its own upper value, so a value in
a gap belongs to the *higher* band: 1.05 is mild, 7.05 moderate, 0.05 almost clear. Only
exactly 0 is clear. Totals are rounded to 2 decimals before banding so that floating-point
noise (7.000000001) cannot move a value across an edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from model.inference import check_age

REGIONS: tuple[str, ...] = ("head_neck", "upper_limbs", "trunk", "lower_limbs")
REGION_LABELS: dict[str, str] = {
    "head_neck": "Head and neck",
    "upper_limbs": "Upper limbs",
    "trunk": "Trunk",
    "lower_limbs": "Lower limbs",
}
EASI_SIGNS: tuple[str, ...] = ("erythema", "papulation", "excoriation", "lichenification")
# Model sign names that mean an EASI sign (datasets name them freely).
SIGN_ALIASES: dict[str, str] = {
    "erythema": "erythema",
    "redness": "erythema",
    "papulation": "papulation",
    "oedema": "papulation",
    "edema": "papulation",
    "oedema_papulation": "papulation",
    "edema_papulation": "papulation",
    "induration": "papulation",
    "excoriation": "excoriation",
    "excoriations": "excoriation",
    "lichenification": "lichenification",
}
WEIGHTS_ADULT: dict[str, float] = {
    "head_neck": 0.1,
    "upper_limbs": 0.2,
    "trunk": 0.3,
    "lower_limbs": 0.4,
}
WEIGHTS_CHILD: dict[str, float] = {
    "head_neck": 0.2,
    "upper_limbs": 0.2,
    "trunk": 0.3,
    "lower_limbs": 0.3,
}
CHILD_AGE_LIMIT = 8  # years; under this the child weights apply
MAX_INTENSITY = 3.0
MAX_AREA_SCORE = 6
MAX_EASI = 72.0

# (lower percent inclusive, upper percent as published) per area score.
AREA_RANGES: dict[int, tuple[int, int]] = {
    0: (0, 0),
    1: (1, 9),
    2: (10, 29),
    3: (30, 49),
    4: (50, 69),
    5: (70, 89),
    6: (90, 100),
}
# (upper value inclusive, band name); see the module docstring for the gaps.
BANDS: tuple[tuple[float, str], ...] = (
    (0.0, "clear"),
    (1.0, "almost clear"),
    (7.0, "mild"),
    (21.0, "moderate"),
    (50.0, "severe"),
    (MAX_EASI, "very severe"),
)


def area_score(percent: float) -> int:
    """Area score 0..6 from the percentage (0..100) of the region affected.

    Any involvement above 0 % scores at least 1 (0.5 % -> 1); a score changes at 10, 30, 50,
    70 and 90 % (9.9 % -> 1, 10 % -> 2).
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"affected area must be a percentage between 0 and 100, got {percent}")
    if percent == 0:
        return 0
    for score, edge in ((1, 10), (2, 30), (3, 50), (4, 70), (5, 90)):
        if percent < edge:
            return score
    return 6


def area_percent_range(score: int) -> tuple[int, int]:
    """The published percentage range (low, high) of an area score 0..6: 2 -> (10, 29)."""
    _check_area(score)
    return AREA_RANGES[int(score)]


def age_group(age: object) -> str:
    """ "child" (under 8 years) or "adult" (8 and over, or age unknown): which weights apply.

    age: years (checked by the model's rule, `model.inference.check_age`: 0..MAX_AGE) or None.
    """
    years = check_age(age)
    return "child" if years is not None and years < CHILD_AGE_LIMIT else "adult"


def region_weights(age: object) -> dict[str, float]:
    """Region weights for an age in years (None: unknown, the 8-and-over weights)."""
    return dict(WEIGHTS_CHILD if age_group(age) == "child" else WEIGHTS_ADULT)


def weights_note(age: float | None) -> str:
    """Which weights an EASI used, in words: 'weights for 8 years and over (age unknown)'."""
    if age is None:
        return "weights for 8 years and over (age unknown: enter the age for a child under 8)"
    return "weights for under 8 years" if age_group(age) == "child" else "weights for 8 years and over"


def severity_band(total: float) -> str:
    """Published severity band of an EASI total on 0..72 (gaps go to the higher band)."""
    if not 0 <= total <= MAX_EASI:
        raise ValueError(f"EASI total must be between 0 and {MAX_EASI:g}, got {total}")
    value = round(total, 2)
    for upper, name in BANDS:
        if value <= upper:
            return name
    return BANDS[-1][1]  # pragma: no cover - unreachable after the range check


def region_score(intensities: Mapping[str, float], area: int, region: str, age: float | None) -> float:
    """(sum of the 4 sign intensities) x area score x the region's weight for this age.

    intensities: {erythema, papulation, excoriation, lichenification: 0..3}; area: 0..6.
    """
    _check_region(region)
    _check_area(area)
    values = _check_intensities(intensities)
    return sum(values.values()) * int(area) * region_weights(age)[region]


@dataclass(frozen=True)
class RegionEasi:
    """One region's inputs and its score."""

    region: str
    intensities: dict[str, float]
    area: int
    weight: float
    score: float

    def to_dict(self) -> dict:
        return {
            "region": self.region,
            "intensities": dict(self.intensities),
            "area": self.area,
            "weight": self.weight,
            "score": round(self.score, 2),
        }


@dataclass(frozen=True)
class EasiResult:
    """Total EASI with its band, the age group used and the per-region breakdown.

    age: years, or None when unknown (then age_group is "adult": the 8-and-over weights).
    """

    age: float | None
    age_group: str
    regions: dict[str, RegionEasi] = field(default_factory=dict)
    total: float = 0.0
    band: str = "clear"

    def to_dict(self) -> dict:
        return {
            "age": self.age,
            "age_group": self.age_group,
            "total": round(self.total, 2),
            "band": self.band,
            "regions": {name: r.to_dict() for name, r in self.regions.items()},
        }

    @property
    def age_assumed(self) -> bool:
        """The age was unknown: the 8-and-over weights were used by default."""
        return self.age is None

    @property
    def weights_note(self) -> str:
        return weights_note(self.age)

    @classmethod
    def from_dict(cls, data: Mapping) -> EasiResult:
        """Rebuild (and re-check) from `to_dict` output: the score is recomputed."""
        regions = {name: (r["intensities"], r["area"]) for name, r in dict(data["regions"]).items()}
        return compute_easi(regions, data["age"])


def compute_easi(
    regions: Mapping[str, tuple[Mapping[str, float], int]], age: float | None
) -> EasiResult:
    """Total EASI from {region: (intensities, area score)}; regions left out count as 0.

    age: years, or None (unknown: the 8-and-over weights, see `weights_note`). Raises
    ValueError naming the allowed values for an unknown region or sign, an intensity
    outside 0..3, an area score outside 0..6 or an impossible age.
    """
    age = check_age(age)
    group = age_group(age)
    weights = region_weights(age)
    out: dict[str, RegionEasi] = {}
    for region in regions:
        _check_region(region)
    for region in REGIONS:
        if region not in regions:
            continue
        intensities, area = regions[region]
        score = region_score(intensities, area, region, age)
        out[region] = RegionEasi(
            region, _check_intensities(intensities), int(area), weights[region], score
        )
    total = round(sum(r.score for r in out.values()), 2)
    return EasiResult(age=age, age_group=group, regions=out, total=total, band=severity_band(total))


def easi_sign(name: str) -> str | None:
    """The EASI sign a model sign name stands for ("oedema" -> "papulation"), or None."""
    return SIGN_ALIASES.get(name.strip().lower().replace("/", "_").replace(" ", "_"))


def prefill_intensities(
    photo_scores: Iterable[Mapping[str, float]],
    step: float = 0.5,
    max_score: float = MAX_INTENSITY,
) -> dict[str, float]:
    """Starting intensities for one region from its photos' per-sign model scores.

    Each EASI sign gets the mean of its scores over the photos, put from the model's
    0..max_score onto EASI's 0..3 (x 3 / max_score; unchanged for a 0..3 model), rounded to the
    nearest `step` (half points, as clinicians score) and clipped to 0..3; a sign the model
    does not score, or a region with no photos, starts at 0. The clinician edits them afterwards.
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if max_score <= 0:
        raise ValueError(f"max_score must be positive, got {max_score}")
    sums = dict.fromkeys(EASI_SIGNS, 0.0)
    counts = dict.fromkeys(EASI_SIGNS, 0)
    for scores in photo_scores:
        for name, value in scores.items():
            sign = easi_sign(name)
            if sign is not None and value is not None:
                sums[sign] += float(value)
                counts[sign] += 1
    scale = MAX_INTENSITY / max_score  # exactly 1 for a 0..3 model
    out = {}
    for sign in EASI_SIGNS:
        mean = sums[sign] / counts[sign] * scale if counts[sign] else 0.0
        out[sign] = min(MAX_INTENSITY, max(0.0, round(mean / step) * step))
    return out


def _check_region(region: str) -> None:
    if region not in REGIONS:
        raise ValueError(f"unknown body region {region!r}; allowed: {', '.join(REGIONS)}")


def _check_area(area: int) -> None:
    if isinstance(area, bool) or area != int(area) or not 0 <= area <= MAX_AREA_SCORE:
        raise ValueError(f"area score must be an integer 0..{MAX_AREA_SCORE}, got {area!r}")


def _check_intensities(intensities: Mapping[str, float]) -> dict[str, float]:
    unknown = set(intensities) - set(EASI_SIGNS)
    if unknown:
        raise ValueError(
            f"unknown EASI sign(s) {sorted(unknown)}; allowed: {', '.join(EASI_SIGNS)}"
        )
    out = {}
    for sign in EASI_SIGNS:
        value = intensities.get(sign, 0.0)
        if value is None or isinstance(value, bool) or not 0 <= value <= MAX_INTENSITY:
            raise ValueError(
                f"{sign} intensity must be between 0 and {MAX_INTENSITY:g} "
                f"(0 none, 1 mild, 2 moderate, 3 severe), got {value!r}"
            )
        out[sign] = float(value)
    return out
