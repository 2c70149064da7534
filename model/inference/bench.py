"""`dermsev bench MODEL_DIR [--json OUT]`: the inference pipeline, stage by stage, against a plain U-Net.

Everything is measured in one run, in interleaved rounds (each round times every item once),
so a neighbour's load on a shared machine slows all items alike and the ratios stay fair:

- per stage, for a 512 px JPEG and a 12-MP JPEG (4032x3024, EXIF orientation 6, quality 90),
  generated synthetically in a temporary folder: decode (draft mode), EXIF orientation,
  resize to the working size, pad, model, unpad, summary, preview maps (display size, what
  the dashboard shows), full-resolution maps (lazy; only for exports), and end to end
  (`predict` + `preview`, the dashboard's path);
- the baseline: a plain smp U-Net with the same encoder and decoder, fp32, eager,
  `encoder_weights=None`, one forward at the working size (square, batch 1);
- throughput of `Predictor.predict_many` over 16 images at 512 px against the model
  forward's own limit (batched forward of prepared inputs only);
- peak memory (ru_maxrss) of a fresh process that loads the model and scores the 12-MP
  photo (+ preview), then also builds its full-resolution maps.

The `auto` backend choice is `model.inference.backends`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.inference.backends import machine
from model.inference.gpu_bench import gpu_bench
from model.inference.predictor import Predictor

PHOTO_12MP = (3024, 4032)  # stored (H, W); EXIF orientation 6 turns it into a 4032 x 3024 portrait
BATCH_IMAGES = 16
BATCH_SIZE = 8


def compare_backends(model_dir: str | Path, images: list, backends=("torch-bf16", "onnx"), age: float | None = 40.0,
                     sex: str | None = "F", margin: float = 0.05) -> dict:
    """Each backend against torch fp32 on `images`: max |map difference|, max |score difference|,
    and how many labels change (in all, and where the fp32 score is more than `margin` from
    every threshold, i.e. not a coin toss at a threshold)."""
    from model.scoring.summary import MIN_AREA

    ref = Predictor(model_dir, backend="torch-fp32")
    base = [ref.predict(im, age, sex) for im in images]
    thr = np.asarray(ref.thresholds, np.float64)
    out = {}
    for name in backends:
        p = Predictor(model_dir, backend=name)
        d_map = d_score = 0.0
        changes = far = 0
        for im, r0 in zip(images, base, strict=True):
            r = p.predict(im, age, sex)
            d_map = max(d_map, float(np.abs(r.work_maps - r0.work_maps).max()))
            for sign in ref.signs:
                d_score = max(d_score, abs(r.scores[sign] - r0.scores[sign]))
                if r.labels[sign] != r0.labels[sign]:
                    changes += 1
                    # a coin toss: the score sits at a threshold, or the affected area at the
                    # minimum area below which a sign counts as absent
                    at_area = abs(r0.affected_area[sign] - MIN_AREA) <= 2 * MIN_AREA
                    far += int(np.abs(thr - r0.scores[sign]).min() > margin and not at_area)
        out[name] = {"max_abs_diff": d_map, "max_score_diff": d_score, "label_changes": changes,
                     "label_changes_away_from_thresholds": far, "labels_compared": len(images) * len(ref.signs)}
    return out


# -- synthetic test photos ----------------------------------------------------------------
def _jpeg(arr: np.ndarray, path: Path, orientation: int = 1, quality: int = 90) -> Path:
    from PIL import Image

    kw = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    Image.fromarray(arr).save(path, "JPEG", quality=quality, **kw)
    return path


def synthetic_photos(folder: Path, n_batch: int = BATCH_IMAGES, seed: int = 0,
                     photo_size: tuple[int, int] = PHOTO_12MP) -> dict:
    """A 512 px JPEG, a 12-MP JPEG (EXIF-rotated; `photo_size` as stored) and n_batch 512 px JPEGs, from `model.synth.generator` skin."""
    import cv2

    from model.synth.generator import plan_patients
    from model.synth.render import draw_params, render

    rng = np.random.default_rng(seed)
    patient = plan_patients(seed, 1)[0]
    skin = render(rng, patient, draw_params(rng, patient), 512, 3)[0]
    folder.mkdir(parents=True, exist_ok=True)
    small = _jpeg(skin, folder / "photo_512.jpg")
    h, w = photo_size
    big = cv2.resize(skin[:384], (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    # pore-scale luminance texture, so the JPEG has a phone photo's size (~3 MB) and decode cost
    grain = rng.integers(-9, 10, (h // 2, w // 2), dtype=np.int16)
    big += cv2.resize(grain, (w, h), interpolation=cv2.INTER_NEAREST)[:, :, None]
    big = np.clip(big, 0, 255).astype(np.uint8)
    large = _jpeg(big, folder / "photo_12mp.jpg", orientation=6)
    del big
    batch = []
    for i in range(n_batch):
        v = np.roll(skin, (37 * i, 91 * i), axis=(0, 1))
        v = v[::-1] if i % 2 else v
        batch.append(_jpeg(np.ascontiguousarray(v), folder / f"batch_{i:03d}.jpg"))
    return {"512px": small, "12mp": large, "batch": batch}


# -- timing -------------------------------------------------------------------------------
def _stats(ts: list[float]) -> dict:
    a = 1000 * np.asarray(ts)
    return {"median_ms": round(float(np.median(a)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2), "n": len(ts)}


def _timed(fn: Callable, log: list):
    t0 = time.perf_counter()
    out = fn()
    log.append(time.perf_counter() - t0)
    return out


STAGES = ("decode", "exif", "resize", "pad", "model", "unpad", "summary", "preview_maps", "full_maps", "end_to_end")


def _one_pass(predictor: Predictor, path: Path, logs: dict) -> None:
    """Time each stage once on `path`, in pipeline order: Predictor's own stage methods, the
    ones `predict` runs (read_file, orient, to_working, pad, forward, unpad, summarise)."""
    decoded, full = _timed(lambda: predictor.read_file(path), logs["decode"])
    img = _timed(lambda: predictor.orient(decoded), logs["exif"])
    full = full or img.shape[:2]
    x = _timed(lambda: predictor.to_working(img), logs["resize"])
    padded = _timed(lambda: predictor.pad(x), logs["pad"])
    out = _timed(lambda: predictor.forward(padded[None]), logs["model"])
    work = _timed(lambda: predictor.unpad(out[0], x.shape[:2]), logs["unpad"])
    pred = _timed(lambda: predictor.summarise(img, work, full_size=full), logs["summary"])
    _timed(lambda: pred.preview(predictor.preview_side), logs["preview_maps"])
    _timed(lambda: pred.maps, logs["full_maps"])

    def e2e():
        r = predictor.predict(path)
        r.preview(predictor.preview_side)
        return r

    _timed(e2e, logs["end_to_end"])


def decode_floor(path: Path) -> tuple[int, int]:
    """Decode a JPEG at the smallest size Pillow's draft mode allows (1/8 scale): the least
    any pipeline must spend on the file, since every Huffman-coded coefficient is still read."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
        return np.asarray(im.convert("RGB")).shape[:2]


