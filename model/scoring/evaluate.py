"""SPEC's evaluation metrics at full resolution through the prediction path.

`evaluate` takes a loaded predictor (`model.inference.Predictor`: the one that serves
`dermsev predict` and the dashboard), so what is measured is what users get; it is passed
in, not imported, so scoring stays below inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model.data.dataset import load_for_model, load_skin, read_mask
from model.data.splits import split_as_trained
from model.errors import DermsevError
from model.scoring.metrics import SignAccumulator, SkinDice, mean_over_signs


def evaluate(predictor: Any, dataset_dir: str | Path, split: str = "test", seed: int | None = None, progress: bool = False,
             tta: bool = False) -> tuple[dict, dict]:
    """Returns (SPEC's JSON dict, confusion matrices {sign: (L, L) list}) for one split.

    tta: score each image as the dashboard does by default, averaged over its four quarter turns.

    seed: split seed for rows without a `split` column; default the model's training seed and
    fractions, so "test" is the split training held out (not images it trained on).
    """
    ds = load_for_model(dataset_dir, predictor.signs, len(predictor.channels))
    split_as_trained(ds.records, predictor.config, seed)
    recs = ds.subset(split)
    if not recs:
        raise DermsevError(f"{dataset_dir}: no images in split {split!r}")
    thr = tuple(predictor.thresholds)
    overall = {s: SignAccumulator(thr) for s in predictor.signs}
    by_fitz: dict[int, dict[str, SignAccumulator]] = {}
    it = recs
    if progress:
        from tqdm import tqdm

        it = tqdm(recs, desc="evaluate", leave=False)
    skin = SkinDice()  # the photo's skin (what the affected area is a fraction of) vs skin_mask
    for rec in it:
        res = predictor.predict(rec.image, age=rec.age, sex=rec.sex, name=f"id {rec.id}", tta=tta)
        maps = res.maps.astype(np.float32)
        if rec.skin_mask is not None and res.skin is not None:
            truth = load_skin(rec, res.skin.shape)
            if truth.shape == res.skin.shape:
                skin.add(res.skin, truth)
        groups = [overall]
        if rec.fitzpatrick is not None:
            groups.append(by_fitz.setdefault(rec.fitzpatrick, {s: SignAccumulator(thr) for s in predictor.signs}))
        for k, sign in enumerate(predictor.signs):
            path = rec.masks.get(sign)
            mask = read_mask(path, f"id {rec.id} mask_{sign}") if path else None
            for g in groups:
                g[sign].add(maps[k], mask, res.scores[sign], rec.scores[sign])
    per_sign = {s: a.result() for s, a in overall.items()}
    out = {"n_images": len(recs), "split": split, "tta": tta, "white_balance": predictor.white_balance,
           "per_sign": per_sign, "mean": mean_over_signs(per_sign),
           "skin": {"dice": skin.result(), "n_images": skin.n_images}}
    if by_fitz:
        out["by_fitzpatrick"] = {
            str(f): {"n_images": sum(1 for r in recs if r.fitzpatrick == f),
                     **mean_over_signs({s: a.result() for s, a in accs.items()})}
            for f, accs in sorted(by_fitz.items())
        }
        out["skin_type_gap"] = skin_type_gap(by_fitz, predictor.signs)
    confusion = {s: a.confusion().tolist() for s, a in overall.items()}
    return out, confusion


def skin_type_gap(by_fitz: dict[int, dict[str, SignAccumulator]], signs: list[str]) -> dict:
    """Pixel and image MAE of dark (Fitzpatrick V-VI) over light (I-II) skin, pooled per group.

    A ratio near 1 means dark skin is scored about as well as light skin; None without data.
    """
    def pooled(types):
        accs = [by_fitz[t][s] for t in types if t in by_fitz for s in signs]
        n_pix = sum(a.n_pix for a in accs)
        errs = [abs(p - t) for a in accs for p, t in zip(a.pred_scores, a.true_scores, strict=True)]
        return (sum(a.abs_err for a in accs) / n_pix if n_pix else None,
                sum(errs) / len(errs) if errs else None)

    def ratio(a, b):
        return a / b if a is not None and b else None

    (light_pix, light_img), (dark_pix, dark_img) = pooled((1, 2)), pooled((5, 6))
    return {"pixel_mae_light": light_pix, "pixel_mae_dark": dark_pix, "pixel_mae_ratio_dark_to_light": ratio(dark_pix, light_pix),
            "image_mae_light": light_img, "image_mae_dark": dark_img, "image_mae_ratio_dark_to_light": ratio(dark_img, light_img)}
