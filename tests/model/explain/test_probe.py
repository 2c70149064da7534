"""Probe importance (model/explain/probe.py): what each channel carries on its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from model.errors import DermsevError
from model.explain.probe import ProbeNet, probe_study


@pytest.fixture(scope="module")
def six_channels(tmp_path_factory) -> Path:
    from model.synth.generator import generate

    return generate(tmp_path_factory.mktemp("six") / "ds", n=80, size=64, seed=3, channels=6, workers=1)


def test_probe_net_keeps_the_input_size() -> None:
    import torch

    net = ProbeNet(signs=3)
    assert net(torch.zeros(2, 1, 64, 48)).shape == (2, 3, 64, 48)


@pytest.mark.slow
def test_probe_recovers_every_channel_that_carries_a_sign(six_channels: Path) -> None:
    """The generator's truth: RGB carry every sign, cross_polarised erythema, uv the texture
    signs, noise_1 nothing. Learned and ablation importance rank the redundant RGB channels
    at the noise level (a model uses the cleanest copy); the probe must not. ~30 s on one core."""
    truth = yaml.safe_load((six_channels / "dataset.yaml").read_text())["channel_signs"]
    r = probe_study(six_channels, size=64, steps=120, threads=1)
    imp = r["importance"]
    assert list(imp) == list(truth)
    assert min(imp.values()) >= 0 and sum(imp.values()) == pytest.approx(1.0)
    informative = [c for c, signs in truth.items() if signs]
    assert set(truth) - set(informative) == {"noise_1"}
    assert all(imp[c] > 2 * imp["noise_1"] for c in informative), imp
    assert r["explained"]["noise_1"] < 0.1 and all(r["explained"][c] > 0.1 for c in informative), r["explained"]
    assert r["metric"] == "pixel_mse" and r["alone"]["noise_1"] == pytest.approx(r["base"], rel=0.1)
    assert set(r["by_sign"]) == {"erythema", "papulation", "excoriation", "lichenification"}
    for sign, per_channel in r["by_sign"].items():
        assert sum(per_channel.values()) == pytest.approx(1.0)
        assert max(per_channel, key=per_channel.get) != "noise_1", (sign, per_channel)


def test_probe_needs_masks_and_both_splits(tmp_path: Path) -> None:
    from model.synth.generator import generate

    image_only = generate(tmp_path / "img", n=12, size=64, seed=1, image_level_only=True, workers=1)
    with pytest.raises(DermsevError, match="needs pixel masks"):
        probe_study(image_only, size=64, steps=2)
    tiny = generate(tmp_path / "tiny", n=1, size=64, seed=1, workers=1)
    with pytest.raises(DermsevError, match="training and validation images"):
        probe_study(tiny, size=64, steps=2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
        ({"size": 16}, "size must be a whole number >= 32, got 16"),
        ({"batch_size": True}, "batch_size must be a whole number >= 1, got True"),
        ({"steps": 2.5}, "steps must be a whole number >= 1, got 2.5"),
    ],
)
def test_probe_bad_arguments(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        probe_study(tmp_path, **kwargs)
