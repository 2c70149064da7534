"""The training loop's helpers: channel dropout and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch


def test_channel_dropout_replaces_channels_by_their_mean_and_keeps_one() -> None:
    from model.training.fit import drop_channels

    x = torch.rand(64, 5, 8, 8)
    one = x[:, :1]
    assert drop_channels(x, 0.0) is x and drop_channels(one, 0.9) is one  # nothing to drop
    out = drop_channels(x, 0.9, torch.Generator().manual_seed(0))
    means = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    dropped = torch.isclose(out, means).all(dim=(2, 3)) & ~torch.isclose(x, means).all(dim=(2, 3))
    kept = torch.equal(out[~dropped], x[~dropped])
    assert kept and dropped.any()
    assert (~dropped).sum(dim=1).min() >= 1  # never every channel of a sample
    assert 0.7 < dropped.float().mean() < 0.85  # ~p, less the kept-one rule
    again = drop_channels(x, 0.9, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_channel_dropout_setting_is_checked() -> None:
    from model.errors import DermsevError
    from model.training.train import TrainConfig

    with pytest.raises(DermsevError, match="channel_dropout"):
        TrainConfig(channel_dropout=1.0)


def test_schedule_warms_up_then_anneals_by_steps_or_clock() -> None:
    from model.training.fit import schedule_factor

    assert schedule_factor(0, 100, 10) == pytest.approx(0.1)  # warm-up
    assert schedule_factor(9, 100, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.09)))
    assert schedule_factor(50, 100, 10) == pytest.approx(0.5)
    assert schedule_factor(100, 100, 10) == pytest.approx(0.0, abs=1e-12)
    # the time budget, when it runs out first, drives the cosine; steps still count when ahead
    assert schedule_factor(20, 100, 10, clock=0.5) == pytest.approx(0.5)
    assert schedule_factor(20, 100, 10, clock=1.3) == pytest.approx(0.0, abs=1e-12)
    assert schedule_factor(80, 100, 10, clock=0.1) == pytest.approx(schedule_factor(80, 100, 10))


def test_select_by_worst_qwk_prefers_the_epoch_whose_weakest_sign_reads_best() -> None:
    from model.training.fit import _criterion

    def metrics(pixel_mae: float, qwks: list[float | None]) -> dict:
        return {"mean": {"pixel_mae": pixel_mae, "image_mae": 0.2},
                "per_sign": {f"s{k}": {"qwk": q} for k, q in enumerate(qwks)}}  # fmt: skip

    sharper = metrics(0.12, [0.95, 0.83, 0.93])  # better pixels, one weak sign
    balanced = metrics(0.13, [0.91, 0.87, 0.90])
    assert _criterion(sharper) < _criterion(balanced)  # the default: pixel MAE
    assert _criterion(balanced, "worst_qwk") < _criterion(sharper, "worst_qwk")
    assert _criterion(balanced, "worst_qwk") == pytest.approx(-0.87)
    # no image labels (QWK undefined): falls back to the pixel MAE
    assert _criterion(metrics(0.2, [None, None, None]), "worst_qwk") == pytest.approx(0.2)


def test_select_by_setting_is_checked() -> None:
    from model.errors import DermsevError
    from model.training.train import TrainConfig

    with pytest.raises(DermsevError, match="select_by must be one of"):
        TrainConfig(select_by="val_loss")
