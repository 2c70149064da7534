"""The seed question: per-sign regression vs a 4^4 = 256-class per-pixel classifier on
combinations of sign severities never seen in training.

    .venv/bin/python bench/bench_unseen_combos.py --n 400 --size 128 --epochs 10 --threads 1 \
        --doc docs/unseen_combinations.md

Synthetic data (`model.synth.generator.generate`) draws every sign's peak severity independently, so
every 4-tuple occurs. A seeded fraction of the observed image tuples (erythema, papulation,
excoriation, lichenification peak levels, with at least two signs present) is held out:
every image with a held-out tuple goes to the "unseen" test set, and in the training images
every pixel whose per-pixel 4-sign combination is held out is masked out of the loss, so no
held-out combination is ever supervised. Both models (same U-Net, encoder, FiLM branch,
optimiser, schedule, steps, augmentation, bf16 autocast) train on exactly the same pixels.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from model.data import augment  # noqa: E402
from model.data.dataset import IGNORE, load_dataset  # noqa: E402
from model.data.trainset import CachedExamples, SeverityDataset, eval_batches  # noqa: E402
from model.nets.unet import DermSevNet, NetConfig  # noqa: E402
from model.scoring.metrics import to_labels  # noqa: E402
from model.scoring.summary import easi_scores  # noqa: E402
from model.training.fit import compute_loss  # noqa: E402
from model.training.train import TrainConfig  # noqa: E402

LEVELS = 4  # severities 0..3
KINDS = ("regression", "classifier")
ROW_MODELS = (("regression", "4-output regression"), ("argmax", "256-class, argmax"),
              ("marginal", "256-class, per-sign marginals"), ("zeros", "reference: all 'none'"))


# ---- combinations -------------------------------------------------------------------------

def encode(levels: np.ndarray) -> np.ndarray:
    """(S, ...) integer levels 0..3 -> (...) combination index (e*64 + p*16 + x*4 + l for S=4)."""
    levels = np.asarray(levels, np.int64)
    idx = np.zeros(levels.shape[1:], np.int64)
    for lv in levels:
        idx = idx * LEVELS + lv
    return idx


def decode(idx: np.ndarray, n_signs: int = 4) -> np.ndarray:
    """(...) combination index -> (S, ...) integer levels; the inverse of `encode`."""
    idx = np.asarray(idx, np.int64)
    out = np.empty((n_signs, *idx.shape), np.int64)
    for k in range(n_signs - 1, -1, -1):
        out[k] = idx % LEVELS
        idx = idx // LEVELS
    return out


def image_tuple(masks: list[np.ndarray]) -> tuple[int, ...]:
    """Per-sign peak severity over annotated pixels (the synthetic generator's drawn level)."""
    return tuple(int(m[m != IGNORE].max()) if (m != IGNORE).any() else 0 for m in masks)


def mask_for_training(masks: list[np.ndarray], held: set[int]) -> list[np.ndarray]:
    """Copies of (H, W) uint8 masks where every pixel with a held-out 4-sign combination, or
    any sign unannotated, is IGNORE in all signs (so both models see the same pixels)."""
    m = np.stack(masks)
    unknown = (m == IGNORE).any(0)
    combo = encode(np.where(m == IGNORE, 0, m))
    drop = unknown | np.isin(combo, sorted(held))
    m = m.copy()
    m[:, drop] = IGNORE
    return list(m)


def combo_split(tuples: list[tuple[int, ...]], patients: list[str], frac: float = 0.2,
                test_frac: float = 0.2, seed: int = 0) -> dict:
    """Hold out `frac` of the observed image tuples with >= 2 signs present; their images form
    the unseen test set. The rest is split by patient into train and a seen test set.
    Returns {"held": set of combination indices, "train", "seen", "unseen": index lists}."""
    rng = np.random.default_rng(seed)
    eligible = sorted({t for t in tuples if sum(v > 0 for v in t) >= 2})
    k = max(1, round(frac * len(eligible))) if eligible else 0
    chosen = [eligible[i] for i in rng.choice(len(eligible), size=k, replace=False)]
    held = {int(encode(np.array(t))) for t in chosen}
    unseen = [i for i, t in enumerate(tuples) if int(encode(np.array(t))) in held]
    rest = [i for i in range(len(tuples)) if i not in set(unseen)]
    groups: dict[str, list[int]] = defaultdict(list)
    for i in rest:
        groups[patients[i]].append(i)
    pids = sorted(groups)
    rng.shuffle(pids)
    seen: list[int] = []
    for pid in pids:
        if len(seen) >= test_frac * len(rest) or len(groups) < 2:
            break
        seen += groups[pid]
    train = sorted(set(rest) - set(seen))
    return {"held": held, "train": train, "seen": sorted(seen), "unseen": unseen}


# ---- models and training --------------------------------------------------------------------

class ComboNet(DermSevNet):
    """The same U-Net + FiLM as DermSevNet with 256 output channels returning raw logits."""

    def forward(self, x, age=None, sex=None):  # (B, 256, H, W) float32 logits
        b = x.shape[0]
        features = list(self.encoder(self.normalise(x)))
        if self.tabular is not None:
            age = torch.full((b,), float("nan")) if age is None else age
            sex = torch.zeros(b, dtype=torch.long) if sex is None else sex
            gamma, beta = self.tabular(age, sex)
            i = self._film_idx[0]
            features[i] = features[i] * (1 + gamma.to(features[i].dtype)) + beta.to(features[i].dtype)
        return self.head(self.decoder(features)).float()


def build(kind: str, encoder: str, mean: list[float], std: list[float], seed: int) -> DermSevNet:
    torch.manual_seed(seed)
    if kind == "regression":
        return DermSevNet(NetConfig(encoder=encoder, mean=tuple(mean), std=tuple(std)))
    cfg = NetConfig(signs=tuple(f"c{i}" for i in range(LEVELS**4)), encoder=encoder,
                    mean=tuple(mean), std=tuple(std), film="deepest")
    return ComboNet(cfg)


REGION_LOSS_WEIGHT = TrainConfig.region_loss_weight


def combo_target(masks: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) uint8 masks -> (B, H, W) long class index, -100 where any sign is IGNORE."""
    m = masks.long()
    idx = ((m[:, 0] * LEVELS + m[:, 1]) * LEVELS + m[:, 2]) * LEVELS + m[:, 3]
    return torch.where((masks == IGNORE).any(1), torch.full_like(idx, -100), idx)


def train(net: DermSevNet, kind: str, cache: CachedExamples, idx: list[int], epochs: int,
          batch_size: int, lr: float = 2e-3, seed: int = 0, max_steps: int | None = None) -> dict:
    """model/training/fit.py's recipe without early stopping: AdamW, warm-up + cosine, bf16 autocast,
    channels_last, full augmentation, gradient clipping; a fixed number of steps."""
    ds = SeverityDataset(cache, idx, augment.train_transform(cache.size, "full", seed=seed))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0,
                        generator=torch.Generator().manual_seed(seed), drop_last=len(ds) > batch_size)
    steps = max_steps or epochs * len(loader)
    warm = max(1, int(0.05 * steps))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    net.to(memory_format=torch.channels_last).train()
    done, t0, losses = 0, time.perf_counter(), []
    while done < steps:
        for batch in loader:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                if kind == "regression":  # the product's loss: MAE on the unclamped maps + region MAE
                    loss, _ = compute_loss(net, batch, "pixel", 1.0, 0.0, REGION_LOSS_WEIGHT)
                else:
                    out = net(batch["image"], batch["age"], batch["sex"])
            if kind != "regression":
                loss = F.cross_entropy(out.float(), combo_target(batch["masks"]), ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            done += 1
            if done % max(1, len(loader)) == 0 or done == steps:
                print(f"  {kind} step {done}/{steps} loss {np.mean(losses[-len(loader):]):.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if done >= steps:
                break
    net.eval()
    return {"steps": steps, "seconds": time.perf_counter() - t0, "final_loss": float(np.mean(losses[-10:]))}


# ---- evaluation -----------------------------------------------------------------------------

@torch.no_grad()
def predict_levels(net: DermSevNet, kind: str, batch: dict) -> dict[str, np.ndarray]:
    """{row model: (B, 4, H, W) float severities}; classifier rows are integer levels."""
    x = batch["image"].contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, batch["age"], batch["sex"]).float()
    if kind == "regression":
        return {"regression": out.numpy()}
    b, _, h, w = out.shape
    argmax = decode(out.argmax(1).numpy()).transpose(1, 0, 2, 3)
    p = out.softmax(1).reshape(b, LEVELS, LEVELS, LEVELS, LEVELS, h, w)
    marg = torch.stack([p.sum(dim=tuple(d for d in range(1, 5) if d != k + 1)) for k in range(4)], 1)
    return {"argmax": argmax.astype(np.float32), "marginal": marg.argmax(2).numpy().astype(np.float32)}


class Acc:
    """Running sums for one (row model, test set)."""

    def __init__(self, n_signs: int):
        self.err, self.correct, self.n = np.zeros(n_signs), np.zeros(n_signs), np.zeros(n_signs)
        self.exact = self.n_full = self.u_exact = self.u_n = self.u_err = self.u_signs = 0.0
        self.l_exact = self.l_n = 0.0  # lesion pixels (not all 'none') of seen combinations
        self.img_err: list[float] = []


@torch.no_grad()
def evaluate(nets: dict[str, DermSevNet], cache: CachedExamples, idx: list[int], held: set[int],
             thresholds: tuple[float, ...]) -> dict[str, dict]:
    """Per row model: per-sign pixel MAE, pixel accuracy, exact 4-sign combination rate,
    EASI image-score MAE, and MAE / exact rate on the pixels whose true combination is held out."""
    accs = {row: Acc(4) for row, _ in ROW_MODELS}
    held_arr = np.array(sorted(held))
    for batch in eval_batches(cache, idx, 8):
        masks = batch["masks"].numpy().astype(np.int64)
        valid = batch["valid"].numpy()[:, 0]
        preds = {"zeros": np.zeros(masks.shape, np.float32)}
        for kind, net in nets.items():
            preds.update(predict_levels(net, kind, batch))
        for row, maps in preds.items():
            a = accs[row]
            for b in range(maps.shape[0]):
                m, v = masks[b], valid[b]
                ann = (m != IGNORE) & v
                labels = to_labels(maps[b], thresholds)
                for k in range(4):
                    a.err[k] += np.abs(maps[b, k] - m[k])[ann[k]].sum()
                    a.correct[k] += (labels[k] == m[k])[ann[k]].sum()
                    a.n[k] += ann[k].sum()
                full = ann.all(0)
                ok = (labels == m).all(0)
                a.exact += ok[full].sum()
                a.n_full += full.sum()
                combo = encode(np.where(m == IGNORE, 0, m))
                unseen = full & np.isin(combo, held_arr)
                a.u_exact += ok[unseen].sum()
                a.u_signs += (labels == m)[:, unseen].mean(0).sum()
                lesion = full & ~unseen & (combo > 0)
                a.l_exact += ok[lesion].sum()
                a.l_n += lesion.sum()
                a.u_n += unseen.sum()
                a.u_err += np.abs(maps[b] - m)[:, unseen].sum() / 4
                pred_scores = easi_scores(maps[b], v, thresholds[0])
                truth = batch["scores"][b].numpy()
                a.img_err.append(float(np.nanmean(np.abs(pred_scores - truth))))
    out = {}
    for row, a in accs.items():
        n = np.maximum(a.n, 1)
        out[row] = {"n_images": len(idx), "pixel_mae": float((a.err / n).mean()),
                    "per_sign_mae": [float(v) for v in a.err / n],
                    "pixel_accuracy": float((a.correct / n).mean()),
                    "exact_combo": a.exact / max(a.n_full, 1), "image_mae": float(np.mean(a.img_err)),
                    "exact_seen_lesion": a.l_exact / a.l_n if a.l_n else None,
                    "unseen_sign_accuracy": a.u_signs / a.u_n if a.u_n else None,
                    "unseen_pixels": int(a.u_n),
                    "unseen_mae": a.u_err / a.u_n if a.u_n else None,
                    "unseen_exact": a.u_exact / a.u_n if a.u_n else None}
    return out


def run(data: Path, size: int, epochs: int, batch_size: int, encoder: str, frac: float, seed: int,
        max_steps: int | None = None) -> dict:
    ds = load_dataset(data)
    cache = CachedExamples(ds.records, ds.spec, size)
    tuples = [image_tuple(m) for m in cache.masks]
    split = combo_split(tuples, [r.patient_id for r in ds.records], frac=frac, seed=seed)
    held = split["held"]
    before = after = 0
    for i in split["train"]:
        before += int((np.stack(cache.masks[i]) != IGNORE).all(0).sum())
        cache.masks[i] = mask_for_training(cache.masks[i], held)
        after += int((cache.masks[i][0] != IGNORE).sum())
    pix = np.concatenate([cache.images[i].reshape(-1, len(ds.spec.channels)) for i in split["train"]]).astype(np.float64)
    mean, std = pix.mean(0).tolist(), np.maximum(pix.std(0), 1e-3).tolist()  # training images only
    nets, fits = {}, {}
    for kind in KINDS:
        print(f"training {kind} on {len(split['train'])} images", flush=True)
        nets[kind] = build(kind, encoder, mean, std, seed)
        fits[kind] = train(nets[kind], kind, cache, split["train"], epochs, batch_size, seed=seed,
                           max_steps=max_steps)
    results = {name: evaluate(nets, cache, split[name], held, ds.spec.thresholds) for name in ("unseen", "seen")}
    return {"results": results, "fits": fits, "held": sorted(held), "n_tuples": len(set(tuples)),
            "sizes": {k: len(split[k]) for k in ("train", "seen", "unseen")},
            "masked_frac": 1 - after / max(before, 1)}


def _f(v, pct: bool = False) -> str:
    return "-" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3f}")


def table(out: dict) -> str:
    lines = ["| model | test set | images | pixel MAE | pixel acc | exact 4-sign combo | exact combo, lesion "
             "pixels of seen combos | image MAE (EASI) | unseen-combo pixels | MAE there | per-sign acc there "
             "| exact combo there |", "|" + "---|" * 12]
    for name, label in (("unseen", "unseen combos"), ("seen", "seen combos")):
        for row, title in ROW_MODELS:
            r = out["results"][name][row]
            lines.append(f"| {title} | {label} | {r['n_images']} | {_f(r['pixel_mae'])} | {_f(r['pixel_accuracy'], True)} "
                         f"| {_f(r['exact_combo'], True)} | {_f(r['exact_seen_lesion'], True)} | {_f(r['image_mae'])} "
                         f"| {r['unseen_pixels']} | {_f(r['unseen_mae'])} | {_f(r['unseen_sign_accuracy'], True)} "
                         f"| {_f(r['unseen_exact'], True)} |")
    lines += ["", "Per-sign pixel MAE (erythema / papulation / excoriation / lichenification):", "",
              "| model | unseen combos | seen combos |", "|---|---|---|"]
    for row, title in ROW_MODELS:
        cells = [" / ".join(f"{v:.3f}" for v in out["results"][n][row]["per_sign_mae"]) for n in ("unseen", "seen")]
        lines.append(f"| {title} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


BEGIN, END = "<!-- table: written by bench/bench_unseen_combos.py -->", "<!-- /table -->"


def _generator_version() -> str:
    """The commit the synthetic generator comes from (the data change when it does)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "model/synth*.py"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted edits to model/synth*.py" if dirty else "")


def settings(a: argparse.Namespace, out: dict, minutes: float) -> str:
    fit = out["fits"]["regression"]
    return (f"Generator: model/synth/generator.py at commit {_generator_version()}.\n\n"
            f"Command: `.venv/bin/python bench/bench_unseen_combos.py --n {a.n} --size {a.size} --epochs {a.epochs} "
            f"--batch-size {a.batch_size} --encoder {a.encoder} --holdout {a.holdout} --seed {a.seed} "
            f"--data-seed {a.data_seed} --threads {a.threads} --doc {a.doc}`\n\n"
            f"Settings: {a.n} synthetic images at {a.size} px (data seed {a.data_seed}); {len(out['held'])} of "
            f"{out['n_tuples']} observed image tuples held out (split seed {a.seed}); images train / seen test / "
            f"unseen test = {out['sizes']['train']} / {out['sizes']['seen']} / {out['sizes']['unseen']}; "
            f"{100 * out['masked_frac']:.1f}% of fully annotated training pixels masked out of both losses; "
            f"{a.encoder} U-Net with FiLM(age, sex), AdamW lr 2e-3, warm-up + cosine, {a.epochs} epochs = "
            f"{fit['steps']} steps of batch {a.batch_size} for both models, full augmentation, bf16 autocast, "
            f"{a.threads} CPU thread(s); training {fit['seconds'] / 60:.1f} min (regression) and "
            f"{out['fits']['classifier']['seconds'] / 60:.1f} min (classifier); {minutes:.1f} min in all.")


def write_doc(path: Path, md: str, note: str) -> None:
    """Replace the generated block of `path` (or start the file), keeping any hand-written text."""
    block = f"{BEGIN}\n{note}\n\n{md}\n{END}"
    text = path.read_text() if path.is_file() else f"# Unseen combinations of sign severities\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--holdout", type=float, default=0.2, help="fraction of observed tuples held out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", type=Path, default=None, help="write the table to this markdown file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from model.synth.generator import generate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "d", n=a.n, size=a.size, seed=a.data_seed)
        out = run(Path(tmp) / "d", a.size, a.epochs, a.batch_size, a.encoder, a.holdout, a.seed)
    minutes = (time.perf_counter() - t0) / 60
    md = table(out)
    print(md)
    print(f"held-out combinations: {len(out['held'])} of {out['n_tuples']} observed image tuples; "
          f"split {out['sizes']}; {100 * out['masked_frac']:.1f}% of fully annotated training pixels masked; "
          f"{minutes:.1f} min")
    if a.doc:
        write_doc(a.doc, md, settings(a, out, minutes))


if __name__ == "__main__":
    main()
