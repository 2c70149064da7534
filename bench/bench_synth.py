"""Speed of the synthetic data generator: median ms per image (one process) and total time.

.venv/bin/python bench/bench_synth.py [--n 1000] [--size 256] [--workers 2] [--channels 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from model.synth.generator import _Job, _make_one, generate, plan_patients


def per_image_ms(size: int, channels: int, k: int = 40) -> float:
    """Median wall time (ms) to render and write one image in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "images").mkdir()
        (out / "masks").mkdir()
        times = []
        for i, patient in enumerate(plan_patients(0, k)):
            t0 = time.perf_counter()
            _make_one(_Job(out, i, f"b{i}", 0, size, channels, True, patient))
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--channels", type=int, default=3)
    a = ap.parse_args()
    print(
        f"median per image ({a.size}px, C={a.channels}, 1 process): "
        f"{per_image_ms(a.size, a.channels):.1f} ms"
    )
    tmp = Path(tempfile.mkdtemp()) / "ds"
    try:
        t0 = time.perf_counter()
        cpu0 = _cpu_seconds()
        generate(tmp, n=a.n, size=a.size, channels=a.channels, workers=a.workers)
        total = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        files = sum(1 for _ in tmp.rglob("*.*"))
        print(
            f"generate n={a.n} size={a.size} workers={a.workers or 'default'}: "
            f"{total:.1f} s total, {1000 * total / a.n:.1f} ms/image wall, "
            f"{cpu:.1f} CPU s ({1000 * cpu / a.n:.1f} CPU ms/image), {files} files"
        )
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
