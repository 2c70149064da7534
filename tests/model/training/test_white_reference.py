"""`dermsev train` stores the training photos' white reference; the trained model balances by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.data.colour import GreyWorld
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
