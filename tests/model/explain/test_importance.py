"""Channel importance: learned (mixing layer), ablation, gradient, and the explain dict."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
import yaml
from torch import nn

from model.errors import DermsevError
from model.explain.importance import (
    ablation_importance,
    ablation_study,
    channel_importance,
    gradient_importance,
    learned_importance,
    normalise,
    rank,
)
from model.inference.predictor import load_model
from model.nets.modeldir import save_model_dir
from model.nets.unet import DermSevNet, NetConfig

torch.set_num_threads(1)
CHANNELS = ("red", "green", "uv", "noise")
SIGNS = ("erythema", "scaling")
SIZE = 64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_model_dir(path: Path, channels=CHANNELS, signs=SIGNS, mixing: bool = False) -> Path:
    cfg = NetConfig(signs=tuple(signs), channels=tuple(channels), mixing=mixing, film="none")
    net = DermSevNet(cfg).eval()
    config = {
        "name": "test", "signs": list(signs), "max_score": 3.0, "thresholds": [0.5, 1.5, 2.5],
        "labels": ["none", "mild", "moderate", "severe"], "channels": list(channels),
        "architecture": {"type": "Unet", "encoder": cfg.encoder, "film": "none", "mixing": mixing},
        "input": {"size": SIZE, "mean": [], "std": [], "range": "0..1"},
        "network": cfg.to_dict(), "training": {"settings": {"seed": 0}},
    }
    return save_model_dir(net, config, path)


class OracleNet(nn.Module):
    """erythema = 3 * uv, scaling = 3 * red: only channels 2 and 0 matter."""

    mixing = None

    def forward(self, x: torch.Tensor, age=None, sex=None) -> torch.Tensor:
        return 3 * torch.stack([x[:, 2], x[:, 0]], dim=1).clamp(0, 1)


def oracle_predictor(tmp_path: Path):
    p = load_model(make_model_dir(tmp_path / "model"), backend="torch-fp32")
    p.net = OracleNet()
    return p


def make_dataset(root: Path, n: int = 6, masks: bool = True, split: str = "") -> Path:
    """4-channel TIFFs; erythema mask = round(3 * uv), scaling mask = round(3 * red)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for i in range(n):
        small = rng.random((8, 8, len(CHANNELS))).astype(np.float32)
        img = np.clip(cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC), 0, 1)
        img8 = np.round(img * 255).astype(np.uint8)
        tifffile.imwrite(root / f"images/{i}.tif", img8, photometric="minisblack", planarconfig="contig")
        row = {"id": f"i{i}", "image": f"images/{i}.tif", "patient_id": f"p{i}", "split": split}
        for sign, ch in (("erythema", 2), ("scaling", 0)):
            mask = np.round(3 * img8[..., ch].astype(np.float32) / 255).astype(np.uint8)
            if masks:
                cv2.imwrite(str(root / f"masks/{i}_{sign}.png"), mask)
                row[f"mask_{sign}"] = f"masks/{i}_{sign}.png"
            else:
                affected = mask[mask >= 1]
                row[f"score_{sign}"] = float(affected.mean()) if affected.size else 0.0
        rows.append(row)
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"signs": list(SIGNS), "max_score": 3, "channels": list(CHANNELS)}))
    return root


def assert_distribution(d: dict, channels=CHANNELS) -> None:
    assert list(d) == list(channels)
    assert all(v >= 0 for v in d.values())
    assert sum(d.values()) == pytest.approx(1.0, abs=1e-9)


# -- normalise ------------------------------------------------------------------------------------
def test_normalise_clips_and_sums_to_one() -> None:
    assert normalise({"a": 3.0, "b": -1.0, "c": 1.0}) == {"a": 0.75, "b": 0.0, "c": 0.25}
    assert normalise([0.0, -2.0], ["x", "y"]) == {"x": 0.5, "y": 0.5}  # no evidence: uniform
    assert normalise([math.nan, 2.0], ["x", "y"]) == {"x": 0.0, "y": 1.0}


@pytest.mark.parametrize(
    "args, message",
    [
        (([], []), "no channels"),
        (({},), "no channels"),
        (([1.0, 2.0], ["a"]), "2 values for 1 names"),
        (([1.0],), "names are needed when values is a sequence"),
    ],
)
def test_normalise_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise(*args)


def test_rank() -> None:
    assert rank({"a": 0.1, "b": 0.7, "c": 0.2}) == ["b", "c", "a"]


# -- ablation -------------------------------------------------------------------------------------
def test_ablation_finds_the_channels_the_model_uses(tmp_path: Path) -> None:
    p = oracle_predictor(tmp_path)
    ds = make_dataset(tmp_path / "ds", split="val")
    study = ablation_study(p, ds, split="val")
    assert study["metric"] == "pixel_mae" and study["n_images"] == 6
    assert study["base"] < 0.3  # the oracle is off by the masks' rounding only (MAE ~0.25)
    imp = study["importance"]
    assert_distribution(imp)
    assert imp["green"] == 0 and imp["noise"] == 0
    assert imp["uv"] > 0.3 and imp["red"] > 0.3
    assert rank(study["by_sign"]["erythema"])[0] == "uv"
    assert rank(study["by_sign"]["scaling"])[0] == "red"
    assert study["by_sign"]["erythema"]["uv"] == pytest.approx(1.0)
    assert ablation_importance(p, ds, split="val") == imp


