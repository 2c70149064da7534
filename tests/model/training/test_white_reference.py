"""`dermsev train` stores the training photos' white reference; the trained model balances by default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.data.colour import GreyWorld, to_linear, to_srgb
from model.data.io import read_image
from model.errors import DermsevError
from model.inference import load_model
from model.training.train import TrainConfig, train
from tests.model.training.test_train import TINY


@pytest.mark.slow
def test_a_trained_model_carries_its_white_reference(synth_dataset: Path, tmp_path: Path) -> None:
    train(synth_dataset, tmp_path / "m", TrainConfig(epochs=1, seed=0, **TINY), progress=False)
    ref = json.loads((tmp_path / "m" / "config.json").read_text())["input"]["white_reference"]
    assert ref["statistic"] == GreyWorld().statistic and ref["n"] == 16
    r, g, b = ref["rgb"]
    assert r > g > b > 0  # skin is reddish
    assert load_model(tmp_path / "m", backend="torch-fp32").white_balance == "grey-world"
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "photos as taken in training; predict white-balances" in card and "exposure" not in card


@pytest.mark.slow
def test_a_model_trained_with_normalised_exposure_scores_a_darker_photo_the_same(synth_dataset: Path,
                                                                                tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, seed=0, white_balance="grey-world", normalise_exposure=True, **TINY)
    train(synth_dataset, tmp_path / "m", cfg, progress=False)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["input"]["normalise_exposure"] is True and 0 < config["input"]["white_reference"]["luminance"] < 1
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "white-balanced (grey-world) in training and by predict, exposure brought to" in card
    photo = read_image(synth_dataset / "images" / "img0003.png")
    darker = (to_srgb(to_linear(photo / 255.0) * 0.5) * 255 + 0.5).astype(np.uint8)  # one stop under
    assert np.abs(darker.astype(int) - photo).mean() > 20

    def change(predictor) -> float:
        return float(np.abs(predictor.predict(darker).maps - predictor.predict(photo).maps).mean())

    normalised = load_model(tmp_path / "m", backend="torch-fp32")
    assert normalised.exposure_target == config["input"]["white_reference"]["luminance"]
    config["input"].pop("normalise_exposure")  # the same network, its photos' exposure kept
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    kept = load_model(tmp_path / "m", backend="torch-fp32")
    assert kept.exposure_target is None
    assert change(normalised) < 0.2 * change(kept)


def test_normalised_exposure_needs_white_balance() -> None:
    with pytest.raises(DermsevError, match="--normalise-exposure needs --white-balance grey-world"):
        TrainConfig(normalise_exposure=True)


@pytest.mark.slow
def test_overexposure_augments_only_when_asked(synth_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model.data import augment

    calls = []
    real = augment.Renormalised.apply
    monkeypatch.setattr(augment.Renormalised, "apply", lambda self, img, **kw: calls.append(kw) or real(self, img, **kw))
    base = {"epochs": 1, "seed": 0, "white_balance": "grey-world", "normalise_exposure": True, **TINY}
    train(synth_dataset, tmp_path / "a", TrainConfig(**base), progress=False)
    assert calls == []
    train(synth_dataset, tmp_path / "b", TrainConfig(**base, overexposure=1.0), progress=False)
    # 0.25-1.5 stops on every sample, grey (no colour temperature unless asked)
    assert len(calls) >= 8 and all(1.18 < c["gains"][0] == c["gains"][1] == c["gains"][2] < 2.83 for c in calls)
