"""`dermsev predict`: score images (files or folders), streaming, one row per image.

`Predictor.predict_many` decodes in a small thread pool ahead of the model (Pillow releases
the GIL while it decodes) and batches the forward; results are written as they come, so
memory stays bounded for any number of images; a file that cannot be read is reported and
skipped, never ending the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from model.cli import interop
from model.cli.common import expand_inputs, output_stems, resolve_model
from model.data.colour import check_method
from model.data.patient import check_age
from model.errors import DermsevError

if TYPE_CHECKING:
    from model.inference import Predictor


CHECK_FIELDS = ["check", "check_reasons", "skin_fraction"]


def _row(path: Path, predictor: Predictor, res) -> dict:
    """One image's output; check_reasons is a list (JSON), joined with "; " for the CSV."""
    row: dict = {"image": str(path), "error": "", "check": res.check, "check_reasons": list(res.check_reasons),
                 "skin_fraction": None if res.skin_fraction is None else round(res.skin_fraction, 4)}
    for s in predictor.signs:
        row[f"score_{s}"] = round(res.scores[s], 4)
        row[f"label_{s}"] = res.labels[s]
        row[f"area_{s}"] = round(res.affected_area[s], 4)
        if res.uncertainty:
            row[f"low_{s}"], row[f"high_{s}"] = (round(v, 4) for v in res.uncertainty[s])
    return row


