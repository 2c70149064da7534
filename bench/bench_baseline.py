"""The default `dermsev train` recipe against a bare U-Net: same data, same wall clock, same run.

    .venv/bin/python bench/bench_baseline.py --minutes 3 --n 300 --threads 2 --json /tmp/b.json

Tasks, written here in the SPEC layout with an explicit `split` column (both models see the same
images): colour-combos (Voronoi colour mosaics, signs red/green/blue = channel bin, test cells only
of held-out (r, g, b) bin combinations), age-sex (the lesion's red bin is (s + [age >= 50] +
[sex == M]) mod 4, so the image alone is ambiguous; also scored with each age moved across 50),
skin (`dermsev synth` data, split by patient). Models: the product (`python -m model.cli train
--max-minutes M --image-size SIZE --quiet`, scored by `load_model(DIR, "torch-fp32").predict`) and a
bare smp resnet18 U-Net (sigmoid * 3, masked L1, AdamW 2e-3, batch 16, no augmentation, bf16
autocast, channels_last, final weights; FiLM from (age/100, sex) on the deepest feature for
age-sex only). Metrics on test, pooled over the annotated pixels of all signs: accuracy of the
thresholded label (0.5/1.5/2.5) and MAE. With --seeds 0,1,2 both models train once per seed
(the data stay the same) and the table compares the means: one seed's accuracy on the colour
task moves by +-0.03 (bench/ablate_recipe.py), more than the differences being measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
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
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from model.data.dataset import IGNORE, load_dataset, load_example  # noqa: E402

TASKS = ("colour-combos", "age-sex", "skin")
THRESHOLDS = (0.5, 1.5, 2.5)
COLOUR_SIGNS = ("red", "green", "blue")


def _splits(n: int, rng: np.random.Generator, val: float = 0.15, test: float = 0.15) -> list[str]:
    """A shuffled list of n split names (at least one val and one test image when n >= 3)."""
    n_test, n_val = max(1, round(test * n)), max(1, round(val * n))
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    return [names[i] for i in rng.permutation(n)]


def _save(root: Path, sid: str, img: np.ndarray, masks: dict[str, np.ndarray], row: dict) -> dict:
    """Write images/<sid>.png and masks/<sid>_<sign>.png; the manifest row naming them."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    Image.fromarray(img).save(root / "images" / f"{sid}.png")
    out = {"id": sid, "image": f"images/{sid}.png", "patient_id": f"p{sid}", **row}
    for sign, m in masks.items():
        Image.fromarray(m.astype(np.uint8)).save(root / "masks" / f"{sid}_{sign}.png")
        out[f"mask_{sign}"] = f"masks/{sid}_{sign}.png"
    return out


