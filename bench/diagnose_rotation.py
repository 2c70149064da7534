"""Where the score changes under a small rotation come from: the frame's content, or the maps.

    .venv/bin/python bench/diagnose_rotation.py [--n 100] [--seed 31] [--degrees 7] [--threads 2]
        [--sign lichenification] [--tta] [--model MODEL_DIR] [--md OUT.md]

bench/bench_robustness.py turns each photo by --degrees (`bench.degrade.rotate`: the corners
filled by reflection) and compares its scores with the clean photo's. Two things change at
once: the content (the reflected corners are new, the parts turned out of frame are gone) and
the pixels (every pixel is resampled). This scores both photos a second time over only the
content they share (`shared_content`: the clean photo's pixels that land inside the turned
frame, and the turned frame's pixels that come from inside the photo) and reports the drift
both ways. For one sign it then profiles the false positives on the photos whose true score
for that sign is 0 (`false_positive_profile`): their density (the share of pixels counted
affected, weighted as the score's ramp weighs them) by distance to the frame's edge and by
brightness relative to the photo's median, clean and turned. Photos as bench_robustness
makes them (same --work folder and seed), white balance grey-world, as `predict` scores.
"""

from __future__ import annotations

import argparse
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

from bench.bench_robustness import MEDIAN_TARGET, P95_TARGET, photos  # noqa: E402
from bench.degrade import rotate  # noqa: E402
from model.data.scores import affected_weight  # noqa: E402
from model.inference import load_model  # noqa: E402

EDGE_BANDS = ((0, 8), (8, 16), (16, 32), (32, 64), (64, None))  # px from the nearest edge
BRIGHTNESS_BINS = ((0.0, 0.7), (0.7, 0.85), (0.85, 1.0), (1.0, 1.15), (1.15, None))  # / the photo's median
EDGE, INNER = 16, 32  # "at the edge": under EDGE px from it; "inside": INNER px or more


