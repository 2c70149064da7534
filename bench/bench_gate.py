"""The photo checks (model/data/quality.py), measured: where scores drift, what the gate catches.

    .venv/bin/python bench/bench_gate.py [--n 60] [--seed 77] [--n-alarm 300] [--alarm-seed 4242]
        [--threads 2] [--work /tmp/dermsev_bench_gate] [--md docs/gate.md] [--dump FILE.json]

(a) Drift: --n synthetic skin photos (256 px, `model.synth.generator.generate`, seed --seed)
    are degraded step by step (blur, exposure, JPEG quality, noise, resolution, colour cast)
    and scored by the demo model; per step: the median |score change| per sign against the
    clean photo, the share of photos with any label changed, the gate's measure and its
    verdicts. Drift starts where a sign's median change reaches 0.1; 0.25 (the low end of
    dermatologists' disagreement with their consensus) is large.
(b) Detection: the gate's verdict on the photos shipped with scikit-image that are not skin
    (whole, and their central half as a "close-up"), and on those with a person in them.
(c) False alarms: --n-alarm fresh synthetic skin photos (seed --alarm-seed): fail and warn
    rates, per Fitzpatrick type, the reasons, and the skin mask against the generator's true
    skin region.
Prints markdown; --md writes it with the command line to that file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.degrade import jpeg_file, noise, relight  # noqa: E402
from model.data.quality import check_photo  # noqa: E402
from model.inference import load_model  # noqa: E402
from model.synth.generator import generate  # noqa: E402

NOT_SKIN_COLOUR = ["chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                   "colorwheel", "logo", "motorcycle"]  # skimage's `cat` is the same array as `chelsea`
NOT_SKIN_GREY = ["camera", "moon", "page", "text", "brick", "grass", "gravel", "coins", "clock", "cell",
                 "horse", "checkerboard", "microaneurysms", "binary_blobs", "shepp_logan_phantom"]
DRIFT, LARGE = 0.1, 0.25
MEASURE = {"blur": ("sharpness", "detail"), "exposure": ("brightness", "saturated"), "jpeg": "jpeg_quality", "noise": "noise",
           "resolution": "min_side", "cast": "cast"}


CASTS = {"warm": (1, 0, -1), "cool": (-1, 0, 1), "green": (-0.5, 1, -0.5), "magenta": (0.5, -1, 0.5)}


def degradations() -> list[tuple[str, str, object]]:
    """(kind, step, f(uint8 RGB) -> degraded image), from mild to strong within each kind."""
    out: list[tuple[str, str, object]] = []
    for s in (0.5, 1, 1.5, 2, 3, 4):
        out.append(("blur", f"sigma {s} px", lambda im, s=s: cv2.GaussianBlur(im, (0, 0), s)))
    for e in (-3, -2, -1.5, -1, -0.5, 0.5, 1, 1.5, 2):
        out.append(("exposure", f"{e:+g} stops", lambda im, e=e: relight(im, 2.0**e)))
    for q in (90, 70, 50, 30, 20, 10):
        out.append(("jpeg", f"quality {q}", lambda im, q=q: jpeg_file(im, q)))
    for sd in (2, 4, 8, 12, 16, 24):
        out.append(("noise", f"sd {sd}/255", lambda im, sd=sd: noise(im, sd, 0)))
    for px in (192, 128, 96, 64, 48, 32):
        out.append(("resolution", f"{px} px", lambda im, px=px: cv2.resize(im, (px, px), interpolation=cv2.INTER_AREA)))
    for name, axis in CASTS.items():
        for t in (0.25, 0.5, 1.0, 1.5):
            gains = 2.0 ** (np.float32(axis) * t / 2)
            out.append(("cast", f"{name} {t:g} stops", lambda im, g=gains: relight(im, g)))
    return out


def synth(path: Path, n: int, seed: int) -> list[Path]:
    if not (path / "manifest.csv").exists():
        generate(path, n=n, size=256, seed=seed)
    return sorted((path / "images").glob("*.png"))[:n]


def true_skin(path: Path, n: int) -> list[tuple[np.ndarray, int]]:
    """(true skin region (H, W) bool, Fitzpatrick type) of each generated image, from the
    skin masks the generator writes (manifest column skin_mask)."""
    with (path / "manifest.csv").open() as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["image"])[:n]
    return [(cv2.imread(str(path / r["skin_mask"]), cv2.IMREAD_GRAYSCALE) == 1, int(r["fitzpatrick"])) for r in rows]


def verdict_shares(checks: list) -> str:
    c = Counter(k.verdict for k in checks)
    return " / ".join(f"{100 * c[v] / len(checks):.0f}" for v in ("pass", "warn", "fail"))


def gate_measure(results: list, keys: str | tuple[str, ...]) -> str:
    """The median of the gate's measure(s) `keys` over scored photos, as "name value, ..."."""
    keys = (keys,) if isinstance(keys, str) else keys
    return ", ".join(f"{k} {float(np.median([r.gate.measures.get(k, np.nan) for r in results])):.3g}" for k in keys)


