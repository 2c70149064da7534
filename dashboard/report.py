"""Exports of an assessment: CSV and JSON summaries and a PDF report (reportlab).

CSV: one tidy table, one row per record. `record` says what a row is:
  sign            one photo x one sign: score (2 decimals), label, affected_area_pct,
                  uncertainty_low/high (blank without test-time augmentation), and the
                  photo checks: check (pass, warn, fail), check_reasons ("; "-joined); a
                  failed photo's label reads "withheld" until the clinician confirmed it;
                  skin_mask: whose skin mask the score and area are taken over, "model" or
                  "clinician" (corrected in the dashboard)
  easi_intensity  one EASI region x sign: the intensity used (clinician-checked)
  easi_region     one EASI region: score (region score), area_score
  easi_total      score = total EASI, label = severity band
  notice          label = the disclaimer (and the demo-model notice)
Every row repeats pseudonym, visit date, age, sex and the model's name and version, so a
filtered or concatenated table still says whose and which model.

JSON: `Assessment.to_dict()`; `assessment_from_json` reads it back.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from dashboard.assessment import Assessment
from dashboard.easi import EASI_SIGNS, MAX_AREA_SCORE, MAX_EASI, REGION_LABELS
from dashboard.figures import band_layer, downsample

CSV_COLUMNS = [
    "record", "pseudonym", "visit_date", "age", "sex", "region", "photo", "sign", "score",
    "label", "affected_area_pct", "uncertainty_low", "uncertainty_high", "area_score",
    "model_name", "model_version", "check", "check_reasons", "skin_mask",
]  # fmt: skip
MASK_CORRECTED = "Skin mask corrected by the clinician: scores and affected area are taken over it."
WITHHELD = "withheld"  # the label of a failed photo the clinician has not confirmed


def safe_name(text: str, fallback: str = "patient") -> str:
    """A file-name-safe version of a pseudonym: [A-Za-z0-9._-] only, no leading dot, <= 64."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._-")
    cleaned = re.sub(r"_+", "_", cleaned)[:64]
    return cleaned or fallback


def file_name(assessment: Assessment, ext: str) -> str:
    """dermsev_<pseudonym>_<YYYY-MM-DD>.<ext>"""
    date = assessment.visit_date.isoformat()
    return f"dermsev_{safe_name(assessment.pseudonym)}_{date}.{ext.lstrip('.')}"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def csv_rows(assessment: Assessment) -> list[dict[str, str]]:
    """The CSV table as dicts keyed by CSV_COLUMNS (strings, blanks for not applicable)."""
    a = assessment
    common = {
        "pseudonym": a.pseudonym,
        "visit_date": a.visit_date.isoformat(),
        "age": "" if a.age is None else f"{a.age:g}",  # blank = unknown, as in manifest.csv
        "sex": a.sex or "",
        "model_name": str(a.model.get("name", "")),
        "model_version": str(a.model.get("version", "")),
    }
    rows = []

    def add(**fields):
        rows.append({c: "" for c in CSV_COLUMNS} | common | fields)

    for photo in a.photos:
        d = photo.to_dict()["signs"]
        for sign, s in d.items():
            low, high = s["uncertainty"] or (None, None)
            add(record="sign", region=photo.region, photo=photo.name, sign=sign,
                score=_fmt(s["score"]), label=WITHHELD if s["label"] is None else s["label"],
                affected_area_pct=_fmt(s["affected_area_pct"], 1),
                uncertainty_low=_fmt(low), uncertainty_high=_fmt(high),
                check=photo.check or "", check_reasons="; ".join(photo.check_reasons),
                skin_mask="clinician" if photo.skin_corrected else "model")  # fmt: skip
    if a.easi is not None:
        for region, r in a.easi.regions.items():
            for sign in EASI_SIGNS:
                add(record="easi_intensity", region=region, sign=sign,
                    score=_fmt(r.intensities[sign]))  # fmt: skip
            add(record="easi_region", region=region, score=_fmt(r.score),
                area_score=str(r.area))  # fmt: skip
        add(record="easi_total", score=_fmt(a.easi.total), label=a.easi.band)
    for notice in a.notices:
        add(record="notice", label=notice)
    return rows


