"""`output_stems`: one distinct file-name stem per input, so `predict --maps` never overwrites a map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.cli import main
from model.cli.common import output_stems
from model.nets.modeldir import read_config


@pytest.mark.parametrize(
    "paths, expected",
    [
        (["a/one.jpg", "b/two.png", "three.tif"], ["one", "two", "three"]),  # unique: unchanged
        (["a/photo.jpg", "b/photo.jpg"], ["a_photo", "b_photo"]),
        (["x/photo.jpg", "x/photo.png"], ["photo_jpg", "photo_png"]),
        (["a/photo.jpg", "other.png", "a/b/photo.jpg"], ["photo", "other", "b_photo"]),
    ],
)
def test_output_stems(paths: list[str], expected: list[str]) -> None:
    assert output_stems([Path(p) for p in paths]) == expected


@pytest.mark.parametrize(
    "paths",
    [
        ["x/photo.jpg", "x/photo.jpg"],  # the same file twice
        ["x/photo.jpg", "x/photo.jpg", "x/photo.jpg", "y/photo.jpg"],
        ["a/photo.jpg", "b/photo.jpg", "a_photo.jpg"],  # a made-up stem meets a real one
    ],
)
def test_output_stems_always_distinct(paths: list[str]) -> None:
    stems = output_stems([Path(p) for p in paths])
    assert len(stems) == len(paths) and len(set(stems)) == len(stems), stems


def test_predict_maps_keeps_same_named_images_apart(tmp_path: Path, tiny_model_dir: Path) -> None:
    signs = read_config(tiny_model_dir)["network"]["signs"]
    dir_a, dir_b, out = tmp_path / "a", tmp_path / "b", tmp_path / "maps"
    dir_a.mkdir()
    dir_b.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(np.full((48, 40, 3), 20, np.uint8)).save(dir_a / "photo.png")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(dir_b / "photo.png")

    assert main(["predict", str(tiny_model_dir), str(dir_a), str(dir_b), "--maps", str(out)]) == 0

    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{d}_photo_{s}.png" for d in ("a", "b") for s in signs)
    maps = {
        d: [np.asarray(Image.open(out / f"{d}_photo_{s}.png")) for s in signs] for d in ("a", "b")
    }
    assert all(m.shape == (48, 40) for d in maps for m in maps[d])
    assert any(not np.array_equal(ma, mb) for ma, mb in zip(maps["a"], maps["b"], strict=True))
