"""`dermsev predict` carries the photo checks: CSV columns, JSON fields, a warning on stdout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from model.cli import main


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """A photo of a coffee cup (not skin) and a plain skin tone with pores (sharp, not grainy)."""
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    rng = np.random.default_rng(0)
    pores = cv2.dilate((rng.random((200, 240)) < 0.003).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    tone = np.float32([224, 172, 150]) - 40 * pores[..., None] + rng.normal(0, 1, (200, 240, 1))
    skin = np.clip(tone, 0, 255).astype(np.uint8)
    Image.fromarray(skin).save(tmp_path / "skin.png")
    return {"coffee": tmp_path / "coffee.png", "skin": tmp_path / "skin.png", "root": tmp_path}


def test_csv_reports_the_failed_check_with_a_reason(photos: dict[str, Path], tiny_model_dir: Path) -> None:
    out = photos["root"] / "scores.csv"
    assert main(["predict", str(tiny_model_dir), str(photos["coffee"]), str(photos["skin"]), "--out", str(out)]) == 0
    coffee, skin = csv.DictReader(out.open())
    assert coffee["check"] == "fail" and "skin" in coffee["check_reasons"]
    assert 0 <= float(coffee["skin_fraction"]) <= 1
    assert coffee["score_erythema"] != ""  # scores are still computed
    assert skin["check"] in ("pass", "warn") and float(skin["skin_fraction"]) > 0.9
    assert (skin["check_reasons"] == "") == (skin["check"] == "pass")


def test_json_has_the_check_fields_per_image(photos: dict[str, Path], tiny_model_dir: Path) -> None:
    out = photos["root"] / "scores.json"
    assert main(["predict", str(tiny_model_dir), str(photos["coffee"]), "--out", str(out)]) == 0
    row = json.loads(out.read_text())["images"][0]
    assert row["check"] == "fail"
    assert isinstance(row["check_reasons"], list) and row["check_reasons"]
    assert 0 <= row["skin_fraction"] <= 1


def test_the_table_replaces_a_failed_photos_labels_by_the_reason(capsys, photos: dict[str, Path],
                                                                tiny_model_dir: Path) -> None:
    assert main(["predict", str(tiny_model_dir), str(photos["coffee"]), str(photos["skin"])]) == 0
    coffee, skin = capsys.readouterr().out.strip().splitlines()
    assert "coffee.png" in coffee and "WARNING" in coffee and "skin" in coffee
    assert not any(label in coffee for label in ("none", "mild", "moderate", "severe"))
    assert "skin.png" in skin and "erythema" in skin


def test_a_heavily_compressed_jpeg_is_failed_with_its_quality(tmp_path: Path, tiny_model_dir: Path) -> None:
    # at the tiny model's working size (64 px) the JPEG's blocks reach the network as stored
    rng = np.random.default_rng(1)
    pores = cv2.dilate((rng.random((64, 64)) < 0.01).astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    skin = np.clip(np.float32([224, 172, 150]) - 40 * pores[..., None], 0, 255).astype(np.uint8)
    for q in (40, 97):
        Image.fromarray(skin).save(tmp_path / f"q{q}.jpg", quality=q)
    out = tmp_path / "scores.json"
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "q40.jpg"), str(tmp_path / "q97.jpg"),
                 "--out", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())
    rows = rows["images"] if isinstance(rows, dict) else rows
    low, high = rows
    assert low["check"] == "fail" and "heavily compressed" in " ".join(low["check_reasons"])
    assert "compressed" not in " ".join(high["check_reasons"])