def to_csv(assessment: Assessment) -> str:
    """The CSV summary as text (UTF-8, comma-separated, header row first)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(assessment))
    return buf.getvalue()


def to_json(assessment: Assessment) -> str:
    """The JSON summary (see Assessment.to_dict), with the export time."""
    data = assessment.to_dict()
    data["exported_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return json.dumps(data, indent=2, ensure_ascii=False)


def assessment_from_json(text: str | bytes) -> Assessment:
    """Read a JSON summary back (pixels are not part of it)."""
    return Assessment.from_dict(json.loads(text))


# ---- PDF ---------------------------------------------------------------------------------

_INK = colors.HexColor("#1f2d3d")
_RULE = colors.HexColor("#c9d3dd")
_SHADE = colors.HexColor("#eef3f7")
_WARN = colors.HexColor("#fff4e5")


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontSize=9.5, leading=12,
                          textColor=_INK)  # fmt: skip
    return {
        "title": ParagraphStyle(
            "title", parent=base["Title"], fontSize=17, alignment=0, textColor=_INK, spaceAfter=4
        ),  # fmt: skip
        "h2": ParagraphStyle(
            "h2", parent=base["Heading2"], fontSize=12, textColor=_INK, spaceBefore=8, spaceAfter=4
        ),  # fmt: skip
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=10),
        "notice": ParagraphStyle(
            "notice",
            parent=body,
            fontSize=9.5,
            leading=12,
            backColor=_WARN,
            borderColor=colors.HexColor("#e0a050"),
            borderWidth=0.6,
            borderPadding=5,
            spaceBefore=4,
            spaceAfter=8,
        ),  # fmt: skip
    }


def _table(data: list[list], widths: list[float] | None = None) -> Table:
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 8.5),
        ("TEXTCOLOR", (0, 0), (-1, -1), _INK),
        ("BACKGROUND", (0, 0), (-1, 0), _SHADE),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, _RULE),
        ("LINEBELOW", (0, -1), (-1, -1), 0.6, _RULE),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))  # fmt: skip
    return table


# Print size: a 4.2 cm map at 300 dpi is ~500 px; 640 px keeps detail for a zoomed screen.
PDF_PHOTO_SIDE = 640
PDF_JPEG_QUALITY = 85


def photo_jpeg(image: np.ndarray, max_side: int = PDF_PHOTO_SIDE) -> ImageReader:
    """A photo as a JPEG (embedded as is, DCT): the same bytes each time, so a PDF stores one copy."""
    buf = io.BytesIO()
    Image.fromarray(downsample(image, max_side)).save(buf, format="JPEG", quality=PDF_JPEG_QUALITY)
    buf.seek(0)
    return ImageReader(buf)


class _Layered(Flowable):
    """A photo with an optional transparent band layer drawn over it, at `width` (points)."""

    def __init__(self, photo: ImageReader, layer: Image.Image | None, width: float) -> None:
        super().__init__()
        w, h = photo.getSize()
        self.photo, self.layer, self.width, self.height = photo, layer, width, width * h / w

    def draw(self) -> None:
        self.canv.drawImage(self.photo, 0, 0, self.width, self.height)
        if self.layer is not None:  # palette PNG with per-band alpha: stored deflated
            self.canv.drawImage(ImageReader(self.layer), 0, 0, self.width, self.height, mask="auto")


def _overlay_row(a: Assessment, photo, styles) -> list:
    """One photo: its name and one Pillow-rendered overlay per sign, in a row."""
    if not isinstance(photo.image, np.ndarray) or photo.maps is None:
        return []
    title = Paragraph(
        f"<b>{escape(photo.name)}</b> &middot; {escape(REGION_LABELS[photo.region])}",
        styles["body"],
    )
    check = [Paragraph(escape(check_line(photo)), styles["notice"])] if photo.check_reasons else []
    if photo.skin_corrected:
        check.append(Paragraph(MASK_CORRECTED, styles["small"]))
    if not photo.labels_shown:  # the photo only, no severity colours on it
        return [KeepTogether([title, *check, Spacer(1, 2), _Layered(photo_jpeg(photo.image), None, 4.2 * cm),
                              Spacer(1, 6)])]
    n = len(a.signs)
    width = min(4.2 * cm, 17 * cm / max(n, 1))
    cells, captions = [], []
    jpeg = photo_jpeg(photo.image)
    w, h = jpeg.getSize()
    for i, sign in enumerate(a.signs):
        layer = band_layer(photo.maps[i], (h, w), a.max_score, thresholds=a.thresholds, opacity=0.55)
        cells.append(_Layered(jpeg, layer, width))
        score = photo.scores.get(sign)
        label = photo.labels.get(sign, "")
        captions.append(
            Paragraph(f"{escape(sign)}: {_fmt(score)} ({escape(label)})", styles["small"])
        )
    grid = Table([cells, captions], colWidths=[width + 4] * n, hAlign="LEFT")
    grid.setStyle(TableStyle([("LEFTPADDING", (0, 0), (-1, -1), 1),
                              ("RIGHTPADDING", (0, 0), (-1, -1), 1)]))  # fmt: skip
    return [KeepTogether([title, *check, Spacer(1, 2), grid, Spacer(1, 6)])]


def check_line(photo) -> str:
    """The photo checks in one line: 'Photo check: fail - reason; reason (confirmed by the clinician)'."""
    if photo.check is None:
        return ""
    line = f"Photo check: {photo.check}"
    if photo.check_reasons:
        line += " - " + "; ".join(photo.check_reasons)
    if photo.failed:
        line += " (scores confirmed by the clinician)" if photo.confirmed else " (labels withheld: not confirmed)"
    return line


def to_pdf(assessment: Assessment) -> bytes:
    """The PDF report (A4): patient, notices, overlays, score table, EASI, model, disclaimer."""
    a, styles = assessment, _styles()
    buf = io.BytesIO()
    model = f"{a.model.get('name', 'unknown model')} {a.model.get('version', '')}".strip()

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#5a6b7b"))
        canvas.drawString(2 * cm, 1.2 * cm, f"{a.pseudonym} · {a.visit_date.isoformat()} · {model}")
        canvas.drawRightString(A4[0] - 2 * cm, 1.2 * cm, f"page {doc.page}")
        canvas.drawString(2 * cm, 0.8 * cm, "Not a medical device. Decision support only.")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=2 * cm, rightMargin=2 * cm, topMargin=1.8 * cm,
        bottomMargin=2 * cm, title=f"dermsev report {a.pseudonym} {a.visit_date.isoformat()}",
        author="dermsev", subject="Skin severity assessment",
    )  # fmt: skip
    story = [Paragraph("Skin severity assessment", styles["title"])]
    patient = [
        ["Pseudonym", a.pseudonym, "Visit date", a.visit_date.isoformat()],
        ["Age", a.age_text, "Sex", a.sex or "unknown"],
        ["Body region", REGION_LABELS[a.region], "Model", model],
    ]
    table = Table(patient, colWidths=[2.8 * cm, 5.7 * cm, 2.6 * cm, 5.9 * cm], hAlign="LEFT")
    table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 9.5),
                               ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 9.5),
                               ("FONT", (2, 0), (2, -1), "Helvetica-Bold", 9.5),
                               ("TEXTCOLOR", (0, 0), (-1, -1), _INK)]))  # fmt: skip
    story += [table, Spacer(1, 6)]
    story += [Paragraph(escape(n), styles["notice"]) for n in a.notices]

    story.append(Paragraph("Severity maps", styles["h2"]))
    labels = " · ".join(
        f"{escape(name)} {'&lt;' if i == 0 else '&ge;'} {a.thresholds[max(i - 1, 0)]:g}"
        for i, name in enumerate(a.label_names)
    )
    story.append(Paragraph(f"Colour bands on 0-{a.max_score:g}: {labels}; "
                           "uncoloured skin scored none.", styles["small"]))  # fmt: skip
    for photo in a.photos:
        story += _overlay_row(a, photo, styles)

    story.append(Paragraph("Scores per photo and sign", styles["h2"]))
    rows = [["Photo", "Region", "Sign", "Score", "Label", "Affected area", "Uncertainty"]]
    for photo in a.photos:
        for sign, s in photo.to_dict()["signs"].items():
            unc = s["uncertainty"]
            rows.append([
                Paragraph(escape(photo.name) + ("<br/><i>skin mask corrected by the clinician</i>"
                                                if photo.skin_corrected else ""), styles["small"]),
                REGION_LABELS[photo.region],
                sign, _fmt(s["score"]), WITHHELD if s["label"] is None else s["label"],
                f"{s['affected_area_pct']:.1f} %",
                "-" if unc is None else f"{unc[0]:.2f} - {unc[1]:.2f}",
            ])  # fmt: skip
    story.append(
        _table(rows, [4.2 * cm, 2.3 * cm, 2.6 * cm, 1.3 * cm, 1.8 * cm, 2.2 * cm, 2.6 * cm])
    )

    story.append(Paragraph("EASI", styles["h2"]))
    if a.easi is None:
        story.append(Paragraph("Not computed for this visit.", styles["body"]))
    else:
        area = f"Area (0-{MAX_AREA_SCORE})"
        rows = [["Region", *[s.capitalize() for s in EASI_SIGNS], area, "Weight", "Score"]]
        for region, r in a.easi.regions.items():
            rows.append([REGION_LABELS[region], *[f"{r.intensities[s]:g}" for s in EASI_SIGNS],
                         str(r.area), f"{r.weight:g}", _fmt(r.score)])  # fmt: skip
        story.append(_table(rows))
        story.append(Spacer(1, 4))
        story.append(Paragraph(
            f"<b>Total EASI {a.easi.total:.2f} / {MAX_EASI:g} &middot; {escape(a.easi.band)}</b> "
            f"({escape(a.easi.weights_note)}; bands of Leshem et al. 2015)", styles["body"]))  # fmt: skip

    story.append(Paragraph("Model", styles["h2"]))
    desc = a.model.get("description", "")
    story.append(Paragraph(f"{escape(model)}. {escape(str(desc))}", styles["body"]))
    story.append(Spacer(1, 6))
    story += [Paragraph(escape(n), styles["small"]) for n in a.notices]
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()
