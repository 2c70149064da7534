"""Inference speed and backend agreement, with the knobs `dermsev bench` does not expose.

    .venv/bin/python bench/bench_inference.py MODEL_DIR [--json OUT] [--repeats 10]
        [--backend auto|torch-fp32|torch-bf16|onnx] [--threads N]
        [--compare DATASET_OR_FOLDER [--n 40]]

Without --compare: the same report as `dermsev bench` (see model/inference/bench.py). With --compare:
each backend against torch fp32 on the images of a `dermsev synth` dataset (or any folder):
max map and score difference, and how many labels change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.cli.bench import bench_cli  # noqa: E402
from model.cli.common import expand_inputs  # noqa: E402
from model.inference.bench import compare_backends  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--backend", default="auto", choices=["auto", "torch-fp32", "torch-bf16", "onnx"])
    ap.add_argument("--threads", type=int)
    ap.add_argument("--compare", help="a dataset or image folder: compare backends with fp32 on it")
    ap.add_argument("--n", type=int, default=40, help="images to compare (first N, sorted)")
    a = ap.parse_args()
    if a.compare:
        root = Path(a.compare)
        images = expand_inputs([str(root / "images" if (root / "images").is_dir() else root)])[: a.n]
        rep = compare_backends(a.model_dir, images)
        for name, r in rep.items():
            print(f"{name:11s} max map diff {r['max_abs_diff']:.4f}, max score diff {r['max_score_diff']:.4f}, "
                  f"labels changed {r['label_changes']}/{r['labels_compared']} "
                  f"({r['label_changes_away_from_thresholds']} away from a threshold)")
        if a.json_out:
            Path(a.json_out).write_text(json.dumps(rep, indent=2) + "\n")
        return
    bench_cli(a.model_dir, json_out=a.json_out, repeats=a.repeats, backend=a.backend, threads=a.threads)


if __name__ == "__main__":
    main()
