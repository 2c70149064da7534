"""`dermsev explain`: channel importance JSON, per-channel saliency summaries and PNG maps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from model.cli import main
from model.cli.explain import channel_images, explain_cli, overlay
from model.errors import DermsevError

SIGNS = ["erythema", "papulation", "excoriation", "lichenification"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for name, (h, w) in [("a.png", (48, 80)), ("b.jpg", (64, 64))]:
        p = root / name
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def check_importance(imp: dict, channels: list[str]) -> None:
    assert list(imp) == channels
    assert all(v >= 0 for v in imp.values())
    assert sum(imp.values()) == pytest.approx(1.0, abs=1e-6)


def test_json_pngs_and_summary(tiny_model_dir: Path, photos: list[Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out" / "explain.json"
    result = explain_cli(tiny_model_dir, [str(p) for p in photos], json_out=str(out))
    data = json.loads(out.read_text())
    assert data == result
    check_importance(data["channel_importance"], ["red", "green", "blue"])
    assert data["maps_dir"] == str(tmp_path / "out" / "explain_maps")
    assert [Path(e["image"]).name for e in data["images"]] == ["a.png", "b.jpg"]
    for entry, (h, w) in zip(data["images"], [(38, 64), (64, 64)], strict=True):
        assert entry["size"] == [h, w]  # the model's working size (longest side 64)
        assert list(entry["signs"]) == SIGNS
        for sign, e in entry["signs"].items():
            assert set(e["channel_share"]) == {"red", "green", "blue"}
            assert all(v >= 0 for v in e["channel_share"].values())
            assert sum(e["channel_share"].values()) == pytest.approx(1.0, abs=1e-3)
            assert e["top_channel"] == max(e["channel_share"], key=e["channel_share"].get)
            assert 0 <= e["score"] <= 3
            over = Image.open(e["overlay_png"])
            assert over.mode == "RGB" and over.size == (w, h)
            assert sign in Path(e["overlay_png"]).name
            assert set(e["channel_pngs"]) == {"red", "green", "blue"}
            for ch, p in e["channel_pngs"].items():
                img = Image.open(p)
                assert img.mode == "L" and img.size == (w, h)
                assert ch in Path(p).name
    printed = capsys.readouterr().out
    assert "channel importance" in printed and "a.png" in printed and "b.jpg" in printed
    assert "erythema: " in printed and str(out) in printed


def test_many_channels_with_mixing(write_tiny_model, tmp_path: Path) -> None:
    """Saliency entries follow the input's channel count; the mixing layer is the importance."""
    channels = ("red", "green", "blue", "nir", "uv")
    model = write_tiny_model(tmp_path / "m5", channels=channels, mixing=True)
    img = tmp_path / "five.tif"
    tifffile.imwrite(img, np.random.default_rng(1).integers(0, 256, (40, 40, 5), dtype=np.uint8),
                     photometric="minisblack", planarconfig="contig")
    maps = tmp_path / "maps"
    data = explain_cli(model, [str(img)], json_out=str(tmp_path / "x.json"), maps=str(maps),
                       method="jacobian", quiet=True)
    assert data["importance_method"] == "learned"
    check_importance(data["channel_importance"], list(channels))
    assert data["method"] == "jacobian"
    (entry,) = data["images"]
    for e in entry["signs"].values():
        assert list(e["channel_share"]) == list(channels)
        assert len(e["channel_pngs"]) == 5
    assert len(list(maps.glob("*.png"))) == 4 * (1 + 5)


def test_importance_only_and_default_maps_dir(tiny_model_dir: Path, photos, synth_dataset: Path,
                                              tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = explain_cli(tiny_model_dir, [], json_out="imp.json", dataset=str(synth_dataset), quiet=True)
    assert data["importance_method"] == "ablation"
    check_importance(data["channel_importance"], ["red", "green", "blue"])
    assert "images" not in data and json.loads(Path("imp.json").read_text()) == data
    explain_cli(tiny_model_dir, [str(photos[0])], quiet=True)  # no JSON: ./explain_maps
    assert len(list((tmp_path / "explain_maps").glob("a_*.png"))) == 4 * 4


def test_cli_one_line_errors(tiny_model_dir: Path, photos, tmp_path: Path, capsys) -> None:
    cases = [
        [str(tiny_model_dir), str(tmp_path / "missing.png")],
        [str(tmp_path / "no_model"), str(photos[0])],
        [str(tiny_model_dir), str(photos[0]), "--dataset", str(tmp_path / "nope")],
    ]
    for argv in cases:
        assert main(["explain", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dermsev explain: error:") and "\n" not in err and "Traceback" not in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DermsevError, match=re.escape(f"{bad}: not an image")):
        explain_cli(tiny_model_dir, [str(bad)], maps=str(tmp_path / "m"), quiet=True)


def test_cli_writes_json(tiny_model_dir: Path, photos, tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    assert main(["explain", str(tiny_model_dir), str(photos[1]), "--json", str(out),
                 "--maps", str(tmp_path / "pngs")]) == 0
    data = json.loads(out.read_text())
    check_importance(data["channel_importance"], ["red", "green", "blue"])
    assert len(list((tmp_path / "pngs").glob("b_*.png"))) == 4 * 4


def test_overlay_and_channel_images() -> None:
    rgb = np.full((4, 5, 3), 100, np.uint8)
    p = np.zeros((4, 5), np.float32)
    p[0, 0] = 1.0
    o = overlay(rgb, p)
    assert o.shape == (4, 5, 3) and o.dtype == np.uint8
    assert (o[1:] == 100).all() and (o[0, 0] != 100).any()  # zero saliency leaves the photo
    sal = np.zeros((2, 4, 5), np.float32)
    sal[0] = 1.0
    sal[1] = 0.5
    a, b = channel_images(sal)
    assert a.max() == 255 and b.max() == 128  # one shared scale per sign
    assert all(c.max() == 0 for c in channel_images(np.zeros((3, 2, 2))))


def test_probe_from_the_cli(tiny_model_dir: Path, synth_dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "probe.json"
    assert main(["explain", str(tiny_model_dir), "--dataset", str(synth_dataset), "--probe", "--probe-steps", "3",
                 "--json", str(out)]) == 0
    assert "carries on its own (probe)" in capsys.readouterr().out
    data = json.loads(out.read_text())
    check_importance(data["probe"], ["red", "green", "blue"])
    assert data["importance_method"] == "ablation"  # the probe describes the data, never the headline
    assert data["probe_detail"]["metric"] == "pixel_mse"
    assert set(data["probe_by_sign"]) <= {"erythema", "papulation", "excoriation", "lichenification"}
    for argv in (["--probe"], ["--dataset", str(synth_dataset), "--probe", "--probe-steps", "0"]):
        assert main(["explain", str(tiny_model_dir), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dermsev explain: error:") and "probe" in err and "\n" not in err