def _finish(root: Path, signs: tuple[str, ...], rows: list[dict], **extra) -> Path:
    meta = {"signs": list(signs), "max_score": 3, "channels": ["red", "green", "blue"], "synthetic": True, **extra}
    (root / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def combo(r: int, g: int, b: int) -> int:
    """(r, g, b) bins 0..3 -> combination index 0..63."""
    return r * 16 + g * 4 + b


def pick_heldout(k: int = 12, seed: int = 0) -> set[int]:
    return {int(c) for c in np.random.default_rng(seed + 7919).choice(64, size=k, replace=False)}


def write_colour_combos(root: str | Path, n: int = 300, size: int = 96, seed: int = 0,
                        heldout: set[int] | None = None) -> Path:
    """Voronoi mosaics (6..14 cells) of flat colours; masks red/green/blue = channel bin 0..3 of the
    cell's colour (noise of sd 2 on the image, margins of 8 keep it inside the bin). Cells of train/val
    images use only combinations outside `heldout` (default `pick_heldout(12, seed)`), cells of test
    images only held-out ones. Writes a `heldout` list into dataset.yaml."""
    root, rng = Path(root), np.random.default_rng(seed)
    heldout = pick_heldout(12, seed) if heldout is None else set(heldout)
    pools = {"test": sorted(heldout), "other": sorted(set(range(64)) - heldout)}
    yy, xx = np.mgrid[0:size, 0:size]
    rows = []
    for i, split in enumerate(_splits(n, rng)):
        k = int(rng.integers(6, 15))
        pts = rng.uniform(0, size, (k, 2))
        cell = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).argmin(-1)
        codes = rng.choice(pools["test" if split == "test" else "other"], size=k)
        bins = np.stack([codes // 16, codes // 4 % 4, codes % 4], 1)  # (k, 3)
        colours = bins * 64 + rng.integers(8, 56, (k, 3))
        img = colours[cell] + rng.normal(0, 2, (size, size, 3))
        masks = {s: bins[cell, c] for c, s in enumerate(COLOUR_SIGNS)}
        row = {"age": int(rng.integers(20, 80)), "sex": str(rng.choice(["F", "M"])), "split": split}
        rows.append(_save(root, f"c{i:04d}", np.clip(img, 0, 255).astype(np.uint8), masks, row))
    return _finish(root, COLOUR_SIGNS, rows, heldout=sorted(heldout))


def age_sex_level(severity: int, age: float, sex: str) -> int:
    """The lesion's red bin: (s + [age >= 50] + [sex == M]) mod 4."""
    return (int(severity) + int(age >= 50) + int(sex == "M")) % 4


def write_age_sex(root: str | Path, n: int = 300, size: int = 96, seed: int = 0) -> Path:
    """One image per patient: a pale background (green, blue >= 130) with an elliptical lesion
    (green, blue 40..80) whose red is bin `age_sex_level(s, age, sex)`; mask `severity` = s on the
    lesion, 0 elsewhere. Ages are whole years 20..79, sex F/M, s 0..3, all uniform. The manifest
    also carries the lesion's `red_level` (an extra column, ignored by the trainer)."""
    root, rng = Path(root), np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rows = []
    for i, split in enumerate(_splits(n, rng)):
        s, age, sex = int(rng.integers(0, 4)), int(rng.integers(20, 80)), str(rng.choice(["F", "M"]))
        level = age_sex_level(s, age, sex)
        cy, cx = rng.uniform(0.35, 0.65, 2)
        ry, rx = rng.uniform(0.18, 0.32, 2)
        t = rng.uniform(0, np.pi)
        u, v = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t), (xx - cx) * np.cos(t) - (yy - cy) * np.sin(t)
        lesion = (u / ry) ** 2 + (v / rx) ** 2 <= 1
        img = np.empty((size, size, 3))
        img[:] = [rng.integers(150, 230), rng.integers(140, 200), rng.integers(130, 180)]
        img[lesion] = [level * 64 + rng.integers(12, 52), rng.integers(40, 80), rng.integers(40, 80)]
        img += rng.normal(0, 3, img.shape)
        row = {"age": age, "sex": sex, "split": split, "red_level": level}
        rows.append(_save(root, f"a{i:04d}", np.clip(img, 0, 255).astype(np.uint8),
                          {"severity": np.where(lesion, s, 0)}, row))
    return _finish(root, ("severity",), rows)


def write_skin(root: str | Path, n: int = 300, size: int = 96, seed: int = 0) -> Path:
    """`dermsev synth` data plus a `split` column assigned by patient (0.7 / 0.15 / 0.15)."""
    from model.synth.generator import generate

    root = generate(root, n=n, size=size, seed=seed)
    with (root / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    pids = sorted({r["patient_id"] for r in rows})
    split = dict(zip(pids, _splits(len(pids), np.random.default_rng(seed)), strict=True))
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*rows[0], "split"])
        w.writeheader()
        w.writerows({**r, "split": split[r["patient_id"]]} for r in rows)
    return root


WRITERS = {"colour-combos": write_colour_combos, "age-sex": write_age_sex, "skin": write_skin}


