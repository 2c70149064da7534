"""Probe importance recovery: does "what each channel carries alone" put every informative channel above noise?

    .venv/bin/python bench/bench_probe.py [--channels 6 8] [--seeds 1 2 3] [--n 200] [--size 128]
        [--probe-size 96] [--steps 300] [--threads 1] [--work /tmp/dermsev_bench_channels]

For every channel count and seed: `dermsev synth --channels C` (the same data as
bench/bench_channels.py; its dataset.yaml lists `channel_signs`, the truth), then
model/explain/probe.py's probe study on the split `dermsev train --seed SEED` makes. Reports the
probe importance, each channel's explained share of the severity variance, the top channel
per sign, and whether every informative channel ranks above every noise channel.
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

from bench.bench_channels import add_data_args, ranking, separated, synth_data  # noqa: E402
from model.explain.probe import probe_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(ap)
    ap.add_argument("--probe-size", type=int, default=96)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    rows, wins = [], 0
    for c in args.channels:
        for seed in args.seeds:
            ds, truth = synth_data(args, c, seed)
            t0 = time.monotonic()
            r = probe_study(ds, size=args.probe_size, steps=args.steps, seed=0, split_seed=seed, threads=args.threads)
            minutes = (time.monotonic() - t0) / 60
            ok = separated(r["importance"], truth)
            wins += ok
            tops = ", ".join(f"{s}: {max(v, key=v.get)}" for s, v in r["by_sign"].items())
            explained = ", ".join(f"{ch} {v:.2f}" for ch, v in r["explained"].items())
            rows.append(f"| {c} ch (seed {seed}) | {ranking(r['importance'])} | {explained} | {tops} | "
                        f"{'yes' if ok else 'no'} | {minutes:.1f} |")
            print(rows[-1], flush=True)
    print("\n| data | probe importance, high to low | variance explained alone | top channel per sign "
          "| separated | minutes |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"probe separates informative channels from noise in {wins}/{len(rows)} runs")


if __name__ == "__main__":
    main()
