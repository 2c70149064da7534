"""Smoke test of bench/bench_unseen_combos.py: split, combination coding, a 1-step run."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data.dataset import IGNORE
from model.synth.generator import generate

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_unseen_combos.py"
_spec = importlib.util.spec_from_file_location("bench_unseen_combos", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_encode_decode_round_trip_all_256():
    levels = np.array(list(itertools.product(range(4), repeat=4))).T  # (4, 256)
    idx = bench.encode(levels)
    e, p, x, lich = levels
    assert np.array_equal(idx, e * 64 + p * 16 + x * 4 + lich)
    assert sorted(idx.tolist()) == list(range(256))
    assert np.array_equal(bench.decode(idx), levels)
    assert np.array_equal(bench.encode(bench.decode(np.arange(256))), np.arange(256))
    masks = torch.from_numpy(levels.reshape(1, 4, 16, 16).astype(np.uint8))
    assert np.array_equal(bench.combo_target(masks).numpy().ravel(), idx)
    masks[0, 2, 0, 0] = IGNORE
    assert bench.combo_target(masks)[0, 0, 0] == -100


def test_split_never_trains_on_a_held_out_combination():
    rng = np.random.default_rng(0)
    tuples = [tuple(int(v) for v in rng.integers(0, 4, 4)) for _ in range(300)]
    patients = [f"p{i // 3}" for i in range(300)]
    split = bench.combo_split(tuples, patients, frac=0.2, seed=1)
    held = split["held"]
    assert held and all(sum(v > 0 for v in bench.decode(np.array(h))) >= 2 for h in held)
    assert all(int(bench.encode(np.array(tuples[i]))) not in held for i in split["train"] + split["seen"])
    assert all(int(bench.encode(np.array(tuples[i]))) in held for i in split["unseen"])
    assert sorted(split["train"] + split["seen"] + split["unseen"]) == list(range(300))
    seen_p = {patients[i] for i in split["seen"]}
    assert seen_p.isdisjoint(patients[i] for i in split["train"])
    # per pixel: a training mask keeps no held-out combination (and no partly annotated pixel)
    h = sorted(held)[0]
    masks = [rng.integers(0, 4, (32, 32)).astype(np.uint8) for _ in range(4)]
    for k, v in enumerate(bench.decode(np.array(h))):
        masks[k][:8] = v
    masks[1][-1, -1] = IGNORE
    out = np.stack(bench.mask_for_training(masks, held))
    full = (out != IGNORE).all(0)
    assert (out[:, ~full] == IGNORE).all()
    assert not np.isin(bench.encode(out[:, full]), sorted(held)).any()
    assert (out[:, :8] == IGNORE).all() and full.any()


def test_one_step_run_gives_the_table(tmp_path):
    torch.set_num_threads(1)
    data = generate(tmp_path / "d", n=12, size=64, seed=3, workers=1)
    out = bench.run(data, size=64, epochs=1, batch_size=4, encoder="mobilenet_v2", frac=0.2, seed=0,
                    max_steps=1)
    assert set(out["results"]) == {"unseen", "seen"}
    keys = {"n_images", "pixel_mae", "per_sign_mae", "pixel_accuracy", "exact_combo", "image_mae",
            "unseen_pixels", "unseen_mae", "unseen_exact", "exact_seen_lesion",
            "unseen_sign_accuracy"}
    for rows in out["results"].values():
        assert set(rows) == {"regression", "argmax", "marginal", "zeros"}
        for r in rows.values():
            assert set(r) == keys and len(r["per_sign_mae"]) == 4
            assert 0 <= r["pixel_accuracy"] <= 1 and r["pixel_mae"] >= 0
    assert out["fits"]["regression"]["steps"] == out["fits"]["classifier"]["steps"] == 1
    md = bench.table(out)
    assert "| 4-output regression | unseen combos |" in md and "256-class, argmax" in md
    doc = tmp_path / "doc.md"
    bench.write_doc(doc, md, "settings")
    bench.write_doc(doc, md, "settings again")
    text = doc.read_text()
    assert text.count(bench.BEGIN) == 1 and "settings again" in text


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