def move_age(age: float) -> float:
    """Across the 50 line: 20..49 -> 50..79, 50..79 -> 20..49."""
    return age - 30 if age >= 50 else age + 30


def score(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """Label accuracy and MAE pooled over the annotated pixels of (S, H, W) pred (0..3) / truth pairs."""
    ok = [t != IGNORE for t in truths]
    p = np.concatenate([q[k] for q, k in zip(preds, ok, strict=True)]).astype(np.float64)
    t = np.concatenate([q[k] for q, k in zip(truths, ok, strict=True)]).astype(np.float64)
    return {"pixel_accuracy": float((np.digitize(p, THRESHOLDS) == t).mean()), "pixel_mae": float(np.abs(p - t).mean())}


def product_cmd(root: Path, out: Path, minutes: float, size: int, extra: list[str], seed: int = 0) -> list[str]:
    from model.training.train import TrainConfig

    cmd = [sys.executable, "-m", "model.cli", "train", str(root), "--out", str(out),
           "--max-minutes", str(minutes), "--image-size", str(size), "--seed", str(seed), "--quiet"]
    # Only a CLI without a clock-only mode needs --epochs: a huge --epochs with this trainer also
    # stretches the step-based warm-up (5% of all epochs) and keeps the learning rate near 0.
    if TrainConfig.__dataclass_fields__["epochs"].default is not None:
        cmd += ["--epochs", "100000"]
    return cmd + extra


def run_product(root: Path, out: Path, cmd: list[str], threads: int, moved: bool) -> dict:
    from model.inference import load_model

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    (out.parent / f"{out.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"product training failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    # no white balance: the tasks' labels live in absolute colour, and the bare U-Net sees the
    # pixels as they are (grey-world balance moved the colour task's test cells across bins)
    p = load_model(out, backend="torch-fp32", white_balance="none")
    ds = load_dataset(root)
    recs = ds.subset("test")
    truth = [np.stack(load_example(rec, ds.spec)[1]) for rec in recs]

    def maps(shift: bool) -> list[np.ndarray]:
        return [p.predict(r.image, age=move_age(r.age) if shift else r.age, sex=r.sex).maps.astype(np.float32)
                for r in recs]

    training = json.loads((out / "config.json").read_text())["training"]
    res = {**score(maps(False), truth), "epochs": training.get("epochs_run"), "best_epoch": training.get("best_epoch")}
    return {**res, **({"moved_mae": score(maps(True), truth)["pixel_mae"]} if moved else {})}


class Baseline(nn.Module):
    """smp resnet18 U-Net, sigmoid * max_score; optional FiLM (age/100, sex M=1) on feats[-1]."""

    def __init__(self, n_signs: int, film: bool, max_score: float = 3.0):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.net = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=n_signs)
        c = self.net.encoder.out_channels[-1]
        self.film = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2 * c)) if film else None
        if self.film is not None:  # start as the identity
            nn.init.zeros_(self.film[-1].weight)
            nn.init.zeros_(self.film[-1].bias)
        self.max_score = max_score

    def forward(self, x: torch.Tensor, tab: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) 0..1; tab: (B, 2) -> (B, S, H, W) float32 on 0..max_score."""
        feats = self.net.encoder(x)
        if self.film is not None:
            g, b = self.film(tab).chunk(2, dim=1)
            feats[-1] = feats[-1] * (1 + g[:, :, None, None]) + b[:, :, None, None]
        return torch.sigmoid(self.net.segmentation_head(self.net.decoder(feats)).float()) * self.max_score


def _tensors(ds, split: str, moved: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) float 0..1, (N, S, H, W) uint8 masks, (N, 2) (age/100, sex M=1) of one split."""
    xs, ys, tabs = [], [], []
    for rec in ds.subset(split):
        img, masks = load_example(rec, ds.spec)
        age = rec.age if rec.age is not None else 50.0
        xs.append(img.transpose(2, 0, 1))
        ys.append(np.stack(masks))
        tabs.append([(move_age(age) if moved else age) / 100, float(rec.sex == "M")])
    return (torch.from_numpy(np.stack(xs)).float(), torch.from_numpy(np.stack(ys)),
            torch.tensor(tabs, dtype=torch.float32))