def drift(predictor, photos: list[np.ndarray], dump: dict) -> list[str]:
    signs = predictor.signs
    clean = list(predictor.predict_many(photos))
    base = np.array([[r.scores[s] for s in signs] for r in clean])
    lines = ["| degradation | step | " + " | ".join(f"median abs change {s}" for s in signs)
             + " | label changed % | gate measure (median) | gate pass / warn / fail % |",
             "|---|---|" + "---|" * (len(signs) + 3)]
    lines.append("| none | clean | " + " | ".join("0" for _ in signs) + " | 0 | "
                 f"{gate_measure(clean, MEASURE['blur'])} | {verdict_shares([r.gate for r in clean])} |")
    onset: dict[str, list[str]] = {}
    for kind, step, fn in degradations():
        res = list(predictor.predict_many([fn(p) for p in photos]))
        scores = np.array([[r.scores[s] for s in signs] for r in res])
        med = np.median(np.abs(scores - base), axis=0)
        changed = np.mean([any(r.labels[s] != c.labels[s] for s in signs) for r, c in zip(res, clean, strict=True)])
        gm = gate_measure(res, MEASURE[kind])
        lines.append(f"| {kind} | {step} | " + " | ".join(f"{v:.2f}" for v in med)
                     + f" | {100 * changed:.0f} | {gm} | {verdict_shares([r.gate for r in res])} |")
        for level, limit in (("drift", DRIFT), ("large", LARGE)):
            if med.max() >= limit and f"{kind}:{level}" not in onset:
                onset[f"{kind}:{level}"] = [step, gm]
        dump.setdefault("drift", []).append({"kind": kind, "step": step, "median": med.tolist(),
                                             "measures": [r.gate.measures for r in res]})
    lines += ["", "| degradation | drift starts (median change >= 0.1) | large (>= 0.25) |", "|---|---|---|"]
    for kind in dict.fromkeys(k for k, _, _ in degradations()):
        d, big = onset.get(f"{kind}:drift"), onset.get(f"{kind}:large")
        lines.append(f"| {kind} | {' at '.join(d) if d else 'not within the steps'} | "
                     f"{' at '.join(big) if big else 'not within the steps'} |")
    dump["clean"] = [r.gate.measures for r in clean]
    return lines


