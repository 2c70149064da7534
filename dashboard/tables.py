"""The page's tables and labels: pandas frames and strings from results (no streamlit, no model).

score_table is one photo's scores, visits_table and change_table a patient's history;
visit_label and area_label name the options of the page's select boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dashboard.assessment import PhotoResult
from dashboard.easi import AREA_RANGES, REGION_LABELS
from dashboard.history import VisitSummary


def score_table(photo: PhotoResult, signs: Sequence[str]) -> pd.DataFrame:
    """One row per sign: score (2 decimals), label, affected area %, uncertainty band."""
    rows = []
    for sign in signs:
        band = (photo.uncertainty or {}).get(sign)
        rows.append(
            {
                "sign": sign,
                "score": round(photo.scores[sign], 2),
                "label": photo.labels[sign],
                "affected area %": round(100 * photo.affected_area[sign], 1),
                "uncertainty": "-" if band is None else f"{band[0]:.2f} - {band[1]:.2f}",
            }
        )
    return pd.DataFrame(rows)


def score_help(max_score: float, labels: Sequence[str]) -> str:
    """The score column's range, from the model's scale: "0 none .. 3 severe"."""
    return f"0 {labels[0]} .. {max_score:g} {labels[-1]}"


def area_label(score: int) -> str:
    """An EASI area score with its percentage range: 3 -> "3  (30-49 %)"."""
    low, high = AREA_RANGES[score]
    return f"{score}  ({low} %)" if score == 0 else f"{score}  ({low}-{high} %)"


def visits_table(visits: Sequence[VisitSummary]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "visit": v.id,
                "date": v.visit_date.isoformat(),
                "age": v.age,
                "region": REGION_LABELS.get(v.region, v.region),
                "photos": v.n_photos,
                "EASI": None if v.easi_total is None else round(v.easi_total, 2),
                "band": v.easi_band or "",
                "model": v.model,
            }
            for v in visits
        ],
        columns=["visit", "date", "age", "region", "photos", "EASI", "band", "model"],
    )


def visit_label(v: VisitSummary) -> str:
    easi = "" if v.easi_total is None else f", EASI {v.easi_total:.1f}"
    return f"{v.visit_date.isoformat()} (#{v.id}, {v.n_photos} photo(s){easi})"


def change_table(trend: pd.DataFrame) -> pd.DataFrame:
    """Per series: baseline value, latest value and change from baseline in %."""
    rows = []
    for series, part in trend.groupby("series", sort=False):
        last = part.iloc[-1]
        rows.append(
            {
                "": series,
                "baseline": round(part["value"].iloc[0], 2),
                "latest": round(last["value"], 2),
                "change %": None if pd.isna(last["change_pct"]) else round(last["change_pct"], 1),
            }
        )
    return pd.DataFrame(rows, columns=["", "baseline", "latest", "change %"])
