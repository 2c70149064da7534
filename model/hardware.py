"""What this machine can do: cores, CPU flags, native bf16, the training device and precision.

One definition for training (precision), inference (backend candidates, thread counts) and
the benchmarks (machine description).
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_flags() -> set[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def native_bf16() -> bool:
    """True where bf16 matmuls run natively (AVX512-BF16 or AMX); elsewhere autocast emulates them."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def device() -> torch.device:
    """The training device: the first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def auto_precision() -> str:
    """bf16 autocast on a GPU that has it or a CPU with native bf16 (3-4x faster here); fp16 (with
    a grad scaler) on an older GPU; fp32 otherwise."""
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if native_bf16() else "fp32"
