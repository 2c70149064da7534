"""Consistency training: turned views line up with their crops, the term pulls the view's maps
toward the crop's, and `dermsev train` uses it only when asked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model.data import augment, colour
from model.errors import DermsevError
from model.training.consistency import consistency_mae, turn_grid, turns, warp
from model.training.fit import compute_loss
from model.training.train import TrainConfig, train
from tests.conftest import tiny_config
from tests.model.training.test_train import TINY


def test_a_quarter_turn_moves_pixels_without_blending_them() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    grid = turn_grid(torch.tensor([math.pi / 2, math.pi]), 8, 8)
    out = warp(x, grid)
    turned = [torch.rot90(x[0], k, dims=(1, 2)) for k in (1, -1)]
    assert any(torch.allclose(out[0], t, atol=1e-3) for t in turned)
    torch.testing.assert_close(out[1], torch.rot90(x[1], 2, dims=(1, 2)), atol=1e-3, rtol=0)


def test_turns_are_quarter_turns_plus_a_small_angle() -> None:
    a = turns(4000, torch.Generator().manual_seed(0))
    quarter = torch.round(a / (math.pi / 2))
    assert set(quarter.long().tolist()) == {0, 1, 2, 3}
    assert (a - quarter * math.pi / 2).abs().max() <= math.radians(10) + 1e-6


def test_consistency_is_zero_for_maps_that_turn_with_the_photo_and_counts_only_shared_pixels() -> None:
    gen = torch.Generator().manual_seed(1)
    maps = torch.rand(3, 4, 16, 16, generator=gen) * 3
    valid = torch.ones(3, 1, 16, 16, dtype=torch.bool)
    grid = turn_grid(torch.tensor([math.pi / 2, 0.0, -math.pi / 2]), 16, 16)
    assert float(consistency_mae(warp(maps, grid), maps, valid, grid)) < 1e-4
    assert float(consistency_mae(maps.flip(-1), maps, valid, grid)) > 0.5
    # pixels outside the crop's photo (padding) do not count, whatever the view says there
    valid[:, :, :, 8:] = False
    wrong = warp(maps, grid)
    inside = warp(valid.float(), grid) > 0.999
    wrong[~inside.expand_as(wrong)] += 2.0
    assert float(consistency_mae(wrong, maps, valid, grid)) < 1e-4


def test_relit_view_is_balanced_back_near_the_photo_yet_keeps_what_clipped() -> None:
    rng = np.random.default_rng(0)
    lin = np.float32([0.30, 0.12, 0.08]) * rng.uniform(0.6, 1.0, (32, 32, 1)).astype(np.float32)
    photo = colour.to_srgb(lin)
    ref = colour.chromaticity(colour.photo_statistic(photo))
    target = float(colour.LUMA @ colour.photo_statistic(photo))
    aug = augment.Renormalised({"reference": ref, "luminance": target, "rgb": (0, 1, 2)}, kelvin=(4000, 4000))
    warm = aug.get_params()["gains"]
    assert warm[0] > warm[1] > warm[2]  # a warmer light
    relit = colour.apply_gains(photo, warm, (0, 1, 2))
    assert np.abs(relit - photo).mean() > 0.05
    back = aug.apply(photo, gains=warm)
    assert np.abs(back - photo).mean() < 0.2 * np.abs(relit - photo).mean()


def test_consistency_view_changes_only_intensity_and_needs_no_mask() -> None:
    rng = np.random.default_rng(2)
    img = rng.uniform(0.2, 0.8, (32, 32, 3)).astype(np.float32)
    view = augment.consistency_view(None, seed=0)
    outs = [view(image=img)["image"] for _ in range(20)]
    assert all(o.shape == img.shape and o.dtype == np.float32 for o in outs)
    assert sum(not np.allclose(o, img) for o in outs) >= 10  # most views differ from the crop


def _batch(b: int = 2, size: int = 32) -> dict:
    gen = torch.Generator().manual_seed(3)
    return {
        "image": torch.rand(b, 3, size, size, generator=gen),
        "masks": torch.randint(0, 4, (b, 4, size, size), generator=gen).to(torch.uint8),
        "valid": torch.ones(b, 1, size, size, dtype=torch.bool),
        "scores": torch.full((b, 4), math.nan),
        "has_mask": torch.ones(b, 4, dtype=torch.bool),
        "age": torch.full((b,), 30.0),
        "sex": torch.ones(b, dtype=torch.long),
    }


def test_the_term_is_added_only_with_a_weight_and_a_view() -> None:
    from model.nets.unet import DermSevNet

    torch.manual_seed(0)
    net = DermSevNet(tiny_config()).train()
    batch = _batch()
    plain, parts = compute_loss(net, batch, "auto", 1.0, 0.0)
    assert parts["consistency"] == 0.0
    batch["view"] = batch["image"].flip(-1)
    _, off = compute_loss(net, batch, "auto", 1.0, 0.0, consistency=0.0)
    assert off["consistency"] == 0.0
    _, on = compute_loss(net, batch, "auto", 1.0, 0.0, consistency=1.0, gen=torch.Generator().manual_seed(0))
    assert on["consistency"] > 0


def test_training_on_the_term_alone_makes_the_maps_agree_across_views() -> None:
    """The effect, on a tiny network: steps on the consistency term alone shrink the gap
    between a crop's maps and its defocused, turned view's."""
    from model.nets.unet import DermSevNet

    torch.manual_seed(0)
    net = DermSevNet(tiny_config()).train()
    batch = _batch(4, 32)
    batch["view"] = torch.nn.functional.avg_pool2d(batch["image"], 3, 1, 1)  # a defocused copy
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def gap() -> float:
        _, parts = compute_loss(net, batch, "image", 0.0, 0.0, consistency=1.0,
                                gen=torch.Generator().manual_seed(5))
        return parts["consistency"]

    before = gap()
    assert before > 0.05  # a random network scores the two views differently
    for k in range(30):
        loss, _ = compute_loss(net, batch, "image", 0.0, 0.0, consistency=1.0, gen=torch.Generator().manual_seed(k))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gap() < 0.5 * before


def test_consistency_setting_is_checked() -> None:
    with pytest.raises(DermsevError, match="consistency must be a non-negative number"):
        TrainConfig(consistency=-1)
    with pytest.raises(DermsevError, match="consistency must be a non-negative number"):
        TrainConfig(consistency=True)


@pytest.mark.slow
def test_train_makes_views_only_when_asked(synth_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model.training import fit

    seen = []
    real = fit.consistency_mae
    monkeypatch.setattr(fit, "consistency_mae", lambda *a: seen.append(1) or real(*a))
    train(synth_dataset, tmp_path / "a", TrainConfig(epochs=1, seed=0, **TINY), progress=False)
    assert seen == []
    res = train(synth_dataset, tmp_path / "b", TrainConfig(epochs=1, seed=0, consistency=1.0, **TINY), progress=False)
    assert len(seen) >= 2  # every training step of the epoch
    assert (tmp_path / "b" / "config.json").is_file() and res is not None