def skimage_photos() -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(not skin: whole photos, then their central halves), (photos with a person)."""
    from skimage import data

    def get(name: str) -> np.ndarray:
        return data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()

    def to_u8(a: np.ndarray) -> np.ndarray:
        if a.dtype == bool:
            return a.astype(np.uint8) * 255
        return (np.clip(a, 0, 1) * 255).astype(np.uint8) if a.dtype.kind == "f" else a

    whole = [(n, to_u8(get(n))) for n in NOT_SKIN_COLOUR + NOT_SKIN_GREY]
    crops = [(f"{n} (central half)", a[a.shape[0] // 4: 3 * a.shape[0] // 4, a.shape[1] // 4: 3 * a.shape[1] // 4])
             for n, a in whole if n in NOT_SKIN_COLOUR]
    astro = data.astronaut()
    people = [("astronaut (whole photo)", astro), ("astronaut's face (crop 60:185, 190:295)", astro[60:185, 190:295])]
    return whole + crops, people


def detection(predictor, dump: dict) -> list[str]:
    not_skin, people = skimage_photos()
    lines = ["| photo (skimage.data) | size | gate | skin % | reasons | demo model labels |", "|---|---|---|---|---|---|"]
    caught = Counter()
    for group, photos in (("not skin", not_skin), ("person", people)):
        for name, img in photos:
            r = predictor.predict(img)
            g = r.gate
            labels = ", ".join(f"{s[:4]} {r.scores[s]:.1f}" for s in predictor.signs)
            lines.append(f"| {name} | {img.shape[1]}x{img.shape[0]} | **{g.verdict}** | {100 * g.skin_fraction:.0f} "
                         f"| {'; '.join(g.reasons) or '-'} | {labels} |")
            if group == "not skin":
                part = "crops" if "central" in name else "colour" if name in NOT_SKIN_COLOUR else "grey"
                caught[part, g.verdict == "fail"] += 1
            dump.setdefault("skimage", []).append({"name": name, "verdict": g.verdict, "measures": g.measures})
    lines += ["", "| not-skin photos | failed (detected) | rate |", "|---|---|---|"]
    for part, label in (("colour", "colour photos, whole"), ("grey", "black-and-white photos, whole"),
                        ("crops", "colour photos, central half")):
        n = caught[part, True] + caught[part, False]
        lines.append(f"| {label} | {caught[part, True]} of {n} | {100 * caught[part, True] / max(n, 1):.0f} % |")
    hit = sum(caught[p, True] for p in ("colour", "grey"))
    tot = hit + sum(caught[p, False] for p in ("colour", "grey"))
    lines.append(f"| **all whole photos** | {hit} of {tot} | **{100 * hit / tot:.0f} %** |")
    return lines


def false_alarms(predictor, paths: list[Path], truth: list[tuple[np.ndarray, int]], dump: dict) -> list[str]:
    res = list(predictor.predict_many(paths))
    checks = [r.gate for r in res]
    fail = np.array([c.verdict == "fail" for c in checks])
    warn = np.array([c.verdict == "warn" for c in checks])
    lines = [f"{len(checks)} synthetic skin photos: **{100 * fail.mean():.1f} % fail** (false alarms), "
             f"{100 * warn.mean():.1f} % warn.", "", "| Fitzpatrick | photos | fail % | warn % |", "|---|---|---|---|"]
    fitz = np.array([t[1] for t in truth])
    for k in range(1, 7):
        sel = fitz == k
        if sel.any():
            lines.append(f"| {k} | {sel.sum()} | {100 * fail[sel].mean():.1f} | {100 * warn[sel].mean():.1f} |")
    reasons = Counter(r.split(":")[0].split(" (")[0] for c in checks for r in c.reasons)
    lines += ["", "| reason | photos |", "|---|---|"] + [f"| {k} | {v} |" for k, v in reasons.most_common()]
    iou, err = [], []
    for c, (region, _) in zip(checks, truth, strict=True):
        s = c.skin
        iou.append((s & region).sum() / max((s | region).sum(), 1))
        err.append(s.mean() - region.mean())
    bg = np.array([t[0].mean() < 1 for t in truth])
    lines += ["", f"Skin mask vs the generator's true skin region: IoU median {np.median(iou):.3f} "
              f"(5th percentile {np.percentile(iou, 5):.3f}); skin fraction minus the truth: median "
              f"{np.median(err):+.3f}, on the {bg.sum()} photos with a background {np.median(np.array(err)[bg]):+.3f}."]
    dump["alarm"] = [c.measures for c in checks]
    return lines


def timing(paths: list[Path]) -> str:
    imgs = [cv2.imread(str(p))[:, :, ::-1].astype(np.float32) / 255 for p in paths[:30]]
    t = []
    for im in imgs:
        t0 = time.perf_counter()
        check_photo(im)
        t.append(time.perf_counter() - t0)
    return f"check_photo on a 256-px working image: median {1000 * np.median(t):.1f} ms."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="synthetic photos degraded step by step")
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--n-alarm", type=int, default=300, help="fresh synthetic photos for the false-alarm rate")
    ap.add_argument("--alarm-seed", type=int, default=4242)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/dermsev_bench_gate")
    ap.add_argument("--md", help="write the tables, with the command, to this markdown file")
    ap.add_argument("--dump", help="write every measure to this JSON file (for setting thresholds)")
    ap.add_argument("--model", help="MODEL_DIR whose scores are shown and whose drift sets the steps "
                                    "(default: the bundled demo model)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    predictor = load_model(a.model)
    photos = [cv2.imread(str(p))[:, :, ::-1].copy() for p in synth(work / f"drift{a.seed}", a.n, a.seed)]
    alarm = synth(work / f"alarm{a.alarm_seed}", a.n_alarm, a.alarm_seed)
    dump: dict = {}
    t0 = time.time()
    out = ["## (a) Where scores drift", "", *drift(predictor, photos, dump), "",
           "## (b) Not-skin photos", "", *detection(predictor, dump), "",
           "## (c) False alarms on skin", "", *false_alarms(predictor, alarm, true_skin(work / f"alarm{a.alarm_seed}", a.n_alarm), dump),
           "", timing(alarm)]
    cmd = "$ " + shlex.join([".venv/bin/python", "bench/bench_gate.py", *sys.argv[1:]])
    text = "\n".join(out) + f"\n\n({time.time() - t0:.0f} s, backend {predictor.backend})\n"
    print(text)
    if a.md:
        Path(a.md).write_text(f"<!-- measured by -->\n\n    {cmd}\n\n{text}")
    if a.dump:
        Path(a.dump).write_text(json.dumps(dump, default=float))


if __name__ == "__main__":
    main()
