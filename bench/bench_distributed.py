"""Training throughput with 1 and 2 processes (torchrun, DistributedDataParallel), and the
scaling to expect with more cores, machines or GPUs.

    .venv/bin/python bench/bench_distributed.py --n 56 --size 128 --batch-size 8 --epochs 2 --rounds 2

Writes a synthetic dataset (`dermsev synth`, an explicit split: all but 8 images train), then
trains the default recipe (resnet18 U-Net, whatever TrainConfig says today) for a few epochs:
in one plain process, with `dermsev train --nproc 1` (1 thread, and all cores) and with
`--nproc 2` (cores / 2 threads each), in interleaved rounds. images/s is the job's: all images trained over the
slowest rank's busy time (data, forward, backward with the gradient all-reduce, step; not
validation or saving), from the summary in config.json.

The "expected" lines are on paper: DDP all-reduces the gradients (4 bytes per parameter) every
step; a ring all-reduce moves 2 (N - 1) / N of them through each process's link. A step
then takes at most step + all-reduce (DDP overlaps the all-reduce with the backward pass, so
real runs do better); N processes each with their own cores or GPU give N x images/s x
step / (step + all-reduce).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model.hardware import cpu_count, cpu_name  # noqa: E402

# (device, link, bytes/s a rank gets for the all-reduce, roughly)
LINKS = [("CPU", "one machine, gloo over loopback", 5e9), ("CPU", "10 Gb Ethernet, gloo", 1.1e9),
         ("GPU", "10 Gb Ethernet, NCCL over TCP", 1.1e9), ("GPU", "100 Gb InfiniBand / RoCE, NCCL", 11e9),
         ("GPU", "NVLink in one server, NCCL", 150e9)]


def make_dataset(root: Path, n: int, size: int) -> Path:
    subprocess.run([sys.executable, "-m", "model.cli", "synth", str(root), "--n", str(n), "--size", str(size),
                    "--seed", "5"], check=True, cwd=ROOT, capture_output=True)
    rows = list(csv.DictReader((root / "manifest.csv").open()))
    for i, row in enumerate(rows):
        row["split"] = "val" if i >= n - 8 else "train"
    # split by image: the bench needs a train set that the global batch divides, not a fair test
    for row in rows:
        row["patient_id"] = row["id"]
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def run(dataset: Path, out: Path, args, nproc: int | None, threads: int) -> dict:
    cmd = [sys.executable, "-m", "model.cli", "train", str(dataset), "--out", str(out), "--epochs", str(args.epochs),
           "--image-size", str(args.size), "--batch-size", str(args.batch_size), "--quiet"]
    cmd += [] if nproc is None else ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "config.json").read_text())["training"]
    summary["wall_s"] = time.monotonic() - t0
    return summary


def n_params(model_dir: Path) -> int:
    from model.nets.modeldir import load_network

    net, _ = load_network(model_dir)
    return sum(p.numel() for p in net.parameters())


def paper_scaling(params: int, step_s: dict[str, float], batch: int) -> dict[str, list[float]]:
    """Efficiency at N = 2, 4, 8 processes (each with its own cores or GPU) per link, printed."""
    grad_bytes = 4 * params
    print(f"\nexpected scaling (on paper): {params / 1e6:.1f} M parameters = {grad_bytes / 1e6:.0f} MB of gradients "
          f"all-reduced per step; efficiency >= step / (step + all-reduce) (DDP overlaps them, so real runs do better); "
          f"step of batch {batch}: CPU {step_s['CPU']:.2f} s (measured here), GPU {step_s['GPU']:.2f} s (assumed, "
          f"--gpu-step-s)")
    out = {}
    for device, link, bw in LINKS:
        t = step_s[device]
        effs = [round(t / (t + 2 * (n - 1) / n * grad_bytes / bw), 2) for n in (2, 4, 8)]
        out[f"{device}, {link}"] = effs
        print(f"  {device}, {link:34s} N = 2/4/8: {effs[0]:.2f} / {effs[1]:.2f} / {effs[2]:.2f}"
              f"  -> {2 * effs[0]:.1f}x / {4 * effs[1]:.1f}x / {8 * effs[2]:.1f}x one process")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=56, help="images (the last 8 validate)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8, help="global batch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--gpu-step-s", type=float, default=0.1,
                    help="GPU step time for the paper estimate (resnet18 U-Net, batch 8 at 256 px, bf16: about 0.1 s)")
    ap.add_argument("--json")
    args = ap.parse_args()
    print(f"machine: {cpu_name()}, {cpu_count()} cores; {args.n - 8} training images at {args.size} px, "
          f"global batch {args.batch_size}, {args.epochs} epochs", flush=True)
    cores = cpu_count()
    # (name, nproc or None for the plain path, threads per process)
    half = max(1, cores // 2)
    setups = [(f"plain, 1 process x {cores} threads", None, cores), ("torchrun, 1 process x 1 thread", 1, 1),
              (f"torchrun, 1 process x {cores} threads", 1, cores), (f"torchrun, 2 processes x {half} thread(s)", 2, half)]
    got: dict[str, list[float]] = {name: [] for name, _, _ in setups}
    with tempfile.TemporaryDirectory() as tmp:
        ds = make_dataset(Path(tmp) / "ds", args.n, args.size)
        for r in range(args.rounds):  # interleaved: a neighbour's load slows every setup alike
            for name, nproc, threads in setups:
                s = run(ds, Path(tmp) / f"m-{nproc}-{threads}", args, nproc, threads)
                got[name].append(s["train_images_per_s"])
                print(f"round {r + 1}: {name:36s} {s['train_images_per_s']:6.2f} images/s "
                      f"(run {s['wall_s']:.0f} s with start-up, {s['precision']})", flush=True)
        params = n_params(Path(tmp) / "m-1-1")
    rows = {name: round(float(np.median(v)), 3) for name, v in got.items()}
    print(f"\nmedian images/s over {args.rounds} rounds:")
    for name, v in rows.items():
        print(f"  {name:36s} {v:6.2f}")
    one1, one_all, two = (rows[setups[i][0]] for i in (1, 2, 3))
    print(f"2 processes vs 1 process x 1 thread: {two / one1:.2f}x (ideal 2.00 on {cores} free cores); "
          f"vs 1 process x {cores} threads: {two / one_all:.2f}x (the same cores, split two ways)")
    step = args.batch_size / max(one1, one_all)  # seconds per global step, the faster single process
    paper = paper_scaling(params, {"CPU": step, "GPU": args.gpu_step_s}, args.batch_size)
    if args.json:
        Path(args.json).write_text(json.dumps({"median_images_per_s": rows, "rounds": got, "parameters": params, "step_s": step,
                                               "paper_efficiency_n2_4_8": paper}, indent=2) + "\n")


if __name__ == "__main__":
    main()