def shared_content(h: int, w: int, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """(clean, turned): (h, w) bool masks of the content a photo and its turn by `degrees`
    (about the centre, as `bench.degrade.rotate`) share: the clean photo's pixels that land
    inside the turned frame, and the turned frame's pixels whose source lies inside the photo."""
    if degrees % 90 == 0:
        return np.ones((h, w), bool), np.ones((h, w), bool)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    ones = np.ones((h, w), np.uint8)

    def warp(mat: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(ones, mat, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0).astype(bool)

    return warp(cv2.invertAffineTransform(m)), warp(m)


def edge_distance(h: int, w: int) -> np.ndarray:
    """(h, w) int: each pixel's distance in pixels to the nearest edge of the frame (0 on it)."""
    yy, xx = np.mgrid[:h, :w]
    return np.minimum.reduce([yy, xx, h - 1 - yy, w - 1 - xx])


def _band(values: np.ndarray, lo: float, hi: float | None) -> np.ndarray:
    return (values >= lo) & (values < (np.inf if hi is None else hi))


def false_positive_profile(weights: np.ndarray, skins: np.ndarray, greys: np.ndarray) -> dict:
    """weights: (N, h, w) affected weight of one sign on N photos whose true score is 0 (every
    affected pixel a false positive); skins: (N, h, w) bool; greys: (N, h, w) brightness.
    Returns {"edge": [(band, density)], "brightness": [(bin, share of skin, density at the
    edge, density inside)]}: density = mean weight over the skin pixels in that band or bin."""
    dist = np.broadcast_to(edge_distance(*weights.shape[1:]), weights.shape)
    rel = greys / np.maximum(np.median(greys.reshape(len(greys), -1), axis=1), 1e-6)[:, None, None]

    def density(sel: np.ndarray) -> float:
        sel = sel & skins
        return float(weights[sel].mean()) if sel.any() else float("nan")

    edge = [((lo, hi), density(_band(dist, lo, hi))) for lo, hi in EDGE_BANDS]
    bright = []
    for lo, hi in BRIGHTNESS_BINS:
        sel = _band(rel, lo, hi)
        bright.append(((lo, hi), float((sel & skins).sum() / max(skins.sum(), 1)), density(sel & (dist < EDGE)),
                       density(sel & (dist >= INNER))))
    return {"edge": edge, "brightness": bright}


def drift(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sign: median and 95th percentile of |a - b| over the rows, and the count over P95_TARGET."""
    d = np.abs(a - b)
    return np.median(d, 0), np.percentile(d, 95, 0), (d > P95_TARGET).sum(0)


def _range(lo: float, hi: float | None, unit: str = "") -> str:
    return f"{lo:g}{unit} and more" if hi is None else f"{lo:g}-{hi:g}{unit}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--degrees", type=float, default=7.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sign", default="lichenification", help="the sign whose false positives are profiled")
    ap.add_argument("--tta", action="store_true", help="score with test-time augmentation (four quarter turns)")
    ap.add_argument("--model", help="MODEL_DIR (default: the bundled demo model)")
    ap.add_argument("--work", default="/tmp/dermsev_bench_robustness")
    ap.add_argument("--md", help="also write the report, with the command, to this markdown file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cv2.setNumThreads(1)
    t0 = time.time()
    predictor = load_model(a.model, backend="torch-fp32")
    if a.sign not in predictor.signs:
        sys.exit(f"error: --sign {a.sign!r} is not among the model's signs {predictor.signs}")
    k = predictor.signs.index(a.sign)
    imgs, truth, signs = photos(Path(a.work) / f"photos{a.seed}_{a.n}", a.n, a.seed)
    turned = [rotate(im, a.degrees) for im in imgs]
    res = {name: list(predictor.predict_many(ims, white_balance="grey-world", tta=a.tta))
           for name, ims in (("clean", imgs), ("turned", turned))}
    keep = np.array([c.check == "pass" and t.check == "pass" for c, t in zip(res["clean"], res["turned"], strict=True)])
    h, w = imgs[0].shape[:2]
    if any(r.work_maps.shape[1:] != (h, w) for r in res["clean"]):
        sys.exit("error: the photos must be at the model's working size")
    share_c, share_t = shared_content(h, w, a.degrees)

    def scores(rs, share=None) -> np.ndarray:
        out = []
        for r in rs:
            skin = r.work_skin if share is None else r.work_skin & share
            s = predictor.score_maps(r.work_maps, skin)["scores"] if share is not None else r.scores
            out.append([s[x] for x in predictor.signs])
        return np.array(out)[keep]

    rows = {"whole photo (as bench_robustness)": drift(scores(res["clean"]), scores(res["turned"])),
            "the content both share": drift(scores(res["clean"], share_c), scores(res["turned"], share_t))}
    out = [f"{len(imgs)} synthetic photos (seed {a.seed}, {w} px) turned by {a.degrees:g} degrees, "
           f"{'the demo model' if a.model is None else 'model ' + a.model}, grey-world"
           f"{', TTA (four quarter turns)' if a.tta else ''}; {int(keep.sum())} photos the checks pass both ways. "
           f"The shared content is {share_t.mean():.1%} of the frame.", "",
           "## Drift: median / 95th percentile of |score change| (changes > 0.3)", "",
           "| scored over | " + " | ".join(signs) + " |", "|---|" + "---|" * len(signs)]
    for name, (med, p95, big) in rows.items():
        out.append(f"| {name} | " + " | ".join(
            f"{m:.2f} / {'**' if p > P95_TARGET or m > MEDIAN_TARGET else ''}{p:.2f}"
            f"{'**' if p > P95_TARGET or m > MEDIAN_TARGET else ''} ({b})" for m, p, b in zip(med, p95, big, strict=True))
            + " |")
    none = np.where((truth[:, k] == 0) & keep)[0]
    thr = predictor.first_threshold
    profiles = {}
    for name in ("clean", "turned"):
        rs = [res[name][i] for i in none]
        weights = np.stack([affected_weight(r.work_maps[k], thr) for r in rs])
        skins = np.stack([r.work_skin for r in rs])
        ims = imgs if name == "clean" else turned
        greys = np.stack([ims[i].astype(np.float32).mean(2) for i in none])
        profiles[name] = false_positive_profile(weights, skins, greys)
    out += ["", f"## False positives of {a.sign} on the {len(none)} photos without it", "",
            "Density: the share of skin pixels counted affected (weighted by the score's ramp).", "",
            "| distance to the frame's edge | clean | turned |", "|---|---|---|"]
    for (band, dc), (_, dt) in zip(profiles["clean"]["edge"], profiles["turned"]["edge"], strict=True):
        out.append(f"| {_range(*band, ' px')} | {dc:.2%} | {dt:.2%} |")
    out += ["", f"| brightness / the photo's median (clean) | share of the skin | density under {EDGE} px from "
            f"the edge | density {INNER} px or more inside |", "|---|---|---|---|"]
    for band, share, at_edge, inside in profiles["clean"]["brightness"]:
        out.append(f"| {_range(*band)} | {share:.1%} | {at_edge:.2%} | {inside:.2%} |")
    text = "\n".join(out) + f"\n\n({time.time() - t0:.0f} s)\n"
    print(text)
    if a.md:
        cmd = "$ " + shlex.join([".venv/bin/python", "bench/diagnose_rotation.py", *sys.argv[1:]])
        Path(a.md).write_text(f"# Score changes under a small rotation\n\n<!-- measured by -->\n\n    {cmd}\n\n{text}")


if __name__ == "__main__":
    main()
