"""What the page does, without streamlit: choose the model, score a batch, pre-fill EASI.

The page (app.py) only turns widgets into calls to these functions and their results into
elements, so everything here is tested without a browser or AppTest. Tables: dashboard/tables.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard.assessment import Assessment, PhotoResult
from dashboard.colour import scoring_method
from dashboard.easi import EASI_SIGNS, REGIONS, prefill_intensities
from model.errors import DermsevError

log = logging.getLogger(__name__)
MODEL_ENV = "DERMSEV_MODEL"
UPLOAD_TYPES = ("jpg", "jpeg", "png", "tif", "tiff", "dcm")  # dcm: DICOM photos (model/data/dicom.py)
PREVIEW_SIDE = 768


def default_model_dir() -> str:
    """The model directory from $DERMSEV_MODEL; "" means the bundled demo model."""
    return os.environ.get(MODEL_ENV, "").strip()


@dataclass
class BatchResult:
    """Scored photos of one upload, and one message per photo that could not be scored."""

    photos: list[PhotoResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def score_files(
    predictor: Any,
    files: Iterable[tuple[str, bytes]],
    *,
    age: float | None,
    sex: str | None,
    region: str,
    tta: bool = True,
    white_balance: str = "grey-world",
    on_progress=None,
) -> BatchResult:
    """Score each (file name, bytes); a file that fails gets a one-line message and the rest
    of the batch is still scored. Nothing raised by one file stops the batch.

    white_balance: the page's choice (dashboard/colour.py CHOICES; "patch" scores with
    grey-world until a patch is picked). on_progress(i, n, name) is called before each file.
    """
    files = list(files)
    method = scoring_method(white_balance)
    if getattr(predictor, "rgb", True) is None:  # a model without red, green and blue channels
        method = "none"
    out = BatchResult()
    for i, (name, data) in enumerate(files):
        if on_progress is not None:
            on_progress(i, len(files), name)
        try:
            if not data:
                raise DermsevError(f"{name}: file is empty")
            result = predictor.predict(data, age=age, sex=sex, tta=tta, name=name, white_balance=method)
            out.photos.append(PhotoResult.from_prediction(name, region, result, PREVIEW_SIDE))
        except DermsevError as exc:
            msg = str(exc)
            out.errors.append(msg if msg.startswith(name) else f"{name}: {msg}")
        except MemoryError:
            out.errors.append(f"{name}: too large to score on this machine")
        except Exception as exc:  # a page must survive any one bad file
            log.exception("scoring %s failed", name)
            out.errors.append(f"{name}: could not be scored ({exc.__class__.__name__})")
    return out


def new_assessment(
    predictor: Any,
    batch: BatchResult,
    *,
    pseudonym: str,
    visit_date: dt.date,
    age: float | None,
    sex: str | None,
    region: str,
) -> Assessment:
    """An Assessment from the form fields and a scored batch (validates the fields)."""
    return Assessment(
        pseudonym=pseudonym,
        visit_date=visit_date,
        age=age,
        sex=sex,
        region=region,
        photos=list(batch.photos),
        model=dict(predictor.info),
        signs=list(predictor.signs),
        max_score=float(predictor.max_score),
        thresholds=list(predictor.thresholds),
        label_names=list(predictor.label_names),
    )


def easi_prefill(photos: Sequence[PhotoResult], max_score: float) -> dict[str, dict[str, float]]:
    """{region: {EASI sign: starting intensity}} from each region's photos (0 without any).

    max_score: the model's scale (Assessment.max_score); the intensities are on EASI's 0..3.
    """
    return {
        region: prefill_intensities(
            (p.scores for p in photos if p.region == region), max_score=max_score
        )
        for region in REGIONS
    }


def easi_inputs(
    values: Mapping[str, float], areas: Mapping[str, int]
) -> dict[str, tuple[dict[str, float], int]]:
    """Widget values {f"{region}:{sign}": x} and {region: area} -> compute_easi's input."""
    return {
        region: ({s: float(values[f"{region}:{s}"]) for s in EASI_SIGNS}, int(areas[region]))
        for region in REGIONS
    }
