"""The dashboard under a clinic's load: Playwright against a real server (issue 20).

    .venv/bin/python bench/bench_load.py [--sessions 10 20] [--singles 3] [--md docs/load.md]

Starts `python -m dashboard.serve` (the model loaded before the server, as `make run` does) on
a free port, then measures with Debian's chromium, one fresh browser context per clinician:
cold page load (the first page after the server reports healthy) and warm page load; single-
session upload-to-overlay (median of --singles fresh pages); N sessions pressing "Score photos"
at once (wall time to the last overlay, p90 of the sessions' times, their ratio to N back-to-
back single scorings); then the N sessions press "Save to history" at once (wall time to the
last "Saved as visit", and a check in the store that each session's patient has exactly its
own visit and photo: lost or mixed-up saves are counted); how many times the model was loaded
(the server log's "model ready" lines); peak server RSS (VmHWM of the server process); the size
of a three-photo PDF report. Prints a table; --md writes it as markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DERMSEV_CHROMIUM", "/usr/bin/chromium")
OVERLAY = '[data-testid="stPlotlyChart"]'


def photo(seed: int, side: int = 512) -> bytes:
    """A synthetic skin photo (JPEG) with a red lesion."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    img = np.stack([np.full((side, side), v, np.float32) for v in (214, 166, 140)], -1)
    blob = np.exp(-(((yy - side / 2) / (side / 5)) ** 2 + ((xx - side / 2) / (side / 4)) ** 2))
    img[..., 1:] -= 60 * blob[..., None]
    img += rng.normal(0, 6, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, data: Path) -> tuple[subprocess.Popen, float]:
    """The launcher on `port`; returns the process and the seconds until /_stcore/health is ok."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", DERMSEV_DATA=str(data),
               DERMSEV_READY_FILE=str(data / "ready"))  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.serve", "--server.port", str(port), "--server.headless", "true",
         "--server.fileWatcherType", "none"],  # an edited source file must not reload modules mid-run
        cwd=ROOT, env=env, stdout=open(data / "server.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    while time.perf_counter() - t0 < 600:
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"server did not start; see {data / 'server.log'}")


class RssSampler(threading.Thread):
    """Reads the server's peak resident memory (VmHWM, MB) from /proc."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0.0

    def run(self) -> None:
        while True:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) / 1024)
            except OSError:
                return
            time.sleep(0.5)


def cpu_now(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the server process, and by the whole machine (every process:
    server, chromium, the Playwright driver, this script), from /proc."""
    server = process_cpu(Path(f"/proc/{server_pid}/stat").read_text())
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(cpu[i]) for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")  # user nice system irq softirq steal
    return server, busy


def process_cpu(stat: str) -> float:
    """CPU seconds (user + system) of one process, from the text of its /proc/PID/stat."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_by_process(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by each kind of process that is alive now: the server, chromium's
    renderers (one per page), its GPU process (software compositing here), its other processes,
    the Playwright driver (node) and this script."""
    me = os.getpid()
    out: dict[str, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(d.name)
        if pid == server_pid:
            kind = "server"
        elif pid == me:
            kind = "benchmark script"
        elif "chromium" in cmd:
            kind = "chromium " + (m.group(1) if (m := re.search(r"--type=(\S+)", cmd)) else "browser")
        elif "run-driver" in cmd:
            kind = "playwright driver"
        else:
            continue
        out[kind] = out.get(kind, 0.0) + process_cpu(stat)
    return out


def open_in(ctx, url: str):
    """A new page of browser context `ctx` with the form ready; returns (page, seconds)."""
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(url)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').wait_for(state="attached", timeout=300_000)
    return page, time.perf_counter() - t0


def open_page(browser, url: str):
    """A fresh context (an empty browser cache) and page with the form ready; returns (context,
    page, seconds)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page, seconds = open_in(ctx, url)
    return ctx, page, seconds


def fill(page, k: int, n_photos: int = 1) -> list[dict]:
    page.get_by_placeholder("e.g. PT-0042").fill(f"LOAD-{k:03d}")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [{"name": f"p{k}_{i}.jpg", "mimeType": "image/jpeg", "buffer": photo(k * 10 + i)}
         for i in range(n_photos)])  # fmt: skip
    page.get_by_text(f"p{k}_{n_photos - 1}.jpg").first.wait_for(timeout=300_000)
    legend_shown(page)  # a clinician takes longer than that to press "Score photos"


