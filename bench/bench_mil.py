"""Weak supervision: each MIL pooling trained from image-level scores alone, against a
pixel-supervised ceiling, all evaluated on a held-out synthetic test set that has masks.

    .venv/bin/python bench/bench_mil.py [--n 300] [--n-test 60] [--size 128] [--epochs 10]
        [--threads 1] [--work /tmp/dermsev_bench_mil] [--append-doc docs/mil.md]

Data: `dermsev synth --image-level-only` (seed --seed) for the weakly supervised runs; the
same generator and seed with masks for the ceiling (the very same images, so the only
difference is the supervision); a test set with masks from another seed (--seed + 1000).
Every model has the same budget (epochs, image size, encoder mobilenet_v2, batch size,
seed); training holds out 15% of its data for early stopping (no test split: the test set
is separate). Metrics are `model.scoring.evaluate.evaluate` on the whole test set (SPEC's JSON,
mean over signs): image MAE, QWK, affected Dice, pixel MAE.

Prints a markdown table; with --append-doc, appends it with the command, the settings and
the measured times to that file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model.inference.predictor import load_model  # noqa: E402
from model.nets.mil import METHODS  # noqa: E402
from model.scoring.evaluate import evaluate  # noqa: E402
from model.synth.generator import generate  # noqa: E402
from model.training.train import TrainConfig, train  # noqa: E402

KEYS = ("image_mae", "qwk", "affected_dice", "pixel_mae")


def _dataset(path: Path, **kwargs) -> Path:
    if (path / "manifest.csv").is_file():
        return path
    return generate(path, **kwargs)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def reference(train_dir: Path, test_dir: Path) -> dict:
    """No model: each sign's training median as every image's score (image MAE, QWK 0) and
    every annotated pixel called affected (Dice), an all-zero map (pixel MAE); pooled over the
    test set as evaluate does."""
    from model.data.dataset import IGNORE, load_dataset
    from model.data.io import read_mask

    tr, te = load_dataset(train_dir), load_dataset(test_dir)
    per_sign = {}
    for sign in te.spec.signs:
        med = float(np.median([r.scores[sign] for r in tr.records if r.scores[sign] is not None]))
        truth = [r.scores[sign] for r in te.records if r.scores[sign] is not None]
        inter = den = n = err = 0
        for r in te.records:
            m = read_mask(r.masks[sign], r.id)
            m = m[m != IGNORE]
            inter += int((m >= 1).sum())
            den += m.size + int((m >= 1).sum())
            n += m.size
            err += float(m.astype(np.float64).sum())
        per_sign[sign] = {"image_mae": float(np.mean(np.abs(np.array(truth) - med))), "qwk": 0.0,
                          "affected_dice": 2 * inter / den if den else None, "pixel_mae": err / n if n else None}
    mean = {k: float(np.mean([v[k] for v in per_sign.values()])) for k in KEYS}
    return {"model": "no model: train median score / all pixels affected / all-zero map", "supervision": "none",
            "mil_pool": "-", "epochs_run": 0, "best_epoch": 0, "train_minutes": 0.0, **mean, "per_sign": per_sign}


def run(a: argparse.Namespace) -> list[dict]:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    weak = _dataset(work / "weak", n=a.n, size=a.size, seed=a.seed, image_level_only=True)
    full = _dataset(work / "masked", n=a.n, size=a.size, seed=a.seed, image_level_only=False)
    test = _dataset(work / "test", n=a.n_test, size=a.size, seed=a.seed + 1000, image_level_only=False)
    print(f"data ready in {time.monotonic() - t0:.0f} s", flush=True)
    runs = [(f"image, {p}", weak, "image", p) for p in a.pools] + [("pixel (ceiling)", full, "pixel", "mean")]
    rows = [reference(weak, test)]
    for name, data, supervision, pool in runs:
        cfg = TrainConfig(epochs=a.epochs, image_size=a.size, encoder="mobilenet_v2", batch_size=a.batch_size,
                          seed=a.seed, supervision=supervision, mil_pool=pool, augment="geometric",
                          patience=a.epochs, test_frac=0.0, max_minutes=a.max_minutes)
        out = work / "models" / f"{supervision}-{pool}"
        t1 = time.monotonic()
        summary = train(data, out, cfg, progress=False)
        minutes = (time.monotonic() - t1) / 60
        result, _ = evaluate(load_model(out), test, split="all")
        m = result["mean"]
        row = {"model": name, "supervision": supervision, "mil_pool": pool, "epochs_run": summary["epochs_run"],
               "best_epoch": summary["best_epoch"], "train_minutes": round(minutes, 2),
               **{k: m.get(k) for k in KEYS}, "per_sign": result["per_sign"]}
        rows.append(row)
        print(f"{name}: " + " ".join(f"{k} {_fmt(row[k])}" for k in KEYS)
              + f" ({row['epochs_run']} epochs, best {row['best_epoch']}, {minutes:.1f} min)", flush=True)
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"total {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model (supervision, pooling) | image MAE | QWK | affected Dice | pixel MAE | epochs (best) | train min |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        run = (f"{r['epochs_run']} ({r['best_epoch']}) | {r['train_minutes']:.1f}"
               if r["supervision"] != "none" else "- | -")
        lines.append(f"| {r['model']} | {_fmt(r['image_mae'])} | {_fmt(r['qwk'])} | {_fmt(r['affected_dice'])} "
                     f"| {_fmt(r['pixel_mae'])} | {run} |")
    return "\n".join(lines)


def sign_table(rows: list[dict]) -> str:
    signs = list(rows[0]["per_sign"])
    lines = ["| model | " + " | ".join(signs) + " |", "|---|" + "---|" * len(signs)]
    for r in rows:
        cells = [f"{_fmt(r['per_sign'][s]['image_mae'])} / {_fmt(r['per_sign'][s]['affected_dice'])}" for s in signs]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="training images (before the 15%% validation hold-out)")
    ap.add_argument("--n-test", type=int, default=60)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pools", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--max-minutes", type=float, default=None, help="safety cap per model (default none)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 is several times faster than 2 on busy shared cores")
    ap.add_argument("--work", default="/tmp/dermsev_bench_mil")
    ap.add_argument("--append-doc", help="append the table to this markdown file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rows = run(a)
    tab, per_sign = table(rows), sign_table(rows)
    print()
    print(tab)
    print()
    print(per_sign)
    if a.append_doc:
        cmd = "python " + " ".join(shlex.quote(x) for x in [os.path.relpath(__file__), *sys.argv[1:]])
        text = (f"\n\n<!-- bench_mil results ({time.strftime('%Y-%m-%d')}) -->\n`{cmd}`\n\n{tab}\n\n"
                f"Per sign, image MAE / affected Dice:\n\n{per_sign}\n")
        with open(a.append_doc, "a", encoding="utf-8") as f:
            f.write(text)
        print(f"appended to {a.append_doc}")


if __name__ == "__main__":
    main()
