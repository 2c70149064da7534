"""`dermsev bench` on a CUDA GPU: the network's forward at the working size, batch-1 latency and
batched throughput, with bf16 autocast (fp16 where the GPU has no bf16) and channels_last.

Times are taken with CUDA events after a warm-up, so they count the GPU's work, not the launch.
Without a GPU the report says so (and why) instead of a number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.nets.modeldir import load_network

GPU_BATCH = 8


def gpu_bench(model_dir: str | Path, repeats: int = 10, batch_size: int = GPU_BATCH) -> dict:
    """{"available": False, "reason": ...} without CUDA; else latency (ms, batch 1), throughput
    (images/s at `batch_size`), the GPU's name and the precision used."""
    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA GPU (torch.cuda.is_available() is False)"}
    device = torch.device("cuda")
    net, config = load_network(model_dir)
    net = net.to(device).eval().to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    s, c = int(config["input"]["size"]), len(config["channels"])

    def timed(batch: int) -> list[float]:
        x = torch.rand(batch, c, s, s, device=device).contiguous(memory_format=torch.channels_last)
        age, sex = torch.full((batch,), 40.0, device=device), torch.ones(batch, dtype=torch.long, device=device)
        out = []
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
            for i in range(repeats + 2):  # two warm-up passes
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                net(x, age, sex)
                end.record()
                torch.cuda.synchronize()
                if i >= 2:
                    out.append(start.elapsed_time(end))
        return out

    one, many = timed(1), timed(batch_size)
    return {"available": True, "gpu": torch.cuda.get_device_name(device), "precision": str(dtype).split(".")[-1],
            "channels_last": True, "working_size": s,
            "latency_ms": {"median": round(float(np.median(one)), 3), "p90": round(float(np.percentile(one, 90)), 3)},
            "throughput_img_per_s": round(batch_size * 1000 / float(np.median(many)), 1), "batch_size": batch_size}
