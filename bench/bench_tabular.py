"""Does the model use age and sex? Test error with true, removed and shuffled age/sex.

    .venv/bin/python bench/bench_tabular.py [MODEL_DIR] [--data data/demo-test] [--n 300]
        [--size 256] [--seed 1234] [--shuffle-seed 0] [--threads 2] [--json OUT]

The same images are evaluated three times through `dermsev evaluate`'s code path
(`model.scoring.evaluate`), with the manifest's age and sex
- true: as recorded;
- removed: blank (unknown), what the model gets when the clinician leaves them out;
- shuffled: permuted across the images (each image gets another patient's age and sex), so
  the distribution is kept and only the pairing with the image is broken.
If the tabular branch is used, shuffled is worse than true; removed shows what an unknown age
costs. Without --data, a fresh synthetic test set (`dermsev synth`, --n, --size, --seed) is
written to a temporary folder. Prints a markdown table (mean over signs, and per sign).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model.inference import load_model  # noqa: E402
from model.nets.modeldir import DEMO_DIR  # noqa: E402
from model.scoring.evaluate import evaluate  # noqa: E402
from model.synth.generator import generate  # noqa: E402

VARIANTS = ("true", "removed", "shuffled")
KEYS = ("pixel_mae", "image_mae", "qwk")


def variant_rows(rows: list[dict], variant: str, seed: int = 0) -> list[dict]:
    """The manifest rows with age and sex as `variant` says (true, removed or shuffled)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "true":
        return [dict(r) for r in rows]
    if variant == "removed":
        return [{**r, "age": "", "sex": ""} for r in rows]
    order = np.random.default_rng(seed).permutation(len(rows))
    return [{**r, "age": rows[j].get("age", ""), "sex": rows[j].get("sex", "")} for r, j in zip(rows, order, strict=True)]


def write_variant(root: Path, dest: Path, variant: str, seed: int = 0) -> Path:
    """A dataset folder at `dest` that shares `root`'s files and has `variant`'s manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in root.iterdir():
        if item.name != "manifest.csv" and not (dest / item.name).exists():
            (dest / item.name).symlink_to(item.resolve())
    with (root / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for col in ("age", "sex"):
        if col not in fields:
            fields = [*fields, col]
    with (dest / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(variant_rows(rows, variant, seed))
    return dest


def run(model_dir: Path, data: Path, work: Path, seed: int) -> dict:
    predictor = load_model(model_dir)
    out = {}
    for v in VARIANTS:
        ds = write_variant(data, work / v, v, seed)
        metrics, _ = evaluate(predictor, ds, split="all")
        out[v] = {"mean": {k: metrics["mean"][k] for k in KEYS},
                  "per_sign": {s: {k: m[k] for k in KEYS} for s, m in metrics["per_sign"].items()}}
    return out


def table(res: dict) -> str:
    signs = list(res["true"]["per_sign"])
    lines = ["| age/sex | " + " | ".join(f"{k} (mean)" for k in KEYS) + " | " + " | ".join(f"{s} pixel MAE" for s in signs) + " |",
             "|---" * (1 + len(KEYS) + len(signs)) + "|"]
    for v in VARIANTS:
        m, ps = res[v]["mean"], res[v]["per_sign"]
        lines.append(f"| {v} | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + " | "
                     + " | ".join(f"{ps[s]['pixel_mae']:.4f}" for s in signs) + " |")
    t, s = res["true"]["mean"]["pixel_mae"], res["shuffled"]["mean"]["pixel_mae"]
    r = res["removed"]["mean"]["pixel_mae"]
    lines.append("")
    lines.append(f"pixel MAE shuffled / true: {s / t:.3f}; removed / true: {r / t:.3f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", nargs="?", default=str(DEMO_DIR))
    ap.add_argument("--data", type=Path, help="a dataset (default: a fresh synthetic test set)")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--shuffle-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    print("$ " + shlex.join([sys.executable, *sys.argv]), flush=True)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="bench_tabular_") as tmp:
        data = a.data
        if data is None:
            data = Path(tmp) / "synth"
            generate(data, n=a.n, size=a.size, seed=a.seed)
        res = run(Path(a.model_dir), data, Path(tmp), a.shuffle_seed)
    print(table(res))
    if a.json:
        a.json.write_text(json.dumps({"command": sys.argv, "results": res}, indent=2))


if __name__ == "__main__":
    main()
