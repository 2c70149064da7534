"""The skin channel: learned from the manifest's skin_mask column, added to a network without
one when fine-tuning, combined with the colour check into the skin the area is a fraction of,
and measured by `evaluate` (skin Dice)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from model.errors import DermsevError
from model.inference import load_model
from model.nets.modeldir import load_network
from model.nets.unet import DermSevNet
from model.scoring.evaluate import evaluate
from model.training.losses import skin_bce
from model.training.train import TrainConfig, _initial_network, train

TINY = dict(image_size=64, batch_size=4, encoder="resnet18", encoder_depth=3, patience=50)


def test_skin_bce_skips_unknown_pixels() -> None:
    logits = torch.tensor([[[[0.0, 2.0, -50.0]]]])
    target = torch.tensor([[[[1, 255, 0]]]], dtype=torch.uint8)
    # known pixels: logit 0 vs 1 (ln 2) and -50 vs 0 (about 0): mean ln(2) / 2
    assert float(skin_bce(logits, target)) == pytest.approx(np.log(2) / 2, abs=1e-6)
    assert float(skin_bce(logits, torch.full_like(target, 255))) == 0.0


@pytest.fixture(scope="module")
def skin_data(tmp_path_factory) -> Path:
    from model.synth.generator import generate

    return generate(tmp_path_factory.mktemp("skin") / "ds", n=40, size=64, seed=21, workers=1)


def _without_skin_column(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for item in src.iterdir():
        if item.name != "manifest.csv":
            (dest / item.name).symlink_to(item)
    with (src / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    cols = [c for c in rows[0] if c != "skin_mask"]
    with (dest / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return dest


def _truth(root: Path) -> list[tuple[dict, np.ndarray]]:
    from PIL import Image

    with (root / "manifest.csv").open() as fh:
        return [(r, np.asarray(Image.open(root / r["skin_mask"]))) for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_a_trained_skin_channel_tells_skin_from_background(skin_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    out = tmp_path / "m"
    summary = train(skin_data, out, TrainConfig(epochs=6, seed=0, lr=3e-3, **TINY), progress=False)
    assert load_network(out)[1]["network"]["skin_head"] is True and "val_skin_dice" in summary["history"][-1]
    p = load_model(out, backend="torch-fp32")
    on_skin, off_skin = [], []
    for row, truth in _truth(skin_data):
        if truth.all():
            continue
        prep = p.prepare(skin_data / row["image"])
        prob = p.split_skin(p.unpad(p.forward_all(prep.x[None])[0], prep.hw))[1]
        on_skin.append(prob[truth == 1].mean())
        off_skin.append(prob[truth == 0].mean())
    assert len(on_skin) >= 5
    # after a minute of training the channel already rates skin above clothing, tables and hair
    assert np.mean(off_skin) < np.mean(on_skin) - 0.05, (np.mean(off_skin), np.mean(on_skin))


def test_evaluate_reports_the_skin_dice_of_the_predicted_skin(skin_data: Path, tiny_model_dir: Path) -> None:
    p = load_model(tiny_model_dir, backend="torch-fp32")
    res, _ = evaluate(p, skin_data, split="all")
    inter = total = 0
    for row, truth in _truth(skin_data):
        pred = p.predict(skin_data / row["image"]).skin
        inter += 2 * (pred & (truth == 1)).sum()
        total += pred.sum() + (truth == 1).sum()
    assert res["skin"]["n_images"] == 40 and res["skin"]["dice"] == pytest.approx(inter / total)


def test_skin_head_off_or_without_masks(skin_data: Path, tmp_path: Path) -> None:
    plain = _without_skin_column(skin_data, tmp_path / "plain")
    train(plain, tmp_path / "a", TrainConfig(epochs=1, **TINY), progress=False)
    assert load_network(tmp_path / "a")[1]["network"]["skin_head"] is False
    with pytest.raises(DermsevError, match="skin_head on needs a skin_mask column"):
        train(plain, tmp_path / "b", TrainConfig(epochs=1, skin_head="on", **TINY), progress=False)
    with pytest.raises(DermsevError, match="skin_head must be auto, on or off"):
        TrainConfig(skin_head="yes")
    with pytest.raises(DermsevError, match="skin_loss_weight must be a non-negative number"):
        TrainConfig(skin_loss_weight=-1)
    with pytest.raises(DermsevError, match="save_every_minutes must be a number >= 0"):
        TrainConfig(save_every_minutes=-1)
    # fine-tuning a network without a skin channel adds one and keeps every other weight
    start = load_network(tmp_path / "a")[0]
    train(skin_data, tmp_path / "c", TrainConfig(epochs=1, init_from=str(tmp_path / "a"), **TINY), progress=False)
    grown_cfg = load_network(tmp_path / "c")[0].cfg
    assert grown_cfg.skin_head and grown_cfg.mean == start.cfg.mean
    grown = _initial_network(grown_cfg, start)
    for key, value in start.state_dict().items():
        mine = grown.state_dict()[key]
        assert torch.equal(mine[: value.shape[0]], value) if mine.shape != value.shape else torch.equal(mine, value)
    assert grown.head[0].weight.shape[0] == 5


def test_prediction_skin_is_where_colour_and_network_agree(tiny_model_dir: Path) -> None:
    p = load_model(tiny_model_dir, backend="torch-fp32")
    img = np.full((64, 64, 3), (200, 150, 130), np.uint8)
    img[:, 48:] = (40, 60, 160)  # blue cloth: the colour check leaves it out
    prep = p.prepare(img)
    work = np.zeros((len(p.signs), 64, 64), np.float32)
    work[:, :, :16] = 3.0  # "severe" where the network sees a skin-coloured table
    prob = np.ones((64, 64), np.float32)
    prob[:, :16] = 0.1
    r = p.summarise(prep.image, work, check=prep.check, skin_prob=prob)
    assert not r.skin[:, :16].any() and not r.skin[:, 50:].any() and r.skin[:, 20:44].all()
    assert r.skin_fraction == pytest.approx(0.5, abs=0.06)
    assert r.scores["erythema"] == 0 and r.affected_area["erythema"] == 0  # the table is not skin
    without = p.summarise(prep.image, work, check=prep.check)
    assert without.affected_area["erythema"] > 0.25


def test_network_output_has_the_skin_channel_last() -> None:
    from model.nets.unet import NetConfig

    net = DermSevNet(NetConfig(encoder="resnet18", encoder_depth=3, decoder_channels=(32, 16, 16), skin_head=True)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 64))
        raw = net(torch.rand(2, 3, 64, 64), raw=True)
    assert out.shape == raw.shape == (2, 5, 64, 64)
    assert 0 <= float(out[:, 4].min()) and float(out[:, 4].max()) <= 1
    assert float(out[:, :4].max()) <= 3
