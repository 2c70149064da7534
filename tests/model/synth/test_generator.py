"""Synthetic data generator: SPEC layout, score convention, determinism, channels, bad args."""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from model.errors import DermsevError
from model.synth.generator import generate, render_gallery
from model.synth.render import Patient, channel_names, draw_params, render
from model.synth.signs import SIGNS, excoriation

BASE_COLS = ["id", "image", "patient_id", "age", "sex", "fitzpatrick"]


def rows_of(ds: Path) -> list[dict[str, str]]:
    with open(ds / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def digest(ds: Path) -> dict[str, str]:
    return {
        str(p.relative_to(ds)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ds.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def rgb_set(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "ds", n=10, size=72, seed=5, workers=1)


def test_layout_follows_spec(rgb_set: Path):
    meta = yaml.safe_load((rgb_set / "dataset.yaml").read_text())
    assert meta["signs"] == list(SIGNS)
    assert meta["max_score"] == 3
    assert meta["channels"] == ["red", "green", "blue"]
    assert meta["labels"] == ["none", "mild", "moderate", "severe"]
    assert meta["synthetic"] is True
    rows = rows_of(rgb_set)
    assert len(rows) == 10
    assert list(rows[0]) == BASE_COLS + [f"mask_{s}" for s in SIGNS] + ["skin_mask"] + [f"score_{s}" for s in SIGNS]
    assert len({r["id"] for r in rows}) == 10
    for r in rows:
        image = np.asarray(Image.open(rgb_set / r["image"]))
        assert image.shape == (72, 72, 3) and image.dtype == np.uint8
        assert r["sex"] in ("F", "M") and 1 <= int(r["fitzpatrick"]) <= 6
        assert 1 <= int(r["age"]) <= 90 and r["patient_id"].startswith("p")
        for sign in SIGNS:
            mask = np.asarray(Image.open(rgb_set / r[f"mask_{sign}"]))
            assert mask.shape == (72, 72) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 1, 2, 3, 255}
            assert (mask != 255).mean() > 0.7  # most pixels annotated


def test_skin_masks_leave_out_background_clothing_and_hair(tmp_path: Path):
    from model.synth.generator import plan_patients
    from model.synth.render import BACKGROUNDS, draw_params, render

    ds = generate(tmp_path / "ds", n=40, size=64, seed=11, workers=1)
    fractions = []
    for r in rows_of(ds):
        skin = np.asarray(Image.open(ds / r["skin_mask"]))
        assert skin.shape == (64, 64) and set(np.unique(skin)) <= {0, 1}
        for sign in SIGNS:  # lesions only on skin
            mask = np.asarray(Image.open(ds / r[f"mask_{sign}"]))
            assert not ((mask >= 1) & (mask != 255) & (skin == 0)).any()
        fractions.append(skin.mean())
    assert min(fractions) < 0.9 and max(fractions) == 1.0  # some photos show a background, most do not
    # every kind of background is drawn, and a hair-covered region is darker than the skin beside it
    seen, checked = set(), 0
    for i, patient in enumerate(plan_patients(11, 400)):
        rng = np.random.default_rng([11, i])
        params = draw_params(rng, patient)
        seen.add(params.background)
        if params.background == "hair" and patient.hair_shade < 0.2 and checked < 3:  # dark hair
            img, _, skin = render(rng, patient, params, 96)
            lum = img.astype(np.float32).mean(axis=2)
            assert lum[skin == 0].mean() < lum[skin == 1].mean()
            checked += 1
    assert checked == 3
    assert seen == {None, *BACKGROUNDS}


def test_several_images_per_patient(rgb_set: Path):
    counts: dict[str, int] = {}
    for r in rows_of(rgb_set):
        counts[r["patient_id"]] = counts.get(r["patient_id"], 0) + 1
    assert all(2 <= c <= 5 for c in counts.values())
    by_patient = {r["patient_id"]: (r["age"], r["sex"], r["fitzpatrick"]) for r in rows_of(rgb_set)}
    for r in rows_of(rgb_set):  # age, sex and skin type belong to the patient
        assert by_patient[r["patient_id"]] == (r["age"], r["sex"], r["fitzpatrick"])


def test_scores_follow_easi_convention(rgb_set: Path):
    for r in rows_of(rgb_set):
        for sign in SIGNS:
            mask = np.asarray(Image.open(rgb_set / r[f"mask_{sign}"]))
            present = (mask >= 1) & (mask != 255)
            expected = mask[present].mean() if present.any() else 0.0
            assert float(r[f"score_{sign}"]) == pytest.approx(expected, abs=1e-4)


def test_same_seed_same_bytes_any_workers(tmp_path: Path):
    a = digest(generate(tmp_path / "a", n=9, size=64, seed=3, workers=1))
    b = digest(generate(tmp_path / "b", n=9, size=64, seed=3, workers=2))
    c = digest(generate(tmp_path / "c", n=9, size=64, seed=4, workers=1))
    assert a == b
    images = [k for k in a if k.startswith("images/")]
    assert all(a[k] != c[k] for k in images)


def test_six_channels_write_tiff_and_channel_signs(tmp_path: Path):
    ds = generate(tmp_path / "c6", n=6, size=64, seed=1, channels=6, workers=1)
    meta = yaml.safe_load((ds / "dataset.yaml").read_text())
    names = ["red", "green", "blue", "cross_polarised", "uv", "noise_1"]
    assert meta["channels"] == names
    assert set(meta["channel_signs"]) == set(names)
    assert meta["channel_signs"]["cross_polarised"] == ["erythema"]
    assert meta["channel_signs"]["noise_1"] == []
    for r in rows_of(ds):
        assert r["image"].endswith(".tif")
        image = tifffile.imread(ds / r["image"])
        assert image.shape == (64, 64, 6) and image.dtype == np.uint8


@pytest.mark.parametrize(
    "channels, names",
    [
        (1, ["gray"]),
        (2, ["gray", "cross_polarised"]),
        (4, ["red", "green", "blue", "cross_polarised"]),
    ],
)
def test_other_channel_counts(tmp_path: Path, channels: int, names: list[str]):
    assert channel_names(channels) == names
    ds = generate(tmp_path / "c", n=2, size=48, channels=channels, workers=1)
    image = tifffile.imread(ds / rows_of(ds)[0]["image"])
    assert image.reshape(48, 48, -1).shape[2] == channels


def test_extra_channels_carry_the_declared_signs():
    """cross_polarised follows erythema strongly; a noise channel does not."""
    patient = Patient("p1", 40, "F", 3, (1.0, 1.0, 1.0), 0.1)
    rng = np.random.default_rng(0)
    params = draw_params(rng, patient)
    params = type(params)((3, 0, 0, 0), None, 0, 0.0, params.line_angles)
    image, masks, _ = render(rng, patient, params, 96, channels=6)
    ery = masks[0] > 0
    assert ery.any() and (~ery).any()
    cp, noise = image[..., 3].astype(float), image[..., 5].astype(float)
    assert cp[ery].mean() - cp[~ery].mean() > 40
    assert abs(noise[ery].mean() - noise[~ery].mean()) < 15


def test_image_level_only_has_no_masks(tmp_path: Path):
    ds = generate(tmp_path / "il", n=4, size=48, image_level_only=True, workers=1)
    cols = list(rows_of(ds)[0])
    assert not [c for c in cols if c.startswith("mask_")]
    assert [c for c in cols if c.startswith("score_")] == [f"score_{s}" for s in SIGNS]
    assert not (ds / "masks").exists() or not any((ds / "masks").iterdir())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "at least 1"),
        ({"size": 16}, "size"),
        ({"channels": 0}, "channels"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
        ({"n": 2.5}, "whole number"),
    ],
)
def test_ill_args(tmp_path: Path, kwargs: dict, match: str):
    with pytest.raises(DermsevError, match=match):
        generate(tmp_path / "x", **kwargs)


