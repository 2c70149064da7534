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

This module also holds the `auto` backend choice (`auto_backend`): a short measurement of
every available backend at the working size, cached per machine and model.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.errors import DermsevError

PHOTO_12MP = (3024, 4032)  # stored (H, W); EXIF orientation 6 turns it into a 4032 x 3024 portrait
BATCH_IMAGES = 16
BATCH_SIZE = 8
# A backend may differ from fp32 by at most this (0..max_score scale) to be chosen by `auto`.
AUTO_MAX_DIFF = 0.1
AUTO_ROUNDS = 3
AUTO_CACHE_VERSION = 1


# -- machine and cache --------------------------------------------------------------------
def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """True where bf16 matmuls run natively (AVX512-BF16 or AMX); elsewhere autocast emulates them."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def machine() -> dict:
    import onnxruntime
    import torch

    from model.inference.export import cpu_count

    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "fma"})
    return {"cpu": model_name, "cores": cpu_count(), "flags": flags, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version()}


def cache_dir() -> Path:
    """DERMSEV_CACHE_DIR, else $XDG_CACHE_HOME/dermsev, else ~/.cache/dermsev."""
    if os.environ.get("DERMSEV_CACHE_DIR"):
        return Path(os.environ["DERMSEV_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dermsev"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, key: str, entry: dict) -> None:
    """Best effort: an unwritable cache only means measuring again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = entry
        if len(data) > 64:  # keep the newest entries
            data = dict(sorted(data.items(), key=lambda kv: kv[1].get("measured_at", 0))[-64:])
        fd, tmp = tempfile.mkstemp(prefix=".backend.", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass


# -- the auto backend ---------------------------------------------------------------------
def _candidates(predictor) -> tuple[list[str], dict]:
    notes = {}
    names = ["torch-fp32"]
    if native_bf16():
        names.append("torch-bf16")
    else:
        notes["torch-bf16"] = "skipped: this CPU has no native bf16 (autocast would emulate it)"
    from model.inference.export import onnx_session

    try:
        predictor._onnx_session = onnx_session(predictor.model_dir, threads=predictor.threads)
        names.append("onnx")
    except DermsevError as exc:
        notes["onnx"] = f"skipped: {exc}"
    return names, notes


def auto_backend(predictor) -> tuple[str, dict]:
    """The fastest backend whose output stays within AUTO_MAX_DIFF of torch fp32.

    Candidates: torch-fp32; torch-bf16 where the CPU has native bf16; onnx where
    MODEL_DIR/model.onnx exists and matches the weights. Each runs AUTO_ROUNDS interleaved
    forwards of one working-size image after a warm-up (about a second in all); the choice
    is cached in cache_dir()/backend.json under a key of the machine (CPU, cores, flags,
    library versions), the model (weights and network hashes, working size) and the
    candidates, so it is measured once per machine and model (again after `dermsev export`).
    """
    from model.inference.export import config_sha256, file_sha256

    names, notes = _candidates(predictor)
    mach = machine()
    key_src = {"v": AUTO_CACHE_VERSION, "machine": mach, "weights": file_sha256(predictor.model_dir / "model.safetensors"),
               "network": config_sha256(predictor.config), "size": predictor.size, "candidates": names}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / "backend.json"
    hit = _read_cache(path).get(key)
    if hit and hit.get("backend") in names:
        return hit["backend"], {**hit, "rule": "measured (cached)", "cache": str(path)}
    if len(names) == 1:
        return names[0], {"rule": "only candidate", "skipped": notes}
    ms, diff = measure_backends(predictor, names, rounds=AUTO_ROUNDS)
    ok = [n for n in names if diff[n] <= AUTO_MAX_DIFF * predictor.max_score / 3.0]
    best = min(ok, key=lambda n: ms[n])
    entry = {"backend": best, "median_ms": ms, "max_abs_diff_vs_fp32": diff, "skipped": notes,
             "measured_at": time.time(), "machine": mach}
    _write_cache(path, key, entry)
    return best, {**entry, "rule": "measured", "cache": str(path)}


def measure_backends(predictor, names: list[str], rounds: int = 3, batch: int = 1) -> tuple[dict, dict]:
    """Median forward time (ms) at the working size and max |out - fp32 out| per backend.

    Leaves the predictor on whatever backend it used last (the caller switches)."""
    rng = np.random.default_rng(0)
    c, s = len(predictor.channels), predictor.size
    x = rng.random((batch, c, s, s), dtype=np.float32)
    outs, times = {}, {n: [] for n in names}
    for n in names:  # warm-up (first-call allocations, oneDNN kernel selection)
        predictor._use(n)
        outs[n] = predictor.forward(x, 40.0, "F")
    for r in range(rounds):
        for n in names:
            # a backend already 3x slower than the best is out: no need to wait for it again
            if r > 0 and min(times[n]) > 3 * min(min(t) for t in times.values() if t):
                continue
            predictor._use(n)
            t0 = time.perf_counter()
            predictor.forward(x, 40.0, "F")
            times[n].append(time.perf_counter() - t0)
    ms = {n: round(1000 * float(np.median(t)), 2) for n, t in times.items()}
    diff = {n: float(np.abs(outs[n] - outs["torch-fp32"]).max()) if "torch-fp32" in outs else float("nan")
            for n in names}
    return ms, diff


def compare_backends(model_dir: str | Path, images: list, backends=("torch-bf16", "onnx"), age: float | None = 40.0,
                     sex: str | None = "F", margin: float = 0.05) -> dict:
    """Each backend against torch fp32 on `images`: max |map difference|, max |score difference|,
    and how many labels change (in all, and where the fp32 score is more than `margin` from
    every threshold, i.e. not a coin toss at a threshold)."""
    from model.inference.predictor import Predictor
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
    skin, _ = render(rng, patient, draw_params(rng, patient), 512, 3)
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


def _one_pass(predictor, path: Path, logs: dict) -> None:
    """Time each stage once on `path`, in pipeline order (the stages are Predictor's own methods)."""
    from PIL import Image, ImageOps

    from model.inference.predictor import draft_request, match_channels

    def decode():
        draft, full = draft_request(path, max(predictor.size, predictor.preview_side))
        im = Image.open(path)
        if draft is not None:
            im.draft("RGB", draft)
        im.load()
        return im, full

    im, full = _timed(decode, logs["decode"])
    img = _timed(lambda: match_channels(np.asarray((ImageOps.exif_transpose(im) or im).convert("RGB")), len(predictor.channels)),
                 logs["exif"])
    full = full or img.shape[:2]
    x = _timed(lambda: predictor.to_working(img), logs["resize"])
    padded = _timed(lambda: predictor.pad(x), logs["pad"])
    out = _timed(lambda: predictor.forward(padded[None]), logs["model"])
    h, w = x.shape[:2]
    work = _timed(lambda: np.ascontiguousarray(out[0, :, :h, :w]), logs["unpad"])
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

    from model.inference.predictor import Predictor

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
        xs = np.stack([p[1] for p in prepared])
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


def format_report(r: dict) -> str:
    lines = []
    m = r["machine"]
    lines.append(f"dermsev bench: {r['model_dir']}  backend {r['backend']} ({r['backend_report'].get('rule', '')}), "
                 f"working size {r['working_size']} px, {r['repeats']} rounds, load {r['load_s']} s")
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
                 f"onnxruntime {m['onnxruntime']}")
    if r["backend_report"].get("median_ms"):
        lines.append("auto choice: " + ", ".join(
            f"{k} {v} ms (max diff {r['backend_report']['max_abs_diff_vs_fp32'][k]:.3f})"
            for k, v in r["backend_report"]["median_ms"].items()))
    c512, c12 = r["cases"]["512px"], r["cases"]["12mp"]
    lines.append("")
    lines.append(f"{'stage (ms)':26s} {'512 px median':>13s} {'p90':>7s}   {'12 MP median':>12s} {'p90':>7s}")
    for k in STAGES:
        a, b = c512["stages"][k], c12["stages"][k]
        label = {"preview_maps": f"maps to display ({r['preview_side']} px)", "full_maps": "maps to full res (lazy)",
                 "end_to_end": "END TO END (predict+preview)"}.get(k, k)
        lines.append(f"{label:26s} {a['median_ms']:13.1f} {a['p90_ms']:7.1f}   {b['median_ms']:12.1f} {b['p90_ms']:7.1f}")
    b = r["baseline"]
    lines.append(f"{'baseline: ' + b['what']:s}  median {b['median_ms']:.1f} ms, p90 {b['p90_ms']:.1f} ms")
    t = r["throughput"]
    lines.append(f"throughput, {t['images']} x {t['image_px']} px, batch {t['batch_size']}: {t['pipeline_img_per_s']} img/s "
                 f"(model forward limit {t['forward_limit_img_per_s']} img/s, ratio {t['ratio']:.2f})")
    mem = r["memory"]
    if mem:
        lines.append("peak memory, 12-MP photo: " + (mem["error"] if "error" in mem else
                     f"{mem['score_and_preview_mb']:.0f} MB scoring + preview "
                     f"({mem['after_load_mb']:.0f} MB after load), {mem['with_full_maps_mb']:.0f} MB with full-res maps"))
    fl = r.get("decode_floor_12mp")
    if fl:
        lines.append(f"decode floor, 12 MP at 1/8 scale: median {fl['median_ms']:.1f} ms = "
                     f"{r['ratios']['12mp_decode_floor_vs_baseline']:.2f} of the baseline (the file alone, before any scoring)")
    ra = r["ratios"]
    lines.append(f"ratios to baseline: 12 MP end to end {ra['12mp_end_to_end_vs_baseline']:.2f}, "
                 f"512 px end to end {ra['512px_end_to_end_vs_baseline']:.2f}, model at 512 px input {ra['model_vs_baseline_512px']:.2f}")
    lines.append("targets: " + ", ".join(f"{k} {'n/a' if v is None else ('PASS' if v else 'MISS')}"
                                          for k, v in r["targets"].items()))
    return "\n".join(lines)


def bench_cli(model_dir: str | Path, json_out: str | None = None, repeats: int = 10, backend: str = "auto",
              threads: int | None = None, photo_size: tuple[int, int] = PHOTO_12MP, memory: bool = True) -> dict:
    """`dermsev bench`: print the table; with json_out, also write the report as JSON.

    backend, threads: as for Predictor; photo_size: (H, W) of the large photo as stored
    (default 12 MP; tests pass a smaller one); memory: measure peak memory in a subprocess."""
    if repeats < 1:
        raise DermsevError(f"--repeats must be at least 1, got {repeats}")
    report = run_bench(model_dir, repeats=repeats, backend=backend, threads=threads, photo_size=photo_size,
                       memory=memory)
    print(format_report(report))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    return report
