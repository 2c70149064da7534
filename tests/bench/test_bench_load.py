"""bench_load's pieces that need no server: the photos it uploads, its table, its PDF case."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_load  # noqa: E402


def test_photo_is_a_jpeg_of_the_asked_size_and_differs_by_seed():
    data = bench_load.photo(1, side=256)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and img.size == (256, 256)
    assert bench_load.photo(2, side=256) != data


def test_table_lists_every_session_count_and_the_ratio():
    r = {"server_start_s": 20.0, "cold_load_s": 2.5, "warm_load_s": 1.5, "single_s": 1.0,
         "10_wall_s": 12.0, "10_p90_s": 11.0, "10_ratio": 1.2, "10_rss_mb": 900.0,
         "20_wall_s": 25.0, "20_p90_s": 24.0, "20_ratio": 1.25, "20_rss_mb": 950.0,
         "10_save_s": 9.5, "10_bad_saves": 0, "model_loads": 1, "report_bytes": 700_000}  # fmt: skip
    text = bench_load.table(r)
    assert "| 10 sessions: wall / (10 x one session)" in text and "1.20 |" in text
    assert "20 sessions at once" in text and "0.70 MB" in text
    assert "10 sessions saving at once: wall time to the last saved" in text and "9.5 s" in text
    assert "20 sessions saving at once" not in text  # no save phase measured for 20
    loads = [line for line in text.splitlines() if "times the model was loaded" in line]
    assert len(loads) == 1 and loads[0].rstrip(" |").endswith("1")


def test_the_report_case_is_three_photos_with_maps():
    a = bench_load._three_photo_assessment()
    assert len(a.photos) == 3 and all(p.maps.shape == (4, 768, 768) for p in a.photos)


def test_table_shows_the_back_to_back_ratio_when_measured():
    r = {"server_start_s": 5.0, "cold_load_s": 2.5, "warm_load_s": 1.5, "single_s": 0.6,
         "10_wall_s": 12.0, "10_p90_s": 11.0, "10_ratio": 2.0, "10_rss_mb": 900.0,
         "10_b2b_s": 10.0, "10_b2b_ratio": 1.2, "report_bytes": 500_000}  # fmt: skip
    text = bench_load.table(r)
    assert "the same 10 scorings back to back: wall time" in text and "10.0 s |" in text
    assert "same browser" not in text  # not measured
    text = bench_load.table({**r, "cached_load_s": 0.9})
    assert "warm page load, same browser: scripts cached (median of 3)" in text and "0.9 s |" in text
    assert "| 10 sessions: wall / back to back" in text and "1.20 |" in text


def test_cpu_by_process_counts_the_server_and_this_script():
    import subprocess

    busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ninput()"],
                            stdin=subprocess.PIPE)  # fmt: skip
    try:
        import time

        deadline, kinds = time.monotonic() + 30, {}
        while time.monotonic() < deadline and kinds.get("server", 0.0) < 0.25:
            time.sleep(0.2)
            kinds = bench_load.cpu_by_process(busy.pid)
        assert kinds["server"] >= 0.25  # the busy child stands in for the server
        assert kinds["server"] < 5  # its own CPU, not the machine's
        assert "benchmark script" in kinds
    finally:
        busy.kill()
        busy.wait()