def run_baseline(root: Path, minutes: float | None, seed: int, film: bool, moved: bool, batch: int = 16,
                 epochs: int | None = None) -> dict:
    """Train for `minutes` of wall clock (or exactly `epochs` epochs) and score the test split."""
    # the clock includes loading, as the product's does
    deadline = time.monotonic() + minutes * 60 if minutes is not None else float("inf")
    torch.manual_seed(seed)
    ds = load_dataset(root)
    x, y, tab = _tensors(ds, "train")
    net = Baseline(len(ds.spec.signs), film, ds.spec.max_score).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    epochs_done = steps = 0
    while time.monotonic() < deadline and (epochs is None or epochs_done < epochs):
        perm = torch.randperm(len(x))
        cut = len(x) - len(x) % batch if len(x) > batch else len(x)  # drop the short last batch
        for i in range(0, cut, batch):
            idx = perm[i:i + batch]
            xb = x[idx].contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                pred = net(xb, tab[idx])
            ok = y[idx] != IGNORE
            loss = (pred - y[idx].float()).abs()[ok].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if time.monotonic() >= deadline:
                break
        epochs_done += 1
    net.eval()
    res = {"epochs": epochs_done, "steps": steps}
    for shift in (False, True) if moved else (False,):
        xt, yt, tt = _tensors(ds, "test", moved=shift)
        with torch.no_grad():
            preds = [net(xt[i:i + 1].contiguous(memory_format=torch.channels_last), tt[i:i + 1])[0].numpy()
                     for i in range(len(xt))]
        out = score(preds, list(yt.numpy()))
        res.update({"moved_mae": out["pixel_mae"]} if shift else out)
    return res


