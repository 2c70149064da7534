"""`dermsev bench MODEL_DIR`: the inference pipeline's stages, throughput and memory (model/inference/bench.py)."""

from __future__ import annotations

import json
from pathlib import Path

from model.cli.common import resolve_model
from model.errors import DermsevError


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
    from model.inference.bench import STAGES

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
    g = r.get("gpu")
    if g:
        lines.append(f"GPU: {g['gpu']} ({g['precision']}, channels_last), model forward at {g['working_size']} px: "
                     f"latency {g['latency_ms']['median']:.2f} ms (p90 {g['latency_ms']['p90']:.2f}), "
                     f"{g['throughput_img_per_s']} img/s at batch {g['batch_size']}" if g["available"]
                     else f"GPU: not measured, {g['reason']}")
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
              threads: int | None = None, photo_size: tuple[int, int] | None = None, memory: bool = True) -> dict:
    """`dermsev bench`: print the table; with json_out, also write the report as JSON.

    backend, threads: as for Predictor; photo_size: (H, W) of the large photo as stored
    (default 12 MP; tests pass a smaller one); memory: measure peak memory in a subprocess."""
    if repeats < 1:
        raise DermsevError(f"--repeats must be at least 1, got {repeats}")
    from model.inference.bench import PHOTO_12MP, run_bench

    report = run_bench(model_dir, repeats=repeats, backend=backend, threads=threads, photo_size=photo_size or PHOTO_12MP,
                       memory=memory)
    print(format_report(report))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def add_parser(sub) -> None:
    b = sub.add_parser("bench", help="latency and throughput")
    b.add_argument("model_dir")
    b.add_argument("--json", dest="json_out")
    b.add_argument("--repeats", type=int, default=10)


def run(args) -> None:
    bench_cli(resolve_model(args.model_dir), json_out=args.json_out, repeats=args.repeats)
