"""The `auto` backend choice: a short measurement of forward callables, cached per machine and model.

Takes plain callables (`{name: forward() -> maps}`), so it never touches a Predictor's
internals; `Predictor` builds the candidates and applies the choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from model.hardware import cpu_count, cpu_flags, cpu_name

# A backend may differ from fp32 by at most this (on a 0..3 scale) to be chosen by `auto`.
AUTO_MAX_DIFF = 0.1
AUTO_ROUNDS = 3
AUTO_CACHE_VERSION = 1
REFERENCE = "torch-fp32"


def machine() -> dict:
    """What the measurement depends on: CPU, cores, relevant flags, library versions."""
    import platform

    import onnxruntime
    import torch

    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "fma"})
    return {"cpu": cpu_name(), "cores": cpu_count(), "flags": flags, "torch": torch.__version__,
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


def measure(forwards: Mapping[str, Callable[[], np.ndarray]], rounds: int = 3) -> tuple[dict, dict]:
    """Median time (ms) of each forward, and its max |out - REFERENCE's out|.

    Every forward runs once as a warm-up (first-call allocations, oneDNN kernel selection),
    then `rounds` interleaved rounds time each once, so a neighbour's load slows all alike."""
    outs = {n: f() for n, f in forwards.items()}
    times: dict[str, list[float]] = {n: [] for n in forwards}
    for r in range(rounds):
        for n, f in forwards.items():
            # a backend already 3x slower than the best is out: no need to wait for it again
            if r > 0 and min(times[n]) > 3 * min(min(t) for t in times.values() if t):
                continue
            t0 = time.perf_counter()
            f()
            times[n].append(time.perf_counter() - t0)
    ms = {n: round(1000 * float(np.median(t)), 2) for n, t in times.items()}
    ref = outs.get(REFERENCE)
    diff = {n: float(np.abs(o - ref).max()) if ref is not None else float("nan") for n, o in outs.items()}
    return ms, diff


def choose_backend(forwards: Mapping[str, Callable[[], np.ndarray]], key: Mapping, max_score: float = 3.0,
                   notes: Mapping[str, str] | None = None) -> tuple[str, dict]:
    """The fastest forward whose output stays within AUTO_MAX_DIFF (scaled to max_score) of
    REFERENCE's, and a report saying why.

    `key` names what the choice depends on besides the machine (weights and network hashes,
    working size); with the candidates' names and `machine()` it keys the cache in
    cache_dir()/backend.json, so each machine and model is measured once (again after
    `dermsev export` adds a candidate).
    """
    names = list(forwards)
    notes = dict(notes or {})
    mach = machine()
    key_src = {"v": AUTO_CACHE_VERSION, "machine": mach, **key, "candidates": names}
    digest = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / "backend.json"
    hit = _read_cache(path).get(digest)
    if hit and hit.get("backend") in names:
        return hit["backend"], {**hit, "rule": "measured (cached)", "cache": str(path)}
    if len(names) == 1:
        return names[0], {"rule": "only candidate", "skipped": notes}
    ms, diff = measure(forwards, rounds=AUTO_ROUNDS)
    ok = [n for n in names if diff[n] <= AUTO_MAX_DIFF * max_score / 3.0] or [REFERENCE]
    best = min(ok, key=lambda n: ms[n])
    entry = {"backend": best, "median_ms": ms, "max_abs_diff_vs_fp32": diff, "skipped": notes,
             "measured_at": time.time(), "machine": mach}
    _write_cache(path, digest, entry)
    return best, {**entry, "rule": "measured", "cache": str(path)}