def mean_runs(runs: list[dict]) -> dict:
    """The mean of each number over a model's runs (one per seed), with the runs kept."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: float(np.mean([r[k] for r in runs if r.get(k) is not None])) for k in keys
           if any(r.get(k) is not None for r in runs)}
    return {**out, "runs": runs}


def _f(v, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def paired(p_runs: list[dict], b_runs: list[dict], key: str) -> tuple[float, float, float] | None:
    """Mean of the per-seed differences product - baseline of `key`, with its 95 % interval
    (Student's t over the seeds); None under two seeds. Seeds pair the runs: same data, same
    seed, trained one after the other."""
    d = np.array([p[key] - b[key] for p, b in zip(p_runs, b_runs, strict=True)], np.float64)
    if len(d) < 2:
        return None
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def table(results: dict) -> str:
    head = f"{'task':14} {'row':17} {'acc':>7} {'mae':>7} {'moved_mae':>9} {'moved/true':>10} {'epochs':>7}  verdict"
    lines = [head, "-" * len(head)]
    for task, r in results.items():
        for name in ("product", "baseline"):
            m = r[name]
            ratio = m["moved_mae"] / m["pixel_mae"] if "moved_mae" in m and m["pixel_mae"] > 0 else None
            m["moved_ratio"] = ratio
            lines.append(f"{task:14} {name:17} {_f(m['pixel_accuracy']):>7} {_f(m['pixel_mae']):>7} "
                         f"{_f(m.get('moved_mae')):>9} {_f(ratio, '{:.2f}x'):>10} {_f(m['epochs'], '{}'):>7}")
        p, b = r["product"], r["baseline"]
        acc_r, mae_r = p["pixel_accuracy"] / b["pixel_accuracy"], p["pixel_mae"] / max(b["pixel_mae"], 1e-12)
        r["ratio"] = {"accuracy": acc_r, "mae": mae_r, "pass": acc_r >= 1 and mae_r <= 1}
        lines.append(f"{task:14} {'product/baseline':17} {acc_r:7.3f} {mae_r:7.3f} {'':>9} {'':>10} {'':>7}  "
                     f"{'PASS' if r['ratio']['pass'] else 'MISS'} (acc >= 1, mae <= 1)")
        pr, br = p.get("runs", []), b.get("runs", [])
        acc_d = paired(pr, br, "pixel_accuracy") if len(pr) == len(br) else None
        mae_d = paired(pr, br, "pixel_mae") if len(pr) == len(br) else None
        if acc_d is not None and mae_d is not None:
            r["paired"] = {"accuracy": acc_d, "mae": mae_d}
            lines.append(f"{task:14} {'product-baseline':17} accuracy {acc_d[0]:+.3f} [{acc_d[1]:+.3f}, {acc_d[2]:+.3f}], "
                         f"MAE {mae_d[0]:+.3f} [{mae_d[1]:+.3f}, {mae_d[2]:+.3f}] (mean over {len(p['runs'])} seeds, "
                         "95 % interval)")
        if "moved_mae" in p:
            ok = p["pixel_mae"] <= 0.3 and (p["moved_ratio"] or 0) >= 2
            r["age_target"] = {"pass": ok}
            lines.append(f"{task:14} {'product uses age':17} {'':>7} {p['pixel_mae']:7.3f} {p['moved_mae']:9.3f} "
                         f"{_f(p['moved_ratio'], '{:.2f}x'):>10} {'':>7}  {'PASS' if ok else 'MISS'} "
                         "(mae <= 0.3, moved >= 2x)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--minutes", type=float, default=3.0, help="wall-clock training budget per model")
    ap.add_argument("--n", type=int, default=300, help="images per task")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0, help="the data's seed")
    ap.add_argument("--seeds", default="0", help="training seeds, comma-separated: both models train once per seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--product-args", default="", help="extra `dermsev train` arguments (ablations)")
    ap.add_argument("--product-config", help="a `dermsev train --config` YAML for the product")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--keep", type=Path, help="keep datasets and models in this folder")
    a = ap.parse_args()
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    if bad := [t for t in tasks if t not in TASKS]:
        ap.error(f"unknown task(s) {bad}; allowed: {list(TASKS)}")
    print("$ " + shlex.join([sys.executable, *sys.argv]), flush=True)
    torch.set_num_threads(a.threads)
    extra = shlex.split(a.product_args) + (["--config", a.product_config] if a.product_config else [])
    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="bench_baseline_")
    work = a.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    results: dict = {}
    try:
        for task in tasks:
            t0 = time.monotonic()
            root = WRITERS[task](work / task, n=a.n, size=a.size, seed=a.seed)
            age = task == "age-sex"
            runs: dict[str, list[dict]] = {"product": [], "baseline": []}
            for seed in seeds:  # product and baseline alternate, so a change in machine load hits both
                out = work / f"{task}-product-{seed}"
                cmd = product_cmd(root, out, a.minutes, a.size, extra, seed)
                print(f"[{task}] seed {seed}; data in {root}; product: {shlex.join(cmd[1:])}", flush=True)
                runs["product"].append(run_product(root, out, cmd, a.threads, age))
                print(f"[{task}] seed {seed} product {runs['product'][-1]}", flush=True)
                runs["baseline"].append(run_baseline(root, a.minutes, seed, film=age, moved=age))
                print(f"[{task}] seed {seed} baseline {runs['baseline'][-1]} ({(time.monotonic() - t0) / 60:.1f} min)",
                      flush=True)
            results[task] = {name: mean_runs(r) for name, r in runs.items()}
    finally:
        if tmp is not None:
            tmp.cleanup()
    print()
    print(table(results))
    if a.json:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
        a.json.write_text(json.dumps({"command": sys.argv, "settings": settings, "results": results}, indent=2))


if __name__ == "__main__":
    main()
