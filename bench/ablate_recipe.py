"""Ablation of the default training recipe on bench_baseline's tasks, at a fixed epoch count.

    .venv/bin/python bench/ablate_recipe.py --task colour-combos --epochs 20 --seeds 0,1 \
        --variants default,film=none,augment=none --json /tmp/ablate.json

Each variant changes one thing of the default `dermsev train` recipe (TrainConfig fields as
key=value, plus the network/loop changes below that have no setting) and trains in this
process on the same generated data with each seed; the test split is scored as
bench_baseline scores it (pooled label accuracy and MAE over annotated pixels, no white
balance). A fixed epoch count takes throughput out of the comparison: bench_baseline.py
compares at equal wall clock.

Changes without a TrainConfig field:
  decoder=smp       smp's default decoder widths (256, 128, 64, 32, 16) instead of (128, ..., 16)
  output=sigmoid    sign maps = sigmoid(logits) * max_score (training and prediction)
  schedule=constant constant learning rate (no warm-up, no cosine)
  clip=off          no gradient-norm clipping
  norm=unit         input scaled 0..1 only (mean 0, std 1) instead of the training set's statistics
  select=final      keep the last epoch's weights instead of the best validation epoch's
  loss=bounded      no pixel loss for a prediction beyond the scale where the truth is at that end
                    (below 0 for a 0, above max_score for a max_score): the default since ee2af42
  loss=plain        plain MAE at the ends too (the default before ee2af42)
  tabdrop=P         the tabular branch drops age and sex with chance P in training (the same as
                    the TrainConfig field tabular_dropout=P)
Variants combine with '+': "film=none+augment=none". The variant "baseline" is bench_baseline's
bare U-Net trained for the same number of epochs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_baseline as bb  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from model.data.dataset import load_dataset, load_example  # noqa: E402
from model.training import fit as fit_mod  # noqa: E402
from model.training import train as train_mod  # noqa: E402

LOOP_CHANGES = {"decoder": ("smp",), "output": ("sigmoid",), "schedule": ("constant",), "clip": ("off",),
                "norm": ("unit",), "select": ("final",), "tabdrop": ("0", "0.05", "0.1"),
                "loss": ("bounded", "plain")}


def parse_variant(text: str) -> tuple[dict, dict]:
    """"film=none+decoder=smp" -> (TrainConfig overrides, loop changes)."""
    fields = {f.name: f for f in dataclasses.fields(train_mod.TrainConfig)}
    cfg, loop = {}, {}
    for part in filter(None, text.split("+")):
        if part == "default":
            continue
        key, _, value = part.partition("=")
        if key in LOOP_CHANGES:
            if value not in LOOP_CHANGES[key]:
                raise SystemExit(f"{key} must be one of {LOOP_CHANGES[key]}, got {value!r}")
            loop[key] = value
        elif key in fields:
            default = fields[key].default
            cfg[key] = type(default)(value) if isinstance(default, (int, float)) and not isinstance(default, bool) else value
        else:
            raise SystemExit(f"unknown setting {key!r} in variant {text!r}")
    return cfg, loop


class Patched:
    """Applies the loop changes to the trainer's modules for one run, then undoes them."""

    def __init__(self, loop: dict):
        self.loop, self.saved = loop, []

    def _set(self, obj, name: str, value) -> None:
        self.saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def __enter__(self):
        loop = self.loop
        if loop.get("decoder") == "smp" or loop.get("norm") == "unit":
            orig_cfg = train_mod.net_config

            def net_config(ds, cfg, mean, std):
                n = orig_cfg(ds, cfg, mean, std)
                if loop.get("decoder") == "smp":
                    n = dataclasses.replace(n, decoder_channels=(256, 128, 64, 32, 16)[5 - cfg.encoder_depth:])
                if loop.get("norm") == "unit":
                    n = dataclasses.replace(n, mean=(0.0,) * len(n.channels), std=(1.0,) * len(n.channels))
                return n

            self._set(train_mod, "net_config", net_config)
        if loop.get("output") == "sigmoid":
            net_cls = fit_mod.DermSevNet
            orig_fwd = net_cls.forward

            def forward(net, x, age=None, sex=None, raw=False):
                out = orig_fwd(net, x, age, sex, raw=True)
                s = net.cfg.n_signs
                maps = torch.sigmoid(out[:, :s]) * net.cfg.max_score
                rest = out[:, s:] if raw else torch.sigmoid(out[:, s:])
                return torch.cat([maps, rest], dim=1)

            self._set(net_cls, "forward", forward)
        if loop.get("schedule") == "constant":
            self._set(fit_mod, "schedule_factor", lambda *a, **k: 1.0)
            self._set(fit_mod, "clock_factor", lambda *a, **k: 1.0)
        if loop.get("clip") == "off":
            self._set(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: torch.tensor(0.0))
        if "loss" in loop:
            from model.training import losses

            bounded = loop["loss"] == "bounded"

            def masked_mae(pred, target, weights=None, max_score=None):
                return losses.masked_mae(pred, target, weights, max_score=max_score if bounded else None)

            self._set(fit_mod, "masked_mae", masked_mae)
        if loop.get("select") == "final":
            # fit keeps a deep copy of the best state and loads it at the end: copy the live
            # state dict's tensors by reference instead, so the "best" is always the latest
            real_deepcopy = copy.deepcopy
            self._set(fit_mod.copy, "deepcopy", lambda obj, *a: obj if isinstance(obj, dict) else real_deepcopy(obj, *a))
        return self

    def __exit__(self, *exc):
        for obj, name, value in reversed(self.saved):
            setattr(obj, name, value)


