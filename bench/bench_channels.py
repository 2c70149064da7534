"""Channel importance recovery: does the ranking put the channels that carry signs above noise?

    .venv/bin/python bench/bench_channels.py [--channels 6 8] [--seeds 1 2 3] [--dropout 0 0.2]
        [--n 200] [--size 128] [--epochs 20] [--threads 1] [--work /tmp/dermsev_bench_channels]

For every channel count and seed: `dermsev synth --channels C` (its dataset.yaml lists
`channel_signs`, the truth: RGB carry every sign, cross_polarised erythema, uv excoriation and
lichenification, noise_k nothing), then one training per channel-dropout rate with the mixing
layer on and every other setting at its default. Reports the learned importance and the
ablation importance on the val split, and whether each ranks every informative channel above
every noise channel ("separated"). Prints a markdown table and a summary line per rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from model.explain.importance import channel_importance  # noqa: E402
from model.inference.predictor import load_model  # noqa: E402
from model.synth.generator import generate  # noqa: E402
from model.training.train import TrainConfig, train  # noqa: E402


def separated(importance: dict[str, float], truth: dict[str, list]) -> bool:
    """True when every channel that carries a sign ranks above every channel that carries none."""
    informative = [importance[c] for c, signs in truth.items() if signs]
    noise = [importance[c] for c, signs in truth.items() if not signs]
    return not noise or min(informative) > max(noise)


def ranking(importance: dict[str, float], floor: float = 0.0) -> str:
    items = sorted(importance.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{c} {v:.2f}" for c, v in items if v > floor)


def add_data_args(ap: argparse.ArgumentParser) -> None:
    """The synthetic data settings bench_channels.py and bench_probe.py share (same data, same folders)."""
    ap.add_argument("--channels", type=int, nargs="+", default=[6, 8])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/dermsev_bench_channels"))


def synth_data(args: argparse.Namespace, channels: int, seed: int) -> tuple[Path, dict[str, list]]:
    """`dermsev synth --channels C --seed SEED` under --work (made once), and its channel_signs truth."""
    ds = args.work / f"synth_c{channels}_s{seed}"
    if not (ds / "manifest.csv").is_file():
        generate(ds, n=args.n, size=args.size, seed=seed, channels=channels)
    return ds, yaml.safe_load((ds / "dataset.yaml").read_text())["channel_signs"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(ap)
    ap.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.2, 0.35, 0.5])
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, wins = [], {p: [0, 0, 0] for p in args.dropout}  # learned ok, ablation ok, runs
    for c in args.channels:
        for seed in args.seeds:
            ds, truth = synth_data(args, c, seed)
            for p in args.dropout:
                out = args.work / f"model_c{c}_s{seed}_p{p}"
                t0 = time.monotonic()
                cfg = TrainConfig(mixing="on", image_size=args.size, epochs=args.epochs, seed=seed, channel_dropout=p)
                summary = train(ds, out, cfg, progress=False)
                minutes = (time.monotonic() - t0) / 60
                imp = channel_importance(load_model(out), dataset_dir=ds)
                ok_l, ok_a = separated(imp["learned"], truth), separated(imp["ablation"], truth)
                w = wins[p]
                w[0], w[1], w[2] = w[0] + ok_l, w[1] + ok_a, w[2] + 1
                mae = (summary.get("val_metrics") or {}).get("mean", {}).get("pixel_mae")
                rows.append(f"| {c} ch (seed {seed}) | {p:g} | {mae if mae is None else f'{mae:.3f}'} | "
                            f"{ranking(imp['learned'])} | {'yes' if ok_l else 'no'} | "
                            f"{ranking(imp['ablation'], 0.005)} | {'yes' if ok_a else 'no'} | {minutes:.1f} |")
                print(rows[-1], flush=True)
    print("\n| data | channel dropout | val pixel MAE | learned, high to low | separated | ablation (> 0.005) "
          "| separated | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for p, (ok_l, ok_a, n) in wins.items():
        print(f"channel dropout {p:g}: learned separates informative from noise in {ok_l}/{n} runs, "
              f"ablation in {ok_a}/{n}")


if __name__ == "__main__":
    main()
