"""`dermsev evaluate MODEL_DIR DATASET`: the metrics table, and SPEC's JSON with --json."""

from __future__ import annotations

import json
from pathlib import Path

from model.cli.common import resolve_model


def format_table(result: dict, confusion: dict, label_names: list[str]) -> str:
    from model.scoring.metrics import METRIC_KEYS

    def f(v):
        return "    -" if v is None else f"{v:5.3f}"

    head = f"{'sign':18s} " + " ".join(f"{k:>14s}" for k in METRIC_KEYS)
    how = f"white balance {result.get('white_balance', 'none')}" + (", quarter turns averaged (TTA)" if result.get("tta") else "")
    lines = [f"{result['n_images']} images ({result['split']} split; {how})", head]
    for name, m in [*result["per_sign"].items(), ("mean", result["mean"])]:
        lines.append(f"{name:18s} " + " ".join(f"{f(m[k]):>14s}" for k in METRIC_KEYS))
    if "by_fitzpatrick" in result:
        lines += ["", "by Fitzpatrick type (mean over signs)"]
        for t, m in result["by_fitzpatrick"].items():
            lines.append(f"{'type ' + t + ' (n=' + str(m['n_images']) + ')':18s} " + " ".join(f"{f(m[k]):>14s}" for k in METRIC_KEYS))
    gap = result.get("skin_type_gap")
    if gap and gap["pixel_mae_ratio_dark_to_light"] is not None:
        lines.append(f"dark (V-VI) / light (I-II) pixel MAE ratio: {gap['pixel_mae_ratio_dark_to_light']:.2f}")
    skin = result.get("skin") or {}
    if skin.get("dice") is not None:
        lines.append(f"skin Dice (against skin_mask, {skin['n_images']} images): {skin['dice']:.3f}")
    short = [n[:8] for n in label_names]
    for sign, cm in confusion.items():
        lines += ["", f"{sign}: image labels, rows = truth, columns = predicted",
                  " " * 10 + " ".join(f"{n:>8s}" for n in short)]
        lines += [f"{short[i]:>10s}" + " ".join(f"{v:8d}" for v in row) for i, row in enumerate(cm)]
    return "\n".join(lines)


def evaluate_cli(model_dir, dataset: str, split: str, json_out: str | None, seed: int | None = None,
                 tta: bool = False, white_balance: str | None = None) -> None:
    from model.inference import load_model
    from model.scoring.evaluate import evaluate

    predictor = load_model(model_dir, white_balance=white_balance)
    result, confusion = evaluate(predictor, dataset, split, seed=seed, progress=True, tta=tta)
    print(format_table(result, confusion, predictor.label_names))
    if json_out:
        result = {**result, "confusion": confusion, "model": predictor.info["name"]}
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="metrics of MODEL_DIR on a dataset split")
    e.add_argument("model_dir")
    e.add_argument("dataset")
    e.add_argument("--split", default="test", choices=["test", "val", "train", "all"])
    e.add_argument("--json", dest="json_out")
    e.add_argument("--seed", type=int, help="split seed when the manifest has no split column "
                   "(default: the seed the model was trained with)")
    e.add_argument("--tta", action="store_true", help="average each image over its four quarter turns, as the dashboard does")
    e.add_argument("--white-balance", choices=["none", "grey-world"],
                   help="as predict (default: the model's, grey-world when it stores a reference)")


def run(args) -> None:
    evaluate_cli(resolve_model(args.model_dir), args.dataset, args.split, args.json_out, args.seed,
                 args.tta, args.white_balance)
