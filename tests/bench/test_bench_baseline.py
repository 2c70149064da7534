"""bench/bench_baseline.py without training: its task generators, metrics, baseline net and table."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.data.dataset import load_dataset, load_example

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_baseline.py"
_spec = importlib.util.spec_from_file_location("bench_baseline", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

HELD = {0, 5, 21, 42, 63, 17, 30, 50}


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    return load_dataset(bench.write_colour_combos(tmp_path_factory.mktemp("c") / "d", n=40, size=32, seed=3, heldout=HELD))


@pytest.fixture(scope="module")
def age_sex(tmp_path_factory):
    return load_dataset(bench.write_age_sex(tmp_path_factory.mktemp("a") / "d", n=120, size=32, seed=4))


@pytest.mark.parametrize("name", ["colour", "age_sex"])
def test_generators_write_valid_datasets_with_every_split(name, request):
    ds = request.getfixturevalue(name)
    assert {r.split for r in ds.records} == {"train", "val", "test"}
    assert all(r.age is not None and r.sex in ("F", "M") for r in ds.records)
    signs = ("red", "green", "blue") if name == "colour" else ("severity",)
    assert ds.spec.signs == signs and all(r.masks[s] is not None for r in ds.records for s in signs)


def test_skin_task_is_synth_data_split_by_patient(tmp_path):
    ds = load_dataset(bench.write_skin(tmp_path / "s", n=12, size=32, seed=1))
    assert len(ds.records) == 12 and all(r.split in ("train", "val", "test") for r in ds.records)
    sides = defaultdict(set)
    for r in ds.records:
        sides[r.patient_id].add(r.split)
    assert all(len(v) == 1 for v in sides.values())


def test_colour_test_split_holds_only_unseen_combinations(colour):
    assert set(colour.extra["heldout"]) == HELD
    for rec in colour.records:
        img, masks = load_example(rec, colour.spec)
        r, g, b = masks
        codes = set(np.unique(bench.combo(r.astype(int), g.astype(int), b.astype(int))).tolist())
        assert codes <= HELD if rec.split == "test" else not codes & HELD
        # labels are the bins of the cell's colour; the noise never pushes a pixel into another bin
        assert np.array_equal(np.asarray(Image.open(rec.image)) // 64, np.stack(masks, -1))
    assert bench.pick_heldout(12, 0) == bench.pick_heldout(12, 0) and len(bench.pick_heldout(12, 0)) == 12


def test_age_sex_image_is_ambiguous_but_age_and_sex_decide(age_sex):
    by_level, by_key = defaultdict(set), defaultdict(set)
    for rec in age_sex.records:
        img = np.asarray(Image.open(rec.image))
        mask = load_example(rec, age_sex.spec)[1][0]
        lesion = img[..., 1] < 110  # the lesion is dark in green and blue, the background pale
        assert lesion.any() and set(np.unique(mask[~lesion])) <= {0}
        level = int(np.median(img[..., 0][lesion])) // 64
        s = set(np.unique(mask[lesion]).tolist())
        assert len(s) == 1
        s = s.pop()
        assert level == bench.age_sex_level(s, rec.age, rec.sex)
        by_level[level].add(s)
        by_key[level, rec.age >= 50, rec.sex].add(s)
    assert any(len(v) > 1 for v in by_level.values())  # the image alone does not decide
    assert all(len(v) == 1 for v in by_key.values())  # (red, age >= 50, sex) does
    assert all(bench.move_age(a) >= 50 for a in range(20, 50)) and all(bench.move_age(a) < 50 for a in range(50, 80))


def test_score_pools_annotated_pixels():
    truth = np.array([[[0, 1], [3, 255]]], np.uint8)
    pred = np.array([[[0.4, 1.6], [2.0, 0.0]]], np.float32)
    out = bench.score([pred], [truth])
    assert out["pixel_accuracy"] == pytest.approx(1 / 3)
    assert out["pixel_mae"] == pytest.approx((0.4 + 0.6 + 1.0) / 3)


@pytest.mark.parametrize("film", [False, True])
def test_baseline_forward_backward(film):
    torch.manual_seed(0)
    net = bench.Baseline(n_signs=2, film=film)
    out = net(torch.rand(2, 3, 64, 64), torch.tensor([[0.3, 0.0], [0.7, 1.0]]))
    assert out.shape == (2, 2, 64, 64) and out.min() >= 0 and out.max() <= 3
    out.mean().backward()
    if film:
        assert net.film[-1].weight.grad.abs().sum() > 0


def test_table_gives_ratios_and_verdicts():
    res = {"age-sex": {
        "product": {"pixel_accuracy": 0.9, "pixel_mae": 0.1, "moved_mae": 0.5, "epochs": 10},
        "baseline": {"pixel_accuracy": 0.8, "pixel_mae": 0.2, "moved_mae": 0.3, "epochs": 20},
    }}
    text = bench.table(res)
    assert res["age-sex"]["ratio"]["mae"] == pytest.approx(0.5) and res["age-sex"]["ratio"]["pass"]
    assert res["age-sex"]["age_target"]["pass"] and "5.00x" in text and "MISS" not in text


def test_mean_runs_averages_numbers_and_keeps_the_runs():
    runs = [{"pixel_accuracy": 0.8, "pixel_mae": 0.3, "epochs": 10, "best_epoch": None},
            {"pixel_accuracy": 0.9, "pixel_mae": 0.1, "epochs": 20, "best_epoch": 7}]
    out = bench.mean_runs(runs)
    assert out["pixel_accuracy"] == pytest.approx(0.85) and out["pixel_mae"] == pytest.approx(0.2)
    assert out["epochs"] == 15 and out["runs"] == runs
    assert bench.table({"colour-combos": {"product": out, "baseline": bench.mean_runs(runs[:1])}}).count("PASS") == 1


def test_paired_differences_give_a_95_percent_interval_over_seeds():
    prod = [{"pixel_accuracy": a, "pixel_mae": 0.2, "epochs": 50} for a in (0.84, 0.86, 0.85)]
    base = [{"pixel_accuracy": a, "pixel_mae": 0.2, "epochs": 50} for a in (0.83, 0.84, 0.85)]
    mean, lo, hi = bench.paired(prod, base, "pixel_accuracy")
    # differences 0.01, 0.02, 0.00: mean 0.01, sd 0.01, t(0.975, 2) = 4.303
    assert mean == pytest.approx(0.01) and hi - mean == pytest.approx(4.303 * 0.01 / 3**0.5, rel=1e-3)
    assert lo < 0 < mean  # three seeds cannot tell 0.01 apart from nothing
    assert bench.paired(prod[:1], base[:1], "pixel_accuracy") is None
    res = {"colour-combos": {"product": bench.mean_runs(prod), "baseline": bench.mean_runs(base)}}
    text = bench.table(res)
    assert "accuracy +0.010 [" in text and res["colour-combos"]["paired"]["mae"][0] == pytest.approx(0.0)


def test_product_command_trains_with_the_seed(tmp_path):
    cmd = bench.product_cmd(tmp_path / "d", tmp_path / "m", 1.5, 64, ["--augment", "none"], seed=3)
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[-2:] == ["--augment", "none"]
    assert cmd[cmd.index("--max-minutes") + 1] == "1.5" and "--epochs" not in cmd