def legend_shown(page) -> None:
    """Wait until the sidebar's colour legend is drawn: the page's first plotly chart, drawn
    on the page's second script run (dashboard/app.py: colour_legend), which the upload's run
    or a timed run LEGEND_DELAY_S after the first page brings."""
    page.locator(OVERLAY).first.wait_for(timeout=300_000)


def score(page) -> float:
    """Press "Score photos" and wait for the overlay; seconds from the click."""
    t0 = time.perf_counter()
    page.get_by_role("button", name="Score photos").click()
    page.locator(OVERLAY).nth(1).wait_for(timeout=600_000)  # 0 is the sidebar's legend
    return time.perf_counter() - t0


def save_all(pages, data: Path, first: int) -> tuple[float, int]:
    """Every page presses "Save to history" at once; returns the wall time to the last
    confirmation and the number of sessions whose patient does not hold exactly its own visit
    (with its own photo, under the id its page showed)."""
    from dashboard.history import HistoryStore

    t0 = time.perf_counter()
    for _, page in pages:
        page.get_by_role("button", name="Save to history").click()
    shown = {}
    for k, (_, page) in enumerate(pages):
        name = f"LOAD-{first + k:03d}"
        note = page.get_by_text(re.compile(rf"Saved as visit #\d+ of {name}\."))
        note.wait_for(timeout=600_000)
        shown[name] = int(re.search(r"#(\d+)", note.inner_text()).group(1))
    wall = time.perf_counter() - t0
    store, bad = HistoryStore(data), 0
    for k in range(len(pages)):
        name = f"LOAD-{first + k:03d}"
        visits = store.visits(name)
        ok = len(visits) == 1 and visits[0].id == shown[name]
        if ok:
            stored = store.load(visits[0].id)
            ok = stored.pseudonym == name and [p.name for p in stored.photos] == [f"p{first + k}_0.jpg"]
        bad += not ok
    return wall, bad


