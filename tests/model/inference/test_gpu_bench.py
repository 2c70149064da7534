"""`dermsev bench` on a GPU: numbers where CUDA is present, a stated reason where it is not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.cli.bench import format_report
from model.inference.gpu_bench import gpu_bench

NO_GPU = "no CUDA GPU on this machine: GPU latency and throughput are measured only where torch.cuda.is_available()"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the numbers are tested instead")
def test_without_a_gpu_the_report_says_why(tiny_model_dir: Path) -> None:
    assert gpu_bench(tiny_model_dir) == {"available": False, "reason": "no CUDA GPU (torch.cuda.is_available() is False)"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
def test_gpu_latency_and_throughput(tiny_model_dir: Path) -> None:
    r = gpu_bench(tiny_model_dir, repeats=3, batch_size=4)
    assert r["available"] and r["precision"] in ("bfloat16", "float16") and r["working_size"] == 64
    assert 0 < r["latency_ms"]["median"] <= r["latency_ms"]["p90"]
    assert r["throughput_img_per_s"] > 0


def test_the_table_has_a_gpu_line() -> None:
    """format_report's GPU line, for both answers (the rest of the report a minimal stand-in)."""
    lines = {
        False: cli_bench_line({"available": False, "reason": "no CUDA GPU"}),
        True: cli_bench_line({"available": True, "gpu": "X1", "precision": "bfloat16", "working_size": 64,
                              "latency_ms": {"median": 1.5, "p90": 2.0}, "throughput_img_per_s": 900.0, "batch_size": 8}),
    }
    assert lines[False] == "GPU: not measured, no CUDA GPU"
    assert lines[True].startswith("GPU: X1 (bfloat16, channels_last)") and "900.0 img/s at batch 8" in lines[True]


def cli_bench_line(gpu: dict) -> str:
    stage = {"median_ms": 1.0, "p90_ms": 1.0}
    from model.inference.bench import STAGES

    case = {"file_bytes": 1, "stages": {k: stage for k in STAGES}}
    report = {"model_dir": "m", "backend": "torch-fp32", "backend_report": {}, "working_size": 64, "repeats": 1,
              "load_s": 0.1, "preview_side": 64,
              "machine": {"cpu": "c", "cores": 2, "torch": "t", "torch_threads": 1, "onnxruntime": "o"},
              "cases": {"512px": case, "12mp": case}, "baseline": {"what": "b", **stage},
              "throughput": {"images": 1, "image_px": 512, "batch_size": 1, "pipeline_img_per_s": 1.0,
                             "forward_limit_img_per_s": 1.0, "ratio": 1.0},
              "memory": {}, "gpu": gpu, "ratios": {"12mp_end_to_end_vs_baseline": 1.0, "512px_end_to_end_vs_baseline": 1.0,
                                                   "model_vs_baseline_512px": 1.0}, "targets": {}}
    return next(line for line in format_report(report).splitlines() if line.startswith("GPU:"))