def run(root: Path, out: Path, variant: str, epochs: int, seed: int, size: int, moved: bool) -> dict:
    overrides, loop = parse_variant(variant)
    if "tabdrop" in loop:
        overrides["tabular_dropout"] = float(loop.pop("tabdrop"))
    cfg = train_mod.TrainConfig(epochs=epochs, image_size=size, seed=seed, min_progress=1.0, **overrides)
    t0 = time.monotonic()
    with Patched(loop):
        summary = train_mod.train(root, out, cfg, progress=False)
        net = train_mod.load_network(out)[0]
        net.eval()
        ds = load_dataset(root)
        recs = ds.subset("test")
        preds, truths, moved_preds = [], [], []
        with torch.no_grad():
            for rec in recs:
                img, masks = load_example(rec, ds.spec)
                x = torch.from_numpy(img.transpose(2, 0, 1)).float()[None]
                sex = torch.tensor([{"F": 1, "M": 2}.get(rec.sex, 0)])
                for shift, sink in ((False, preds), (True, moved_preds)) if moved else ((False, preds),):
                    age = bb.move_age(rec.age) if shift else rec.age
                    out_maps = net(x, torch.tensor([float(age)]), sex)[0, : net.cfg.n_signs]
                    sink.append(out_maps.numpy())
                truths.append(np.stack(masks))
    res = {**bb.score(preds, truths), "epochs": summary.get("epochs_run"), "best_epoch": summary.get("best_epoch"),
           "minutes": round((time.monotonic() - t0) / 60, 2)}
    if (dice := (summary.get("val_metrics") or {}).get("skin_dice")) is not None:  # a skin channel
        res["val_skin_dice"] = round(float(dice), 4)
    if moved:
        res["moved_mae"] = bb.score(moved_preds, truths)["pixel_mae"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="colour-combos", choices=bb.TASKS)
    ap.add_argument("--variants", default="default")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, help="reuse (or write) the task's data here")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in variants:
        if v != "baseline":
            parse_variant(v)  # fail before any training
    tmp = tempfile.TemporaryDirectory(prefix="ablate_")
    root = a.data or Path(tmp.name) / a.task
    if not (root / "manifest.csv").is_file():
        bb.WRITERS[a.task](root, n=a.n, size=a.size, seed=a.data_seed)
    results = json.loads(a.json.read_text()) if a.json and a.json.is_file() else {}
    for v in variants:
        for s in seeds:
            key = f"{v}|{s}"
            if key in results:
                continue
            if v == "baseline":  # the bare U-Net of bench_baseline.py, same epochs
                t0 = time.monotonic()
                results[key] = {**bb.run_baseline(root, None, s, film=a.task == "age-sex", moved=a.task == "age-sex",
                                                  epochs=a.epochs), "minutes": round((time.monotonic() - t0) / 60, 2)}
                print(f"{a.task} {v:40} seed {s}: {json.dumps(results[key])}", flush=True)
                continue
            results[key] = run(root, Path(tmp.name) / f"m{len(results)}", v, a.epochs, s, a.size, a.task == "age-sex")
            print(f"{a.task} {v:40} seed {s}: {json.dumps(results[key])}", flush=True)
            if a.json:
                a.json.write_text(json.dumps(results, indent=1))
    print(f"\n{'variant':40} {'acc mean':>9} {'mae mean':>9}  per seed acc")
    for v in variants:
        rs = [results[f"{v}|{s}"] for s in seeds]
        accs = [r["pixel_accuracy"] for r in rs]
        print(f"{v:40} {np.mean(accs):9.3f} {np.mean([r['pixel_mae'] for r in rs]):9.3f}  "
              + " ".join(f"{x:.3f}" for x in accs))
    tmp.cleanup()


if __name__ == "__main__":
    main()
