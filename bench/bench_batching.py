"""Batching photos of different sessions in the inference queue (issue 20, item 1).

    .venv/bin/python bench/bench_batching.py [--photos 8] [--repeats 5] [--threads N] [--tta] [--batches 2,4] [--md OUT]

Loads the bundled demo model as the server does (backend auto: DERMSEV_BACKEND, else the
fastest measured on this machine; --threads sets the model's threads, default all cores as the
server), then --photos sessions, each on its own thread, submit one synthetic 512 px JPEG
(bench_load's photo; all share one working shape; each session its own age and sex) at the
same moment to a real InferenceQueue, TTA off (--tta: on, as the page's default; each photo is
then 4 images), in these ways:

    before            the whole photo (decode to summary) as one job in the worker, as the queue
                      ran it before batching
    one per forward   QueuedPredictor, one photo per forward (max_images 1, or 4 with TTA):
                      decode and summary on the sessions' threads, only the network in the worker
    batched by 2, 4   the same with up to 2 and 4 photos per forward (max_images 2 and 4, or
                      8 and 16 with TTA); --batches chooses others

Each row: the median over --repeats rounds (the modes interleaved, after one warm-up round
each) of the wall time from the common start to the last result; photos per second; forwards
per round (mean; the first photo of a round finds the worker idle and runs alone, the worker
never waits for a batch to fill); the ratio of its wall time to "one per forward" and to
"before" (below 1: faster); and the largest difference of its maps from "before" in the
warm-up round (the same photos and patients). Prints a markdown table; --md writes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(ROOT))

from bench.bench_load import photo  # noqa: E402
from dashboard.inference_queue import InferenceQueue, QueuedPredictor, quick_check  # noqa: E402
from model.hardware import cpu_count  # noqa: E402
from model.inference import Predictor  # noqa: E402
from model.inference.tta import VIEWS  # noqa: E402
from model.nets.modeldir import DEMO_DIR  # noqa: E402


def modes(batches: list[int]) -> dict[str, int | None]:
    """The compared modes, {name: photos per forward}: "before" (None: the whole photo as one
    job, as before batching), "one per forward" and one "batched by k" per k > 1. The queue's
    max_images is that times the images of one photo (tta.VIEWS with TTA)."""
    return {"before": None, "one per forward": 1, **{f"batched by {k}": k for k in batches if k > 1}}


def patient(k: int, tta: bool) -> dict:
    return {"age": 20.0 + (7 * k) % 60, "sex": "FM"[k % 2], "tta": tta}


def one_round(
    predictor: Predictor, photos: list[bytes], max_batch: int | None, tag: str, tta: bool
) -> tuple[float, list]:
    """Every photo submitted by its own session thread at once: (wall seconds, predictions)."""
    per_photo = VIEWS if tta else 1
    q = InferenceQueue(max_pending=max(64, len(photos)), max_images=(max_batch or 1) * per_photo)
    start, results = threading.Barrier(len(photos) + 1), [None] * len(photos)

    def session(k: int) -> None:
        name, data, session_id = f"{k}.jpg", photos[k], f"{tag}-{k}"
        start.wait()
        if max_batch is None:  # the queue's old path: the whole predict is the job
            quick_check(name, data)
            job = lambda: predictor.predict(data, name=name, **patient(k, tta))  # noqa: E731
            results[k] = q.submit(session_id, name, job).result()
        else:
            results[k] = QueuedPredictor(predictor, q, session_id).predict(
                data, name=name, **patient(k, tta)
            )

    threads = [threading.Thread(target=session, args=(k,)) for k in range(len(photos))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q.close()
    return wall, results


def run(n_photos: int, repeats: int, threads: int | None, tta: bool = False,
        batches: tuple[int, ...] | list[int] = (2, 4)) -> dict:
    predictor = Predictor(DEMO_DIR, backend="auto", threads=threads)
    forwards, forward_all = [], predictor.forward_all

    def counted(x, age=None, sex=None):  # counts the forwards (batch sizes) of each round
        forwards.append(len(x))
        return forward_all(x, age, sex)

    predictor.forward_all = counted
    photos = [photo(k, 512) for k in range(n_photos)]
    compared = modes(list(batches))
    walls: dict[str, list[float]] = {m: [] for m in compared}
    counts: dict[str, list[int]] = {m: [] for m in compared}
    diffs: dict[str, float] = {}
    reference = None
    for r in range(repeats + 1):  # round 0 warms up each mode and checks its maps
        for mode, max_batch in compared.items():
            forwards.clear()
            wall, results = one_round(predictor, photos, max_batch, f"{mode}-{r}", tta)
            if r == 0:
                reference = reference or results
                diffs[mode] = max(
                    float(np.abs(a.work_maps - b.work_maps).max())
                    for a, b in zip(results, reference, strict=True)
                )
            else:
                walls[mode].append(wall)
                counts[mode].append(len(forwards))
        done = ", ".join(f"{m} {w[-1]:.2f} s" for m, w in walls.items()) if r else "warm-up"
        print(f"round {r}/{repeats}: {done}", flush=True)
    median = {m: statistics.median(w) for m, w in walls.items()}
    per_round = {m: statistics.mean(c) for m, c in counts.items()}
    backend = f"{predictor.backend} ({predictor.backend_report.get('rule', '?')})"
    return {"date": dt.date.today().isoformat(), "cpus": cpu_count(), "backend": backend,
            "threads": threads, "photos": n_photos, "tta": tta, "median_s": median,
            "forwards": per_round, "max_diff": diffs}  # fmt: skip


def table(r: dict) -> str:
    med, n = r["median_s"], r["photos"]
    head = ["mode", "wall s (median)", "photos/s", "forwards per round", "/ one per forward",
            "/ before", "max map diff"]  # fmt: skip
    rows = [head, ["---"] * len(head)]
    for mode in med:
        rows.append([mode, f"{med[mode]:.2f}", f"{n / med[mode]:.1f}", f"{r['forwards'][mode]:.1f}",
                     f"{med[mode] / med['one per forward']:.2f}", f"{med[mode] / med['before']:.2f}",
                     f"{r['max_diff'][mode]:.1e}"])  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--photos", type=int, default=8, help="sessions, one photo each, submitted at once"
    )
    ap.add_argument(
        "--repeats", type=int, default=5, help="timed rounds per mode (after one warm-up)"
    )
    ap.add_argument(
        "--threads", type=int, help="the model's threads (default: all cores, as the server)"
    )
    ap.add_argument(
        "--tta", action="store_true", help="TTA on (the page's default): 4 images a photo"
    )
    ap.add_argument("--batches", default="2,4", help="photos per forward to compare, comma-separated (default 2,4)")
    ap.add_argument("--md", type=Path, help="write the table and how it was measured to this file")
    a = ap.parse_args(argv)
    if a.photos < 1 or a.repeats < 1:
        ap.error("--photos and --repeats must be at least 1")
    try:
        batches = [int(k) for k in a.batches.split(",")]
    except ValueError:
        ap.error(f"--batches must be whole numbers separated by commas, got {a.batches!r}")
    if any(k < 1 for k in batches):
        ap.error(f"--batches must be at least 1, got {a.batches!r}")
    result = run(a.photos, a.repeats, a.threads, a.tta, batches)
    text = table(result)
    print(text)
    if a.md:
        load = os.getloadavg()[0]
        a.md.write_text(
            f"# Batching photos in the inference queue\n\nMeasured {result['date']} on {result['cpus']} CPU "
            f"cores (load average {load:.1f} at the end), demo model, backend {result['backend']}, model "
            f"threads {result['threads'] or 'all cores'}; {a.photos} sessions submit one 512 px JPEG each "
            f"at once, TTA {'on' if a.tta else 'off'}; median of {a.repeats} rounds.\n\n"
            f"    .venv/bin/python bench/bench_batching.py --photos {a.photos} --repeats {a.repeats}"
            f"{f' --threads {a.threads}' if a.threads else ''}{' --tta' if a.tta else ''} --md {a.md}"
            f"\n\n{text}\n"
        )  # fmt: skip


if __name__ == "__main__":
    main()