def p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def run(sessions: list[int], singles: int) -> dict:
    from playwright.sync_api import sync_playwright

    from dashboard.report import to_pdf

    out: dict = {"date": dt.date.today().isoformat(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc, out["server_start_s"] = start_server(port, Path(tmp))
        rss = RssSampler(proc.pid)
        rss.start()
        url = f"http://localhost:{port}/"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
                ctx, page, out["cold_load_s"] = open_page(browser, url)
                ctx.close()
                warm, legend = [], []
                for _ in range(3):
                    ctx, page, s = open_page(browser, url)
                    warm.append(s)
                    legend_shown(page)
                    legend.append(page.evaluate("performance.now()") / 1000)
                    ctx.close()
                out["warm_load_s"] = statistics.median(warm)
                out["legend_s"] = statistics.median(legend)
                # a returning clinician: the same browser (its cache holds the page's scripts)
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                open_in(ctx, url)[0].close()  # fills the cache
                cached = []
                for _ in range(3):
                    page, s = open_in(ctx, url)
                    cached.append(s)
                    page.close()
                ctx.close()
                out["cached_load_s"] = statistics.median(cached)
                print(f"cold load {out['cold_load_s']:.1f} s, warm {warm}, same browser {cached}", flush=True)
                one = []
                cpu0 = cpu_now(proc.pid)
                for k in range(singles):
                    ctx, page, _ = open_page(browser, url)
                    fill(page, k)
                    one.append(score(page))
                    ctx.close()
                cpu1 = cpu_now(proc.pid)
                out["single_server_cpu_s"] = (cpu1[0] - cpu0[0]) / singles
                out["single_all_cpu_s"] = (cpu1[1] - cpu0[1]) / singles
                out["single_s"] = statistics.median(one)
                print(f"single session upload to overlay: {one}", flush=True)
                for n in sessions:
                    # the same n scorings back to back: n pages open and filled, each pressed in
                    # turn once the one before shows its overlay (the pages keep drawing the rest
                    # of their results meanwhile, as they do when pressed at once)
                    pages = [open_page(browser, url)[:2] for _ in range(n)]
                    for k, (_, page) in enumerate(pages):
                        fill(page, 100 * n + 50 + k)
                    t0 = time.perf_counter()
                    for _, page in pages:
                        score(page)
                    out[f"{n}_b2b_s"] = time.perf_counter() - t0
                    for ctx, _ in pages:
                        ctx.close()
                    pages = [open_page(browser, url)[:2] for _ in range(n)]
                    first = 100 * n  # each run its own patients (a second run must not find the first's visits)
                    for k, (_, page) in enumerate(pages):
                        fill(page, first + k)
                    times: list[float] = [0.0] * n
                    t0 = time.perf_counter()
                    cpu0, kinds0 = cpu_now(proc.pid), cpu_by_process(proc.pid)
                    clicks = []
                    for _, page in pages:  # as close to "at once" as one browser driver allows
                        page.get_by_role("button", name="Score photos").click()
                        clicks.append(time.perf_counter())
                    for k, (_, page) in enumerate(pages):
                        page.locator(OVERLAY).nth(1).wait_for(timeout=900_000)
                        times[k] = time.perf_counter() - clicks[k]
                    wall = time.perf_counter() - t0
                    cpu1, kinds1 = cpu_now(proc.pid), cpu_by_process(proc.pid)
                    out[f"{n}_cpu_by_kind"] = {k: round(v - kinds0.get(k, 0.0), 2) for k, v in kinds1.items()
                                               if v - kinds0.get(k, 0.0) >= 0.01}
                    print(f"{n} sessions: CPU seconds by process kind {out[f'{n}_cpu_by_kind']}", flush=True)
                    out[f"{n}_server_cpu_s"] = (cpu1[0] - cpu0[0]) / n
                    out[f"{n}_all_cpu_s"] = (cpu1[1] - cpu0[1]) / n
                    out[f"{n}_wall_s"], out[f"{n}_p90_s"] = wall, p90(times)
                    out[f"{n}_ratio"] = wall / (n * out["single_s"])
                    out[f"{n}_b2b_ratio"] = wall / out[f"{n}_b2b_s"]
                    out[f"{n}_rss_mb"] = rss.peak
                    out[f"{n}_save_s"], out[f"{n}_bad_saves"] = save_all(pages, Path(tmp), first=first)
                    print(f"{n} sessions: saved in {out[f'{n}_save_s']:.1f} s, "
                          f"{out[f'{n}_bad_saves']} lost or mixed", flush=True)  # fmt: skip
                    for ctx, _ in pages:
                        ctx.close()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
        out["peak_rss_mb"] = rss.peak
        out["model_loads"] = (Path(tmp) / "server.log").read_text().count("dermsev: model ready")
    out["report_bytes"] = len(to_pdf(_three_photo_assessment()))
    return out


def _three_photo_assessment():
    from dashboard.assessment import Assessment, PhotoResult

    rng = np.random.default_rng(0)
    photos = []
    for i in range(3):
        img = np.asarray(Image.open(io.BytesIO(photo(i, 768))))
        yy, xx = np.mgrid[0:768, 0:768]
        blob = np.exp(-(((yy - 384) / 190) ** 2 + ((xx - 300) / 190) ** 2))
        maps = np.stack([np.clip(blob * k + rng.normal(0, 0.1, blob.shape), 0, 3) for k in (3, 2, 1.2, 0.4)])
        signs = ["erythema", "papulation", "excoriation", "lichenification"]
        photos.append(PhotoResult(f"p{i}.jpg", "trunk", {s: 1.5 for s in signs}, {s: "moderate" for s in signs},
                                  {s: 0.2 for s in signs}, image=img, maps=maps.astype(np.float32)))  # fmt: skip
    return Assessment("LOAD-PDF", dt.date.today(), 40, "F", "trunk", photos=photos, signs=signs)


def table(r: dict) -> str:
    rows = [("server start to healthy (model loaded)", f"{r['server_start_s']:.1f} s"),
            ("cold page load (first page after healthy)", f"{r['cold_load_s']:.1f} s"),
            ("warm page load, fresh browser (median of 3)", f"{r['warm_load_s']:.1f} s"),
            *([("warm page, untouched: colour legend drawn (chart library loaded)", f"{r['legend_s']:.1f} s")]
              if "legend_s" in r else []),
            *([("warm page load, same browser: scripts cached (median of 3)", f"{r['cached_load_s']:.1f} s")]
              if "cached_load_s" in r else []),
            ("one session, upload to overlay (median)", f"{r['single_s']:.1f} s")]  # fmt: skip
    if "single_server_cpu_s" in r:
        rows += [("one session: CPU per session, server / whole machine",
                  f"{r['single_server_cpu_s']:.2f} / {r['single_all_cpu_s']:.2f} s")]  # fmt: skip
    for n in sorted({int(k.split("_")[0]) for k in r if k.endswith("_wall_s")}):
        rows += [(f"{n} sessions at once: wall time to the last overlay", f"{r[f'{n}_wall_s']:.1f} s"),
                 (f"{n} sessions: p90 of a session's time", f"{r[f'{n}_p90_s']:.1f} s"),
                 (f"{n} sessions: wall / ({n} x one session)", f"{r[f'{n}_ratio']:.2f}"),
                 *([(f"the same {n} scorings back to back: wall time", f"{r[f'{n}_b2b_s']:.1f} s"),
                    (f"{n} sessions: wall / back to back", f"{r[f'{n}_b2b_ratio']:.2f}")]
                   if f"{n}_b2b_s" in r else []),
                 (f"{n} sessions: peak server RSS so far", f"{r[f'{n}_rss_mb']:.0f} MB")]  # fmt: skip
        if f"{n}_server_cpu_s" in r:
            rows += [(f"{n} sessions: CPU per session, server / whole machine",
                      f"{r[f'{n}_server_cpu_s']:.2f} / {r[f'{n}_all_cpu_s']:.2f} s")]  # fmt: skip
        if f"{n}_save_s" in r:  # the save phase (runs whose sessions all scored)
            rows += [(f"{n} sessions saving at once: wall time to the last saved", f"{r[f'{n}_save_s']:.1f} s"),
                     (f"{n} sessions: saves lost or mixed up", f"{r[f'{n}_bad_saves']}")]  # fmt: skip
    if "model_loads" in r:
        rows.append(("times the model was loaded (server log)", f"{r['model_loads']}"))
    rows.append(("three-photo PDF report (768 px photos)", f"{r['report_bytes'] / 1e6:.2f} MB"))
    width = max(len(a) for a, _ in rows)
    vw = max(9, *(len(b) for _, b in rows))
    return "\n".join(f"| {a:<{width}} | {b:>{vw}} |" for a, b in [("measure", "value"), ("-" * width, "-" * vw), *rows])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--singles", type=int, default=3)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    result = run(args.sessions, args.singles)
    text = table(result)
    print(text)
    if args.md:
        load = os.getloadavg()
        args.md.write_text(
            f"# The dashboard under load\n\nMeasured {result['date']} on {result['cpus']} CPU cores "
            f"(load average {load[0]:.1f} at the end, the benchmark's own browser and server included).\n\n"
            f"    .venv/bin/python bench/bench_load.py --sessions {' '.join(map(str, args.sessions))} "
            f"--md {args.md}\n\n{text}\n"
        )  # fmt: skip


if __name__ == "__main__":
    main()
