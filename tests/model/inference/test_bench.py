"""`dermsev bench`: runs end to end on a tiny model and reports every stage (times not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.cli.bench import bench_cli
from model.inference.bench import STAGES, decode_floor


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMSEV_CACHE_DIR", str(tmp_path / "cache"))


def test_bench_cli_json_has_every_stage(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    # the "12mp" case kept small; peak memory (a fresh process) is tested on its own below
    bench_cli(tiny_model_dir, json_out=str(out), repeats=1, photo_size=(600, 800), memory=False)
    table = capsys.readouterr().out
    assert "END TO END" in table and "baseline" in table and "targets" in table
    rep = json.loads(out.read_text())
    assert set(rep["cases"]) == {"512px", "12mp"}
    for case in rep["cases"].values():
        assert set(case["stages"]) == set(STAGES)
        for stat in case["stages"].values():
            assert stat["n"] == 1 and stat["median_ms"] >= 0 and stat["p90_ms"] >= stat["median_ms"] - 1e-9
    assert rep["baseline"]["median_ms"] > 0
    assert rep["throughput"]["pipeline_img_per_s"] > 0 and rep["throughput"]["forward_limit_img_per_s"] > 0
    assert rep["memory"] == {}
    assert set(rep["ratios"]) >= {"12mp_end_to_end_vs_baseline", "12mp_decode_floor_vs_baseline"}
    assert rep["decode_floor_12mp"]["n"] == 1 and "decode floor" in table
    assert set(rep["targets"]) == {"12mp_end_to_end_le_half_baseline", "12mp_end_to_end_le_500ms",
                                   "throughput_ge_80pct_of_forward", "peak_memory_12mp_le_1_5GB"}
    assert rep["backend"] in ("torch-fp32", "torch-bf16", "onnx")


def test_bench_command_line(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import model.cli.bench
    from model.cli import main

    seen = {}
    monkeypatch.setattr(model.cli.bench, "bench_cli", lambda md, json_out=None, repeats=10: seen.update(
        md=md, json_out=json_out, repeats=repeats))
    assert main(["bench", str(tiny_model_dir), "--json", str(tmp_path / "b.json"), "--repeats", "2"]) == 0
    assert seen == {"md": str(tiny_model_dir), "json_out": str(tmp_path / "b.json"), "repeats": 2}


def test_bad_repeats(tiny_model_dir: Path) -> None:
    from model.errors import DermsevError

    with pytest.raises(DermsevError, match="repeats"):
        bench_cli(tiny_model_dir, repeats=0)


@pytest.mark.slow
def test_peak_memory_of_a_fresh_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    from model.inference.bench import _peak_memory, synthetic_photos

    photos = synthetic_photos(tmp_path, n_batch=0, photo_size=(600, 800))
    mem = _peak_memory(tiny_model_dir, photos["12mp"], "torch-fp32", 1)
    assert "error" not in mem, mem
    assert 0 < mem["after_load_mb"] <= mem["score_and_preview_mb"] <= mem["with_full_maps_mb"]


def test_decode_floor_reads_the_jpeg_at_one_eighth(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    path = tmp_path / "big.jpg"
    Image.fromarray(np.full((800, 1200, 3), 128, np.uint8)).save(path, "JPEG")
    assert decode_floor(path) == (100, 150)
