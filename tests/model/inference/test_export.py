"""ONNX export and the inference backends: the graph matches torch fp32 at any size, NaN age
works, every backend keeps the labels, a missing or stale model.onnx is refused, and the
fast path (JPEG draft decoding, lazy full-size maps, batched streaming) gives what the
plain path gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from model.errors import DermsevError
from model.inference.export import export_onnx
from model.inference.onnx import onnx_session
from model.inference.predictor import load_model
from model.nets.modeldir import load_network, save_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """The tiny random model with an age/sex branch that is not the identity, exported to ONNX."""
    md = tmp_path_factory.mktemp("export") / "m"
    net, config = load_network(tiny_model_dir)
    torch.manual_seed(1)
    with torch.no_grad():  # FiLM starts as the identity; make age and sex matter
        net.tabular.mlp[-1].weight.normal_(0, 0.5)
    save_model_dir(net, config, md)
    export_onnx(md, quiet=True)
    return md


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMSEV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DERMSEV_BACKEND", raising=False)


def run_both(md: Path, x: np.ndarray, age: np.ndarray, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    net, _ = load_network(md)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x), torch.from_numpy(age), torch.from_numpy(sex)).numpy()
    got = onnx_session(md, threads=1).run(None, {"image": x, "age": age, "sex": sex})[0]
    return ref, got


@pytest.mark.parametrize("h, w", [(64, 64), (96, 160)])
def test_round_trip_matches_torch_at_two_sizes(model_dir: Path, h: int, w: int) -> None:
    x = np.random.default_rng(h).random((2, 3, h, w), dtype=np.float32)
    ref, got = run_both(model_dir, x, np.array([30.0, 70.0], np.float32), np.array([1, 2]))
    assert got.shape == (2, 4, h, w)
    assert np.abs(got - ref).max() < 1e-3


def test_nan_age_works_in_onnx(model_dir: Path) -> None:
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    x2 = np.concatenate([x, x, x])
    ref, got = run_both(model_dir, x2, np.array([np.nan, 5.0, 90.0], np.float32), np.array([0, 0, 0]))
    assert np.isfinite(got).all()
    assert np.abs(got - ref).max() < 1e-3
    # unknown age has its own embedding: the three rows (same image) really differ
    assert np.abs(got[0] - got[1]).max() > 1e-3 and np.abs(got[1] - got[2]).max() > 1e-3


@pytest.mark.parametrize("backend", ["torch-fp32", "onnx"])
def test_forward_takes_one_age_and_sex_per_image(model_dir: Path, backend: str) -> None:
    """A batch of different patients' photos (the dashboard's queue batches them): each row
    gets its own age and sex; one value still stands for every image."""
    p = load_model(model_dir, backend=backend)
    x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    ages, sexes = [20.0, None, 80.0], ["F", "M", None]
    batched = p.forward_all(x, ages, sexes)
    alone = np.concatenate([p.forward_all(x[i : i + 1], ages[i], sexes[i]) for i in range(3)])
    assert np.abs(batched - alone).max() < 1e-4
    assert np.abs(batched[0] - p.forward_all(x[:1], 80.0, "M")[0]).max() > 1e-3  # the patient matters
    assert np.array_equal(p.forward_all(x, 40, "F"), p.forward_all(x, [40] * 3, ["F"] * 3))


def test_metadata_records_hashes_and_check(model_dir: Path) -> None:
    meta = onnx_session(model_dir).get_modelmeta().custom_metadata_map
    assert len(meta["weights_sha256"]) == 64 and len(meta["config_sha256"]) == 64
    assert json.loads(meta["checked_max_abs_diff"])["max_abs_diff"] <= 1e-3
    assert [i.name for i in onnx_session(model_dir).get_inputs()] == ["image", "age", "sex"]


def synth_images(synth_dataset: Path) -> list[Path]:
    return sorted((synth_dataset / "images").glob("*.png"))


def test_onnx_backend_gives_the_fp32_labels(model_dir: Path, synth_dataset: Path) -> None:
    fp32, onnx = load_model(model_dir, backend="torch-fp32"), load_model(model_dir, backend="onnx")
    assert onnx.backend == "onnx" and onnx.info["backend"] == "onnx"
    for path in synth_images(synth_dataset):
        a, b = fp32.predict(path, age=40, sex="F"), onnx.predict(path, age=40, sex="F")
        assert a.labels == b.labels
        assert np.abs(a.work_maps - b.work_maps).max() < 1e-3


def test_every_backend_close_to_fp32_and_labels_unchanged(model_dir: Path, synth_dataset: Path) -> None:
    from model.inference.bench import compare_backends

    rep = compare_backends(model_dir, synth_images(synth_dataset), backends=("torch-bf16", "onnx"))
    assert rep["onnx"]["max_abs_diff"] < 1e-3 and rep["onnx"]["label_changes"] == 0
    # bf16 rounds activations to 8 mantissa bits: close, and any changed label sits at a threshold
    assert rep["torch-bf16"]["max_abs_diff"] < 0.3
    assert rep["torch-bf16"]["label_changes_away_from_thresholds"] == 0


def test_missing_onnx_is_an_error(tmp_path: Path, model_dir: Path) -> None:
    md = tmp_path / "m"
    shutil.copytree(model_dir, md)
    (md / "model.onnx").unlink()
    with pytest.raises(DermsevError, match="not found"):
        onnx_session(md)
    with pytest.raises(DermsevError, match="dermsev export"):
        load_model(md, backend="onnx")
    assert load_model(md).backend in ("torch-fp32", "torch-bf16")  # auto falls back


def test_stale_onnx_is_an_error(tmp_path: Path, model_dir: Path) -> None:
    md = tmp_path / "m"
    shutil.copytree(model_dir, md)
    state = load_file(str(md / "model.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 0.01
    save_file(state, str(md / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(DermsevError, match="stale"):
        onnx_session(md)
    with pytest.raises(DermsevError, match="stale"):
        load_model(md, backend="onnx")
    export_onnx(md, quiet=True)  # re-export makes it fresh again
    assert onnx_session(md) is not None


def test_stale_after_network_settings_change(tmp_path: Path, model_dir: Path) -> None:
    md = tmp_path / "m"
    shutil.copytree(model_dir, md)
    cfg = json.loads((md / "config.json").read_text())
    cfg["network"]["mil_pool"] = "max" if cfg["network"]["mil_pool"] != "max" else "mean"
    (md / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DermsevError, match="stale"):
        onnx_session(md)


def test_export_cli(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    from model.cli import main

    md = tmp_path / "m"
    shutil.copytree(model_dir, md)
    (md / "model.onnx").unlink()
    assert main(["export", str(md)]) == 0
    assert (md / "model.onnx").is_file()
    assert "wrote" in capsys.readouterr().out


def test_auto_measures_once_and_caches(model_dir: Path, tmp_path: Path) -> None:
    p = load_model(model_dir)
    rep = p.backend_report
    assert p.backend in rep["median_ms"] and "onnx" in rep["median_ms"]
    assert rep["rule"] == "measured" and rep["max_abs_diff_vs_fp32"]["onnx"] < 1e-3
    again = load_model(model_dir)
    assert again.backend == p.backend and again.backend_report["rule"] == "measured (cached)"
    assert (tmp_path / "cache" / "backend.json").is_file()


def test_backend_env_override(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DERMSEV_BACKEND", "onnx")
    assert load_model(model_dir).backend == "onnx"
    monkeypatch.setenv("DERMSEV_BACKEND", "gpu")
    with pytest.raises(DermsevError, match="DERMSEV_BACKEND"):
        load_model(model_dir)


# --- the fast path -----------------------------------------------------------------------------


def big_photo(tmp_path: Path, orientation: int = 6) -> Path:
    """A 1600 x 1200 JPEG stored sideways (EXIF orientation 6): upright it is 1200 wide, 1600 high."""
    rng = np.random.default_rng(3)
    small = rng.integers(60, 230, (12, 16, 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(small).resize((1600, 1200), Image.BICUBIC))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "big.jpg"
    Image.fromarray(arr).save(path, quality=90, exif=exif.tobytes())
    return path


def test_large_jpeg_is_decoded_small_but_maps_are_full_size(model_dir: Path, tmp_path: Path) -> None:
    p = load_model(model_dir, backend="torch-fp32")
    path = big_photo(tmp_path)
    r = p.predict(path)
    assert r.size == (1600, 1200)
    assert r.image.shape[0] < 1600 and max(r.image.shape[:2]) >= p.preview_side  # draft mode, portrait
    assert r.image.shape[0] > r.image.shape[1]
    rgb, maps = r.preview(max_side=400)
    assert rgb.shape == (400, 300, 3) and maps.shape == (4, 400, 300)
    assert "maps" not in r.__dict__  # the preview made no full-size map
    assert r.maps.shape == (4, 1600, 1200) and r.maps.dtype == np.float16
    assert r.maps.max() <= p.max_score
    # draft decoding changes the scores only a little (both are then resized to 64 px)
    full = p.predict(np.asarray(Image.open(path).transpose(Image.Transpose.ROTATE_270)))
    for s in p.signs:
        assert abs(full.scores[s] - r.scores[s]) < 0.1


def test_prepare_names_its_parts(model_dir: Path, tmp_path: Path) -> None:
    p = load_model(model_dir, backend="torch-fp32")
    prepared = p.prepare(big_photo(tmp_path))
    x, (h, w) = prepared.x, prepared.hw
    assert prepared.image.shape[2] == 3 and x.shape[1] % 32 == 0 and x.shape[2] % 32 == 0 and (h, w) == (64, 48)
    assert prepared.full_size == (1600, 1200)
    assert p.predict_prepared(prepared).maps.shape == (4, 1600, 1200)


def test_predict_many_streams_in_order_and_skips_bad_files(model_dir: Path, synth_dataset: Path,
                                                           tmp_path: Path) -> None:
    p = load_model(model_dir, backend="onnx")
    paths = synth_images(synth_dataset)[:6]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    items = paths[:3] + [bad] + paths[3:] + [big_photo(tmp_path)]
    out = list(p.predict_many(items, age=50, sex="M", batch_size=4, workers=2))
    assert len(out) == len(items)
    assert isinstance(out[3], DermsevError) and "bad.jpg" in str(out[3])
    for item, res in zip(items, out, strict=True):
        if item == bad:
            continue
        one = p.predict(item, age=50, sex="M")
        assert res.labels == one.labels
        assert np.abs(res.work_maps - one.work_maps).max() < 1e-4
    assert out[-1].maps.shape == (4, 1600, 1200)