def test_ablation_with_image_level_scores_only(tmp_path: Path) -> None:
    p = oracle_predictor(tmp_path)
    ds = make_dataset(tmp_path / "ds", masks=False, split="test")
    study = ablation_study(p, ds, split="test", max_images=4)
    assert study["metric"] == "image_mae" and study["n_images"] == 4
    assert_distribution(study["importance"])
    assert study["importance"]["green"] == 0 and study["importance"]["noise"] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "validation"}, "split must be one of ['train', 'val', 'test', 'all'], got 'validation'"),
        ({"max_images": 0}, "max_images must be a whole number >= 1, got 0"),
        ({"max_images": 2.5}, "max_images must be a whole number >= 1, got 2.5"),
        ({"max_images": True}, "max_images must be a whole number >= 1, got True"),
    ],
)
def test_ablation_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    p = oracle_predictor(tmp_path)
    ds = make_dataset(tmp_path / "ds", n=2, split="val")
    with pytest.raises(ValueError, match=re.escape(message)):
        ablation_importance(p, ds, **kwargs)


def test_ablation_empty_split_and_mismatched_dataset(tmp_path: Path) -> None:
    p = oracle_predictor(tmp_path)
    ds = make_dataset(tmp_path / "ds", n=2, split="train")
    with pytest.raises(DermsevError, match="no images in split 'val'"):
        ablation_importance(p, ds)
    other = load_model(make_model_dir(tmp_path / "m3", channels=("r", "g", "b")), backend="torch-fp32")
    with pytest.raises(DermsevError, match="channels"):
        ablation_importance(other, ds, split="train")


# -- learned, gradient, the explain dict ----------------------------------------------------------------
def test_learned_importance_from_the_mixing_layer(tmp_path: Path) -> None:
    p = load_model(make_model_dir(tmp_path / "m", mixing=True), backend="torch-fp32")
    imp = learned_importance(p)
    assert imp is not None
    assert_distribution(imp)
    expected = p.net.mixing.importance().detach().numpy()
    assert list(imp.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    out = channel_importance(p)
    assert out["method"] == "learned" and out["channel_importance"] == imp and out["ablation"] is None


def test_no_mixing_no_data_is_uniform(tmp_path: Path) -> None:
    p = load_model(make_model_dir(tmp_path / "m"), backend="torch-fp32")
    assert learned_importance(p) is None
    out = channel_importance(p)
    assert out["method"] == "uniform" and out["learned"] is None and out["ablation"] is None
    assert out["channel_importance"] == {c: 0.25 for c in CHANNELS}


def test_no_mixing_with_dataset_is_ablation_and_with_images_gradient(tmp_path: Path) -> None:
    p = oracle_predictor(tmp_path)
    ds = make_dataset(tmp_path / "ds", n=3, split="val")
    out = channel_importance(p, dataset_dir=ds)
    assert out["method"] == "ablation" and out["channel_importance"] == out["ablation"]
    assert set(out["ablation_by_sign"]) == set(SIGNS)
    images = sorted((ds / "images").glob("*.tif"))
    out = channel_importance(p, images=images)
    assert out["method"] == "gradient"
    g = out["channel_importance"]
    assert_distribution(g)
    assert g["green"] == 0 and g["noise"] == 0 and g["uv"] > 0.2 and g["red"] > 0.2


def test_gradient_importance_on_a_real_network(tmp_path: Path) -> None:
    p = load_model(make_model_dir(tmp_path / "m"), backend="torch-fp32")
    img = (np.random.default_rng(0).random((SIZE, SIZE, len(CHANNELS))) * 255).astype(np.uint8)
    assert_distribution(gradient_importance(p, [img]))
    with pytest.raises(ValueError, match="gradient importance needs at least one image"):
        gradient_importance(p, [])


def test_needs_a_predictor() -> None:
    with pytest.raises(ValueError, match="Predictor"):
        learned_importance(object())


# -- end to end on `dermsev synth --channels 6` ----------------------------------------------------
@pytest.mark.slow
def test_end_to_end_recovery_on_synthetic_six_channels(tmp_path: Path) -> None:
    """synth (channel_signs = the truth) -> train with mixing -> config and explain importance.

    ~30 s on one idle core. The model learns erythema from cross_polarised and the texture
    signs from uv (docs/channels.md), so both measures put an informative channel first and
    the noise channel outside the top two.
    """
    import json

    from model.synth.generator import generate
    from model.training.train import TrainConfig, train

    ds = generate(tmp_path / "ds", n=96, size=64, seed=5, channels=6, workers=1)
    truth = yaml.safe_load((ds / "dataset.yaml").read_text())["channel_signs"]
    channels = list(truth)
    assert channels[-1] == "noise_1" and not truth["noise_1"]
    cfg = TrainConfig(mixing="on", epochs=20, image_size=64, batch_size=8, max_minutes=1.5, seed=0,
                      precision="fp32")
    train(ds, tmp_path / "model", cfg, progress=False)
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert_distribution(config["channel_importance"], channels)  # written by train, for the model card

    p = load_model(tmp_path / "model", backend="torch-fp32")
    out = channel_importance(p, dataset_dir=ds)
    assert out["method"] == "learned"
    assert out["learned"] == pytest.approx(config["channel_importance"], abs=1e-6)
    assert_distribution(out["ablation"], channels)
    assert out["ablation_detail"]["base"] < 0.33  # it learned something (all-zero answer: ~0.35)
    for method in ("learned", "ablation"):
        top2 = rank(out[method])[:2]
        assert truth[top2[0]] and "noise_1" not in top2, f"{method}: {out[method]}"
    assert out["ablation"]["noise_1"] < 0.05