def save_map_pngs(res, stem: str, folder: Path, max_score: float) -> None:
    """One 8-bit PNG per sign: value = severity / max_score * 255, at the image's full size."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(res.signs):
        m = np.clip(res.maps[k].astype(np.float32) / max_score * 255 + 0.5, 0, 255).astype(np.uint8)
        Image.fromarray(m).save(folder / f"{stem}_{s}.png")


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """--neutral-box "x0,y0,x1,y1" (pixels of the original photo) -> 4 numbers, x0 < x1, y0 < y1."""
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(np.isfinite(box)) or min(box) < 0 or box[0] >= box[2] or box[1] >= box[3]:
        raise DermsevError(f"--neutral-box {text!r}: give x0,y0,x1,y1 in pixels, x0 < x1 and y0 < y1 (e.g. 10,10,60,60)")
    return box


def parse_white_balance(method: str | None, box: str | None) -> tuple[str | None, tuple | None]:
    """(--white-balance, --neutral-box) -> (method, box); a box alone means "patch"."""
    parsed = parse_box(box)
    if method is not None:
        try:
            check_method(method)
        except ValueError:
            raise DermsevError(f"--white-balance {method!r}: must be none, grey-world or patch") from None
    if method == "patch" and parsed is None:
        raise DermsevError("--white-balance patch needs --neutral-box x0,y0,x1,y1")
    if parsed is not None and method not in (None, "patch"):
        raise DermsevError(f"--neutral-box is for the neutral-patch balance, not --white-balance {method}")
    return (method or ("patch" if parsed else None)), parsed


def predict_cli(model_dir, images: list[str], age=None, sex=None, out: str | None = None, maps: str | None = None,
                tta: bool = True, backend: str = "auto", white_balance: str | None = None,
                neutral_box: str | None = None, pseudonym: str | None = None, fhir_version: str = "R5") -> None:
    if out and Path(out).suffix.lower() not in (".csv", ".json"):
        raise DermsevError(f"--out {out}: must end in .csv, .json or .fhir.json")
    check_age(age, "--age")
    interop.check_fhir_args(out, pseudonym, fhir_version)
    method, box = parse_white_balance(white_balance, neutral_box)
    from model.inference import load_model

    predictor = load_model(model_dir, backend=backend)
    paths = expand_inputs(images)
    for note in filter(None, (interop.header_note(p, age, sex) for p in paths)):
        print(f"dermsev predict: {note}", file=sys.stderr)
    fields = ["image", "error", *CHECK_FIELDS] + [f"{k}_{s}" for s in predictor.signs for k in ("score", "label", "area")]
    if tta:
        fields += [f"{k}_{s}" for s in predictor.signs for k in ("low", "high")]
    rows_json: list[dict] = []
    fh = open(out, "w", newline="") if out and out.lower().endswith(".csv") else None
    writer = csv.DictWriter(fh, fieldnames=fields) if fh else None
    if writer:
        writer.writeheader()
    n_bad, last_error = 0, None
    try:
        bar = tqdm(total=len(paths), desc="predict", disable=len(paths) < 3, file=sys.stderr)
        stems = output_stems(paths)
        results = predictor.predict_many(paths, age=age, sex=sex, tta=tta, white_balance=method, neutral_box=box)
        for path, stem, res in zip(paths, stems, results, strict=True):
            bar.update(1)
            if isinstance(res, DermsevError):
                n_bad, last_error = n_bad + 1, res
                if len(paths) > 1:  # one image: its error is the run's one-line error
                    print(f"dermsev predict: skipped: {res}", file=sys.stderr)
                row = {"image": str(path), "error": str(res)}
            else:
                row = _row(path, predictor, res)
                if maps:
                    save_map_pngs(res, stem, Path(maps), predictor.max_score)
            if writer:
                writer.writerow({**row, "check_reasons": "; ".join(row.get("check_reasons") or [])})
                fh.flush()
            elif out:
                rows_json.append(row)
            else:
                _print_row(row, predictor)
        bar.close()
    finally:
        if fh:
            fh.close()
    if interop.is_fhir(out):
        interop.write_fhir(out, predictor, rows_json, age, sex, pseudonym, fhir_version)
    elif out and out.lower().endswith(".json"):
        Path(out).write_text(json.dumps({"model": predictor.info, "age": age, "sex": sex, "images": rows_json}, indent=2) + "\n")
    if n_bad == len(paths) == 1:
        raise last_error
    if n_bad == len(paths):
        raise DermsevError(f"none of the {len(paths)} image(s) could be read")


def _print_row(row: dict, predictor: Predictor) -> None:
    """One line per image; a photo that failed the checks shows the reason instead of labels
    (its scores are still in --out, for a clinician who has looked at the photo)."""
    if row.get("error"):
        return
    reasons = "; ".join(row.get("check_reasons") or [])
    if row.get("check") == "fail":
        print(f"{row['image']}: WARNING, photo check failed: {reasons}; labels not shown (scores in --out)")
        return
    parts = [f"{s} {row[f'score_{s}']:.2f} {row[f'label_{s}']} ({100 * row[f'area_{s}']:.0f}%)" for s in predictor.signs]
    print(f"{row['image']}: " + "; ".join(parts) + (f" [check: {reasons}]" if reasons else ""))


def add_parser(sub) -> None:
    pr = sub.add_parser("predict", help="score images")
    pr.add_argument("model_dir", help="MODEL_DIR, or 'demo' for the bundled model")
    pr.add_argument("images", nargs="+", help="image files or folders")
    pr.add_argument("--age", type=float)
    pr.add_argument("--sex", type=str.upper, choices=["F", "M"])
    pr.add_argument("--out", help="FILE.csv, FILE.json or FILE.fhir.json (a FHIR Bundle; default: a table on stdout)")
    pr.add_argument("--pseudonym", help="with --out FILE.fhir.json: the patient's pseudonym (a code, never a name)")
    pr.add_argument("--fhir-version", default="R5", choices=["R5", "R4B"], help="with --out FILE.fhir.json (default R5)")
    pr.add_argument("--maps", help="folder for per-sign severity map PNGs")
    pr.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True,
                    help="score the mean of the photo's four quarter turns and report their range, as the dashboard "
                         "does (the default); --no-tta scores the photo as taken, about 2.5x faster but less stable")
    pr.add_argument("--backend", default="auto", choices=["auto", "torch-fp32", "torch-bf16", "onnx"])
    pr.add_argument("--white-balance", metavar="none|grey-world|patch",
                    help="colour normalisation before scoring (default grey-world: towards the training photos' colour)")
    pr.add_argument("--neutral-box", metavar="x0,y0,x1,y1",
                    help="pixels of the photo that should be neutral grey or white (a grey card): balance on them")


def run(args) -> None:
    predict_cli(resolve_model(args.model_dir), args.images, age=args.age, sex=args.sex, out=args.out,
                maps=args.maps, tta=args.tta, backend=args.backend, white_balance=args.white_balance,
                neutral_box=args.neutral_box, pseudonym=args.pseudonym, fhir_version=args.fhir_version)
