"""`dermsev evaluate`: SPEC's metrics at full resolution through the prediction path.

The same Predictor that serves `dermsev predict` and the dashboard scores every image, so
what is measured is what users get.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.data.dataset import load_dataset, read_mask
from model.errors import DermsevError
from model.inference.predictor import Predictor, load_model
from model.scoring.metrics import METRIC_KEYS, SignAccumulator, mean_over_signs
from model.data.splits import assign_splits


def evaluate(predictor: Predictor, dataset_dir: str | Path, split: str = "test", seed: int | None = None, progress: bool = False) -> tuple[dict, dict]:
    """Returns (SPEC's JSON dict, confusion matrices {sign: (L, L) list}) for one split.

    seed: split seed for rows without a `split` column; default the model's training seed and
    fractions, so "test" is the split training held out (not images it trained on).
    """
    ds = load_dataset(dataset_dir)
    if list(ds.spec.signs) != predictor.signs:
        raise DermsevError(f"{dataset_dir}: dataset signs {list(ds.spec.signs)} differ from the model's {predictor.signs}")
    if len(ds.spec.channels) != len(predictor.channels):
        raise DermsevError(f"{dataset_dir}: dataset has {len(ds.spec.channels)} channels, the model expects {len(predictor.channels)}")
    settings = predictor.config.get("training", {}).get("settings", {})
    assign_splits(ds.records, seed=int(settings.get("seed", 0)) if seed is None else seed,
                  val_frac=settings.get("val_frac", 0.15), test_frac=settings.get("test_frac", 0.15))
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
    for rec in it:
        res = predictor.predict(rec.image, age=rec.age, sex=rec.sex, name=f"id {rec.id}")
        maps = res.maps.astype(np.float32)
        groups = [overall]
        if rec.fitzpatrick is not None:
            groups.append(by_fitz.setdefault(rec.fitzpatrick, {s: SignAccumulator(thr) for s in predictor.signs}))
        for k, sign in enumerate(predictor.signs):
            path = rec.masks.get(sign)
            mask = read_mask(path, f"id {rec.id} mask_{sign}") if path else None
            for g in groups:
                g[sign].add(maps[k], mask, res.scores[sign], rec.scores[sign])
    per_sign = {s: a.result() for s, a in overall.items()}
    out = {"n_images": len(recs), "split": split, "per_sign": per_sign, "mean": mean_over_signs(per_sign)}
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


def format_table(result: dict, confusion: dict, label_names: list[str]) -> str:
    def f(v):
        return "    -" if v is None else f"{v:5.3f}"

    head = f"{'sign':18s} " + " ".join(f"{k:>14s}" for k in METRIC_KEYS)
    lines = [f"{result['n_images']} images ({result['split']} split)", head]
    for name, m in [*result["per_sign"].items(), ("mean", result["mean"])]:
        lines.append(f"{name:18s} " + " ".join(f"{f(m[k]):>14s}" for k in METRIC_KEYS))
    if "by_fitzpatrick" in result:
        lines += ["", "by Fitzpatrick type (mean over signs)"]
        for t, m in result["by_fitzpatrick"].items():
            lines.append(f"{'type ' + t + ' (n=' + str(m['n_images']) + ')':18s} " + " ".join(f"{f(m[k]):>14s}" for k in METRIC_KEYS))
    gap = result.get("skin_type_gap")
    if gap and gap["pixel_mae_ratio_dark_to_light"] is not None:
        lines.append(f"dark (V-VI) / light (I-II) pixel MAE ratio: {gap['pixel_mae_ratio_dark_to_light']:.2f}")
    short = [n[:8] for n in label_names]
    for sign, cm in confusion.items():
        lines += ["", f"{sign}: image labels, rows = truth, columns = predicted",
                  " " * 10 + " ".join(f"{n:>8s}" for n in short)]
        lines += [f"{short[i]:>10s}" + " ".join(f"{v:8d}" for v in row) for i, row in enumerate(cm)]
    return "\n".join(lines)


def evaluate_cli(model_dir, dataset: str, split: str, json_out: str | None, seed: int | None = None) -> None:
    predictor = load_model(model_dir)
    result, confusion = evaluate(predictor, dataset, split, seed=seed, progress=True)
    print(format_table(result, confusion, predictor.label_names))
    if json_out:
        result = {**result, "confusion": confusion, "model": predictor.info["name"]}
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")
