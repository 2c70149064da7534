"""Score drift under re-lighting, blur, JPEG, rotation and rescaling, with and without white balance.

    .venv/bin/python bench/bench_robustness.py [--n 100] [--seed 31] [--threads 2]
        [--alternatives] [--ref-n 400] [--ref-seed 7] [--work /tmp/dermsev_bench_robustness]
        [--md docs/robustness.md] [--model MODEL_DIR]

--n synthetic skin photos (256 px, `model.synth.generator.generate`, seed --seed) are
perturbed (`perturbations`): colour temperature 3000-7500 K (von Kries gains in linear RGB
from the Planckian locus, relative to 6500 K, the clean photo), exposure +-0.5 and +-1 stop
(linear light), Gaussian blur, JPEG quality 50, rotation (90 degrees, 7 degrees) and
rescaling (0.5x, 0.75x, 1.5x). Each is scored by the demo model with each white balance
(`Predictor.predict_many(white_balance=...)`) and compared with the clean photo scored the
same way: per sign, the median and 95th percentile of |score change|. Only photos the gate
passes, clean and perturbed, count toward the target (median <= 0.1, p95 <= 0.3 per sign);
the others are counted as excluded. The 95th percentile of 50 photos is their third-largest
change, so one or two photos decide it: the default is 100 (the bundled model's ninth stage met
the target under 7 of 16 perturbations over 100 photos with TTA, against 9 over the first 50).
The clean photos' image MAE against the generator's truth shows what the balance itself costs. --alternatives adds other grey-world designs
(model/data/colour.py GreyWorld), applied to the arrays before scoring, against a reference
taken from --ref-n photos of the demo model's training generator (seed --ref-seed).
Prints markdown; --md writes it with the command line to that file.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.degrade import jpeg_file, relight, rescale, rotate  # noqa: E402
from model.data import colour  # noqa: E402
from model.data.io import read_image  # noqa: E402
from model.inference import load_model  # noqa: E402
from model.synth.generator import generate  # noqa: E402

MEDIAN_TARGET, P95_TARGET = 0.1, 0.3
ALTERNATIVES = {"grey-world, Planckian locus only": colour.GreyWorld(axis="planckian"),
                "grey-world, p=6": colour.GreyWorld(p=6.0)}


def perturbations() -> list[tuple[str, str, object]]:
    """(kind, step, f((H, W, 3) uint8) -> perturbed uint8 photo)."""
    out: list[tuple[str, str, object]] = []
    for k in (3000, 4000, 5000, 7500):
        gains = colour.planckian_gains(k)
        out.append(("colour temperature", f"{k} K", lambda im, g=gains: relight(im, g)))
    for e in (-1, -0.5, 0.5, 1):
        out.append(("exposure", f"{e:+g} stop", lambda im, e=e: relight(im, 2.0**e)))
    for s in (1.0, 2.0):
        out.append(("blur", f"Gaussian sigma {s:g} px", lambda im, s=s: cv2.GaussianBlur(im, (0, 0), s)))
    out.append(("JPEG", "quality 50", lambda im: jpeg_file(im, 50)))
    for d in (90, 7):
        out.append(("rotation", f"{d} degrees", lambda im, d=d: rotate(im, d)))
    for f in (0.5, 0.75, 1.5):
        out.append(("rescale", f"{f:g}x", lambda im, f=f: rescale(im, f)))
    return out


def photos(folder: Path, n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """(RGB uint8 photos, (n, S) true image scores, sign names) of a generated dataset."""
    if not (folder / "manifest.csv").exists():
        generate(folder, n=n, size=256, seed=seed, workers=1)
    rows = list(csv.DictReader((folder / "manifest.csv").open()))[:n]
    signs = [c[len("score_"):] for c in rows[0] if c.startswith("score_")]
    imgs = [cv2.imread(str(folder / r["image"]))[:, :, ::-1].copy() for r in rows]
    return imgs, np.array([[float(r[f"score_{s}"]) for s in signs] for r in rows]), signs


def scorer(predictor, method: str, cfg: colour.GreyWorld | None = None, reference: np.ndarray | None = None,
           tta: bool = False):
    """f(photos) -> ((n, S) scores, [gate verdicts]) with white balance `method`, or with the
    grey-world design `cfg` applied to the arrays first (the predictor's own balance off);
    tta: each photo scored as the mean of its four views (quarter turns), as the dashboard does by default."""

    def score(ims: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
        if cfg is not None:  # a JPEG file is decoded first (its quality is then not checked)
            ims = [colour.balance(read_image(im) if isinstance(im, bytes) else im, "grey-world", reference, cfg=cfg)[0]
                   for im in ims]  # fmt: skip
        res = list(predictor.predict_many(ims, white_balance="none" if cfg is not None else method, tta=tta))
        return np.array([[r.scores[s] for s in predictor.signs] for r in res]), [r.check for r in res]

    return score


def measure(score, imgs: list[np.ndarray], truth: np.ndarray) -> dict:
    """Per perturbation: per-sign median and p95 |change| over the photos the gate passes."""
    base, base_checks = score(imgs)
    out = {"clean_mae": np.abs(base - truth).mean(0), "clean_pass": sum(c == "pass" for c in base_checks), "rows": []}
    for kind, step, fn in perturbations():
        scores, checks = score([fn(im) for im in imgs])
        keep = np.array([a == "pass" and b == "pass" for a, b in zip(base_checks, checks, strict=True)])
        d = np.abs(scores - base)[keep]
        med = np.median(d, 0) if len(d) else np.full(base.shape[1], np.nan)
        p95 = np.percentile(d, 95, 0) if len(d) else np.full(base.shape[1], np.nan)
        d_all = np.abs(scores - base)
        # large changes where a sign is absent (score 0) on one side: a small patch crossing
        # the 1 % area rule or the first threshold, not a shifted severity
        big = (d_all > P95_TARGET) & keep[:, None]
        toggles = big & ((scores == 0) | (base == 0))
        out["rows"].append({"kind": kind, "step": step, "median": med, "p95": p95, "n": int(keep.sum()),
                            "excluded": int((~keep).sum()), "median_all": np.median(d_all, 0),
                            "p95_all": np.percentile(d_all, 95, 0), "big": big.sum(0), "toggles": toggles.sum(0),
                            "met": bool(len(d) and med.max() <= MEDIAN_TARGET and p95.max() <= P95_TARGET),
                            "outside": not len(d)})  # the gate passes none: no score reaches a clinician unwarned
    return out


def table(name: str, res: dict, signs: list[str]) -> list[str]:
    met = sum(r["met"] for r in res["rows"])
    outside = sum(r["outside"] for r in res["rows"])
    lines = [f"### {name}", "", f"Target met under {met} of {len(res['rows'])} perturbations; "
             f"{outside} lie wholly outside the gate's pass range (it passes none of their photos). "
             f"Cells: median / 95th percentile of |score change| (0..3) over the photos the gate passes, "
             "**bold** where over the target.", "",
             "| perturbation | " + " | ".join(signs) + " | photos counted (excluded) | changes > 0.3 (sign appears or "
             "vanishes) | all photos, worst sign median / p95 |",
             "|---|" + "---|" * (len(signs) + 3)]
    for r in res["rows"]:
        cells = []
        for m, p in zip(r["median"], r["p95"], strict=True):
            ms = f"**{m:.2f}**" if m > MEDIAN_TARGET else f"{m:.2f}"
            ps = f"**{p:.2f}**" if p > P95_TARGET else f"{p:.2f}"
            cells.append(f"{ms} / {ps}")
        lines.append(f"| {r['kind']} {r['step']} | " + " | ".join(cells) + f" | {r['n']} ({r['excluded']}) | "
                     f"{r['big'].sum()} ({r['toggles'].sum()}) | {r['median_all'].max():.2f} / {r['p95_all'].max():.2f} |")
    return lines


def summary(results: dict, signs: list[str]) -> list[str]:
    """Per sign: over the perturbations the balance cannot touch as well, the share of large
    changes that are a sign appearing or vanishing."""
    lines = ["| white balance | perturbations meeting the target (outside the gate's pass range) | " + " | ".join(
        f"{s}: changes > 0.3 (appear/vanish)" for s in signs) + " |", "|---|---|" + "---|" * len(signs)]
    for name, res in results.items():
        big = np.sum([r["big"] for r in res["rows"]], axis=0)
        tog = np.sum([r["toggles"] for r in res["rows"]], axis=0)
        lines.append(f"| {name} | {sum(r['met'] for r in res['rows'])} of {len(res['rows'])} "
                     f"({sum(r['outside'] for r in res['rows'])}) | "
                     + " | ".join(f"{b} ({t})" for b, t in zip(big, tog, strict=True)) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="synthetic photos (a p95 over fewer is decided by one or two photos)")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alternatives", action="store_true", help="also measure other grey-world designs")
    ap.add_argument("--ref-n", type=int, default=400, help="photos for the alternatives' reference")
    ap.add_argument("--ref-seed", type=int, default=7, help="the demo model's training generator seed")
    ap.add_argument("--work", default="/tmp/dermsev_bench_robustness")
    ap.add_argument("--md", help="write the tables, with the command, to this markdown file")
    ap.add_argument("--model", help="MODEL_DIR to measure (default: the bundled demo model)")
    ap.add_argument("--tta", action="store_true",
                    help="score with test-time augmentation (four quarter-turned views), as the dashboard does by default")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    t0 = time.time()
    predictor = load_model(a.model, backend="torch-fp32")
    imgs, truth, signs = photos(Path(a.work) / f"photos{a.seed}_{a.n}", a.n, a.seed)
    runs = {"none": scorer(predictor, "none", tta=a.tta),
            "grey-world (default)": scorer(predictor, "grey-world", tta=a.tta)}
    if a.alternatives:
        ref_imgs, _, _ = photos(Path(a.work) / f"reference{a.ref_seed}_{a.ref_n}", a.ref_n, a.ref_seed)
        for name, cfg in ALTERNATIVES.items():
            ref = np.array(colour.training_reference(ref_imgs, cfg)["rgb"])
            runs[name] = scorer(predictor, "none", cfg, ref, tta=a.tta)
    results = {name: measure(fn, imgs, truth) for name, fn in runs.items()}
    which = "demo model" if a.model is None else f"model {a.model}"
    out = [f"{len(imgs)} synthetic photos (seed {a.seed}, 256 px), {which}, backend {predictor.backend}"
           f"{', test-time augmentation (four quarter-turned views)' if a.tta else ''}"
           f"{', grey-world with exposure normalised (the model was trained so)' if predictor.exposure_target else ''}. "
           f"Target per sign: median <= {MEDIAN_TARGET}, p95 <= {P95_TARGET}.", "",
           "## What the balance costs on clean photos", "",
           "| white balance | clean photos the gate passes | " + " | ".join(f"image MAE {s}" for s in signs)
           + " | mean |", "|---|---|" + "---|" * (len(signs) + 1)]
    for name, res in results.items():
        mae = res["clean_mae"]
        out.append(f"| {name} | {res['clean_pass']} of {len(imgs)} | " + " | ".join(f"{v:.3f}" for v in mae)
                   + f" | {mae.mean():.3f} |")
    out += ["", "## Summary", "", *summary(results, signs), "", "## Drift per perturbation", ""]
    for name, res in results.items():
        out += [*table(f"white balance: {name}", res, signs), ""]
    cmd = "$ " + shlex.join([".venv/bin/python", "bench/bench_robustness.py", *sys.argv[1:]])
    text = "\n".join(out) + f"\n({time.time() - t0:.0f} s)\n"
    print(text)
    if a.md:
        Path(a.md).write_text(f"# Robustness of the scores\n\n<!-- measured by -->\n\n    {cmd}\n\n{text}")


if __name__ == "__main__":
    main()