def plain_unet(config: dict):
    """The baseline: smp.Unet with the model's encoder and decoder, no FiLM, no normalisation, fp32."""
    import segmentation_models_pytorch as smp

    net = config["network"]
    return smp.Unet(encoder_name=net["encoder"], encoder_weights=None, encoder_depth=net.get("encoder_depth", 5),
                    in_channels=len(config["channels"]), classes=len(config["signs"]),
                    decoder_channels=tuple(net.get("decoder_channels", (256, 128, 64, 32, 16))),
                    activation=None).eval()


_PEAK_CODE = """
import json, resource, sys
def peak_mb():
    # VmHWM: this process's own peak RSS. ru_maxrss would include the parent's size at fork.
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)
from model.inference.predictor import Predictor
p = Predictor(sys.argv[1], backend=sys.argv[3], threads=int(sys.argv[4]) or None)
a = peak_mb()
r = p.predict(sys.argv[2])
r.preview(p.preview_side)
b = peak_mb()
r.maps
c = peak_mb()
print(json.dumps({"after_load_mb": a, "score_and_preview_mb": b, "with_full_maps_mb": c}))
"""


def _peak_memory(model_dir: Path, image: Path, backend: str, threads: int | None) -> dict:
    """Peak RSS of a fresh process: after loading, after scoring the photo + preview, after full maps."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    res = subprocess.run([sys.executable, "-c", _PEAK_CODE, str(model_dir), str(image), backend, str(threads or 0)],
                         capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    return {k: round(v, 1) for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items()}


def run_bench(model_dir: str | Path, repeats: int = 10, backend: str = "auto", threads: int | None = None,
              workdir: str | Path | None = None, memory: bool = True,
              photo_size: tuple[int, int] = PHOTO_12MP) -> dict:
    """Measure everything; return the report (see bench_cli for the table)."""
    import torch


    model_dir = Path(model_dir)
    repeats = max(1, int(repeats))
    t0 = time.perf_counter()
    predictor = Predictor(model_dir, backend=backend, threads=threads)
    load_s = time.perf_counter() - t0
    baseline = plain_unet(predictor.config)
    s, c = predictor.size, len(predictor.channels)
    xb = torch.rand(1, c, s, s)
    with tempfile.TemporaryDirectory(prefix="dermsev-bench-") as tmp:
        folder = Path(workdir) if workdir else Path(tmp)
        photos = synthetic_photos(folder, photo_size=photo_size)
        logs = {case: {k: [] for k in STAGES} for case in ("512px", "12mp")}
        base_log: list[float] = []
        floor_log: list[float] = []
        with torch.inference_mode():
            baseline(xb)  # warm-up
        for case in logs:  # warm-up
            _one_pass(predictor, photos[case], {k: [] for k in STAGES})
        for _ in range(repeats):
            with torch.inference_mode():
                _timed(lambda: baseline(xb), base_log)
            for case in logs:
                _one_pass(predictor, photos[case], logs[case])
            _timed(lambda: decode_floor(photos["12mp"]), floor_log)
        # throughput: predict_many over the batch vs. the batched forward of prepared inputs
        prepared = [predictor.prepare(p) for p in photos["batch"]]
        xs = np.stack([p.x for p in prepared])
        tp_rounds = max(1, min(repeats, 3))
        fwd, pipe = [], []
        predictor.forward(xs[:BATCH_SIZE])  # warm-up at this batch size
        for _ in range(tp_rounds):
            _timed(lambda: [predictor.forward(xs[i:i + BATCH_SIZE]) for i in range(0, len(xs), BATCH_SIZE)], fwd)
            _timed(lambda: list(predictor.predict_many(photos["batch"], batch_size=BATCH_SIZE)), pipe)
        n = len(photos["batch"])
        mem = _peak_memory(model_dir, photos["12mp"], predictor.backend, threads) if memory else {}
        sizes = {k: photos[k].stat().st_size for k in ("512px", "12mp")}
    cases = {}
    for case, lg in logs.items():
        stages = {k: _stats(v) for k, v in lg.items()}
        cases[case] = {"file_bytes": sizes[case], "stages": stages}
    base = _stats(base_log)
    floor = _stats(floor_log)
    limit = n / float(np.median(fwd))
    got = n / float(np.median(pipe))
    e2e_big = cases["12mp"]["stages"]["end_to_end"]["median_ms"]
    report = {
        "model_dir": str(model_dir),
        "machine": machine(),
        "backend": predictor.backend,
        "backend_report": {k: v for k, v in predictor.backend_report.items() if k != "machine"},
        "load_s": round(load_s, 2),
        "working_size": s,
        "photo_px": f"{photo_size[0]}x{photo_size[1]} stored, EXIF orientation 6",
        "preview_side": predictor.preview_side,
        "repeats": repeats,
        "cases": cases,
        "baseline": {"what": f"smp.Unet({predictor.config['network']['encoder']}) fp32 eager, 1x{c}x{s}x{s}", **base},
        "throughput": {"images": n, "image_px": 512, "batch_size": BATCH_SIZE, "pipeline_img_per_s": round(got, 2),
                       "forward_limit_img_per_s": round(limit, 2), "ratio": round(got / limit, 3)},
        "memory": mem,
        "gpu": gpu_bench(model_dir, repeats),
        "decode_floor_12mp": {"what": "the 12-MP JPEG decoded at 1/8 scale, nothing else", **floor},
        "ratios": {
            "12mp_decode_floor_vs_baseline": round(floor["median_ms"] / base["median_ms"], 3),
            "12mp_end_to_end_vs_baseline": round(e2e_big / base["median_ms"], 3),
            "512px_end_to_end_vs_baseline": round(cases["512px"]["stages"]["end_to_end"]["median_ms"] / base["median_ms"], 3),
            "model_vs_baseline_512px": round(cases["512px"]["stages"]["model"]["median_ms"] / base["median_ms"], 3),
        },
    }
    peak = mem.get("score_and_preview_mb")
    report["targets"] = {
        "12mp_end_to_end_le_half_baseline": e2e_big <= 0.5 * base["median_ms"],
        "12mp_end_to_end_le_500ms": e2e_big <= 500,
        "throughput_ge_80pct_of_forward": got >= 0.8 * limit,
        "peak_memory_12mp_le_1_5GB": None if peak is None else peak <= 1536,
    }
    return report