def test_refuses_non_empty_output(tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DermsevError, match="not empty"):
        generate(tmp_path / "full", n=1, size=32)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DermsevError, match="is a file"):
        generate(tmp_path / "file", n=1, size=32)
    (tmp_path / "empty").mkdir()  # an existing empty folder is fine
    assert (generate(tmp_path / "empty", n=1, size=32) / "manifest.csv").exists()


def test_every_level_of_every_sign_appears(tmp_path: Path):
    ds = generate(tmp_path / "levels", n=60, size=48, seed=2, workers=1)
    rows = rows_of(ds)
    for sign in SIGNS:
        peaks = set()
        for r in rows:
            mask = np.asarray(Image.open(ds / r[f"mask_{sign}"]))
            peaks.add(int(mask[mask != 255].max(initial=0)))
        assert peaks == {0, 1, 2, 3}, sign
    combos = {tuple(float(r[f"score_{s}"]) > 0 for s in SIGNS) for r in rows}
    assert len(combos) >= 8  # signs vary independently


def _line_strength(age: int, seed: int) -> float:
    """Mean high-pass energy of clear skin (no signs, no background, no hair)."""
    patient = Patient("p1", age, "F", 2, (1.0, 1.0, 1.0), 0.1)
    rng = np.random.default_rng([seed, age])
    p = draw_params(rng, patient)
    p = type(p)((0, 0, 0, 0), None, 0, p.hair_direction, p.line_angles)
    image = render(rng, patient, p, 128)[0]
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 2.0)).mean())


def test_excoriation_is_labelled_only_where_scratches_are():
    """Annotators outline the scratched skin: every labelled pixel has a scratch within reach,
    and a lesion's level is kept there; the scratches cover most of a large lesion."""
    rng = np.random.default_rng(0)
    lesion = np.zeros((256, 256), np.uint8)
    cv2.circle(lesion, (128, 128), 90, 2, -1)
    cv2.circle(lesion, (128, 128), 40, 3, -1)
    ero, crust, annotated = excoriation(rng, lesion, 1.0)
    marks = (ero > 0.1) | (crust > 0.1)
    near = cv2.dilate((lesion > 0).astype(np.uint8), np.ones((5, 5), np.uint8))  # soft lesion edge
    assert marks.any() and not marks[near == 0].any()
    assert set(np.unique(annotated)) <= {0, 2, 3}
    assert np.array_equal(annotated[annotated > 0], lesion[annotated > 0])
    reach = cv2.dilate(marks.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13)))
    assert not (annotated > 0)[reach == 0].any()
    assert 0.5 < (annotated > 0).sum() / (lesion > 0).sum() < 1.0
    empty = excoriation(rng, np.zeros((64, 64), np.uint8), 1.0)
    assert not any(a.any() for a in empty)


def test_skin_lines_deepen_with_age():
    young = np.mean([_line_strength(5, s) for s in range(4)])
    old = np.mean([_line_strength(85, s) for s in range(4)])
    assert old > 1.2 * young


def test_no_torch_import(tmp_path: Path):
    import subprocess

    code = (
        "import sys; from model.synth.generator import generate; "
        f"generate({str(tmp_path / 'nt')!r}, n=1, size=32); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.stdout.strip() == "False"


def test_gallery(rgb_set: Path, tmp_path: Path):
    out = render_gallery(rgb_set, tmp_path / "g.png", n=3)
    image = Image.open(out)
    assert image.mode == "RGB" and image.size[0] > image.size[1] > 0
