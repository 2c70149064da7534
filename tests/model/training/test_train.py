"""Training on tiny synthetic data: the loss falls, a loadable MODEL_DIR appears, folds, time
budget, resume and seeds behave as promised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import model.training.fit as fit_module
from model.data.dataset import load_dataset
from model.data.trainset import CachedExamples, SeverityDataset, eval_batches
from model.errors import DermsevError
from model.nets.modeldir import load_network
from model.training.train import TrainConfig, train

TINY = {"image_size": 64, "batch_size": 2, "precision": "fp32"}


def leftovers(out: Path) -> list[str]:
    """Files next to MODEL_DIR that a finished run should not leave (checkpoints, temp dirs)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name and out.name in p.name)


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory, synth_dataset: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("train") / "model"
    summary = train(synth_dataset, out, TrainConfig(epochs=2, seed=0, **TINY), progress=False)
    return out, summary


def test_two_epochs_lower_the_training_loss(two_epoch_run) -> None:
    _, summary = two_epoch_run
    losses = [h["train_loss"] for h in summary["history"]]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses[1] < losses[0]
    assert summary["epochs_run"] == 2
    assert summary["best_epoch"] in (1, 2)


def test_run_writes_a_loadable_model_dir(two_epoch_run, synth_dataset: Path) -> None:
    out, summary = two_epoch_run
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "MODEL_CARD.md"}
    assert leftovers(out) == []
    net, config = load_network(out)
    spec = load_dataset(synth_dataset).spec
    assert config["signs"] == list(spec.signs) and config["channels"] == list(spec.channels)
    assert config["input"]["size"] == 64
    assert config["training"] == summary
    assert config["synthetic"] is True
    assert sum(summary["n_images"].values()) == 16
    card = (out / "MODEL_CARD.md").read_text()
    assert "synthetic" in card.lower() and "not for clinical use" in card.lower()
    for sign in spec.signs:
        assert sign in card
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    # the synthetic data has skin masks, so the network learned a skin channel after the signs
    assert config["network"]["skin_head"] is True and out.shape == (1, 5, 64, 64)
    assert 0 <= float(out[:, 4].min()) and float(out[:, 4].max()) <= 1
    assert "val_skin_dice" in summary["history"][-1]


def test_config_json_records_validation_metrics(two_epoch_run) -> None:
    out, _ = two_epoch_run
    config = json.loads((out / "config.json").read_text())
    vm = config["training"]["val_metrics"]
    assert set(vm["per_sign"]) == set(config["signs"])
    assert 0 <= vm["mean"]["pixel_mae"] <= 3
    assert config["versions"]["torch"] == torch.__version__


@pytest.mark.slow
def test_folds_record_per_fold_metrics_and_mean_sd(tmp_path: Path, synth_dataset: Path) -> None:
    out = tmp_path / "cv"
    summary = train(synth_dataset, out, TrainConfig(epochs=1, folds=2, **TINY), progress=False)
    cv = json.loads((out / "config.json").read_text())["training"]["cross_validation"]
    assert cv == summary["cross_validation"]
    assert [f["fold"] for f in cv["folds"]] == [1, 2]
    n = summary["n_images"]
    assert sum(f["n_heldout"] for f in cv["folds"]) == n["train"] + n["val"]
    for f in cv["folds"]:
        assert 0 <= f["pixel_mae"] <= 3
    pm = cv["summary"]["pixel_mae"]
    vals = [f["pixel_mae"] for f in cv["folds"]]
    assert pm["mean"] == pytest.approx(np.mean(vals))
    assert pm["sd"] == pytest.approx(np.std(vals, ddof=1))
    assert "Cross-validation (2 folds" in (out / "MODEL_CARD.md").read_text()


def test_max_minutes_stops_early(tmp_path: Path, synth_dataset: Path) -> None:
    out = tmp_path / "quick"
    summary = train(synth_dataset, out, TrainConfig(epochs=40, max_minutes=1e-4, **TINY), progress=False)
    assert summary["epochs_run"] == 1
    load_network(out)  # still a complete model
    assert leftovers(out) == []


class Killed(Exception):
    """Stands in for the process being killed."""


def count_epochs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count validation passes (one per trained epoch) from now on."""
    calls: list[int] = []
    real = fit_module.evaluate_indices

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "evaluate_indices", spy)
    return calls


@pytest.mark.slow
def test_resume_continues_a_killed_run(tmp_path: Path, synth_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model"
    cfg = TrainConfig(epochs=3, **TINY)
    real_save = fit_module._save_checkpoint

    def save_then_die(path: Path, state: dict) -> None:
        real_save(path, state)
        if state["epoch"] == 1:
            raise Killed("after the epoch-1 checkpoint")

    with monkeypatch.context() as m:
        m.setattr(fit_module, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed, match="after the epoch-1 checkpoint"):
            train(synth_dataset, out, cfg, progress=False)
    ckpt = Path(str(out) + ".partial") / "checkpoint.pt"
    assert ckpt.is_file()
    first = torch.load(ckpt, weights_only=True)["history"]
    assert len(first) == 1
    load_network(out)  # the best model so far was written before the kill

    epochs = count_epochs(monkeypatch)
    summary = train(synth_dataset, out, cfg, resume=True, progress=False)
    assert len(epochs) == 2  # epochs 2 and 3 only
    assert summary["epochs_run"] == 3
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    assert summary["history"][0] == first[0]
    assert not ckpt.parent.exists()
    assert leftovers(out) == []


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path: Path, synth_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    epochs = count_epochs(monkeypatch)
    summary = train(synth_dataset, tmp_path / "m", TrainConfig(epochs=1, **TINY), resume=True, progress=False)
    assert len(epochs) == 1 and summary["epochs_run"] == 1


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path: Path, synth_dataset: Path) -> None:
    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        train(synth_dataset, tmp_path / name, TrainConfig(epochs=1, seed=seed, **TINY), progress=False)
        return load_file(str(tmp_path / name / "model.safetensors"))

    a, b, c = weights(5, "a"), weights(5, "b"), weights(6, "c")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_init_from_starts_from_a_model_dirs_weights(two_epoch_run, synth_dataset: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    start_dir, _ = two_epoch_run
    start, _ = load_network(start_dir)
    seen = {}
    real_fit = fit_module.fit

    def spy(net, *args, **kwargs):
        seen["state"] = {k: v.clone() for k, v in net.state_dict().items()}
        return real_fit(net, *args, **kwargs)

    monkeypatch.setattr("model.training.train.fit", spy)
    train(synth_dataset, tmp_path / "tuned", TrainConfig(epochs=1, seed=0, init_from=str(start_dir), **TINY),
          progress=False)
    assert all(torch.equal(seen["state"][k], v) for k, v in start.state_dict().items())
    train(synth_dataset, tmp_path / "fresh", TrainConfig(epochs=1, seed=0, **TINY), progress=False)
    assert not all(torch.equal(seen["state"][k], v) for k, v in start.state_dict().items())
    with pytest.raises(DermsevError, match="model directory not found"):
        train(synth_dataset, tmp_path / "none", TrainConfig(epochs=1, init_from=str(tmp_path / "missing"), **TINY),
              progress=False)
    with pytest.raises(DermsevError, match="init_from .*differs.*encoder_depth"):
        train(synth_dataset, tmp_path / "other", TrainConfig(epochs=1, seed=0, init_from=str(start_dir),
                                                             encoder_depth=4, **TINY), progress=False)


def test_image_level_only_data_trains(tmp_path: Path) -> None:
    from model.synth.generator import generate

    ds = generate(tmp_path / "ds", n=8, size=64, seed=2, image_level_only=True, workers=1)
    summary = train(ds, tmp_path / "m", TrainConfig(epochs=1, **TINY), progress=False)
    assert np.isfinite(summary["history"][0]["train_loss"])
    assert summary["val_metrics"]["mean"]["pixel_mae"] is None  # no masks anywhere
    with pytest.raises(DermsevError, match="needs masks"):
        train(ds, tmp_path / "m2", TrainConfig(epochs=1, supervision="pixel", **TINY), progress=False)


# --- the cached training set -------------------------------------------------------------


def test_cache_resizes_image_and_masks_in_register(dataset_writer) -> None:
    w = dataset_writer(signs=("redness",))
    w.add("a", masks=False)
    img = np.full((96, 160, 3), 60, np.uint8)
    img[20:60, 90:130] = 250
    mask = np.zeros((96, 160), np.uint8)
    mask[20:60, 90:130] = 3
    w.image("a.png", img)
    w.rows[0]["mask_redness"] = w.mask("a_redness.png", mask)
    ds = load_dataset(w.write())
    cache = CachedExamples(ds.records, ds.spec, 64)
    image, (m,) = cache.images[0], cache.masks[0]
    assert image.shape == (38, 64, 3) and m.shape == (38, 64)
    bright, marked = image[..., 0] > (60 + 250) / 2 / 255, m == 3
    assert (bright & marked).sum() / (bright | marked).sum() > 0.95


@pytest.mark.parametrize("channels", [1, 5])
def test_cache_downscales_any_channel_count(dataset_writer, channels: int) -> None:
    w = dataset_writer(channels=tuple(f"c{i}" for i in range(channels)))
    w.add("a", size=(96, 128))
    ds = load_dataset(w.write())
    cache = CachedExamples(ds.records, ds.spec, 64)
    assert cache.images[0].shape == (48, 64, channels)
    assert all(m.shape == (48, 64) for m in cache.masks[0])


def test_severity_dataset_items(synth_dataset: Path) -> None:
    from model.data.augment import train_transform

    ds = load_dataset(synth_dataset)
    ds.records[0].age, ds.records[0].sex = None, None
    ds.records[0].scores["erythema"] = None
    cache = CachedExamples(ds.records, ds.spec, 64)
    item = SeverityDataset(cache, [0, 1], train_transform(64, "full", seed=0))[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["masks"].shape == (4, 64, 64) and item["masks"].dtype == torch.uint8
    assert item["valid"].shape == (1, 64, 64) and item["valid"].dtype == torch.bool
    assert torch.isnan(item["scores"][0]) and torch.isfinite(item["scores"][1:]).all()
    assert item["has_mask"].all()
    assert torch.isnan(item["age"]) and item["sex"].item() == 0
    mean, std = cache.channel_stats()
    all_pixels = np.concatenate([im.reshape(-1, 3).astype(np.float64) for im in cache.images])
    np.testing.assert_allclose(mean, all_pixels.mean(0), rtol=1e-4)
    np.testing.assert_allclose(std, all_pixels.std(0), rtol=1e-3)
    batches = list(eval_batches(cache, list(range(5)), batch_size=2))
    assert [b["image"].shape[0] for b in batches] == [2, 2, 1]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"image_size": 50}, "--image-size"),
        ({"image_size": 0}, "--image-size"),
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"folds": 1}, "--folds"),
        ({"supervision": "weak"}, "--supervision"),
        ({"mil_pool": "median"}, "--mil-pool"),
        ({"augment": "heavy"}, "--augment"),
        ({"precision": "fp8"}, "precision"),
        ({"max_minutes": 0}, "--max-minutes"),
        ({"white_balance": "patch"}, "white_balance must be none or grey-world"),
    ],
)
def test_train_config_ill_args(kwargs: dict, expected: str) -> None:
    with pytest.raises(DermsevError, match=expected):
        TrainConfig(**kwargs)


def test_cache_balance_moves_every_photo_onto_the_reference(synth_dataset: Path) -> None:
    from model.data import colour

    ds = load_dataset(synth_dataset)
    cache = CachedExamples(ds.records, ds.spec, 64)
    ref = colour.chromaticity(np.array(colour.reference_for_channels(cache.images, ds.spec.channels)["rgb"]))

    def off() -> np.ndarray:  # each photo's colour statistic against the reference, per photo
        chroma = np.stack([colour.chromaticity(colour.photo_statistic(im.astype(np.float32))) for im in cache.images])
        return np.abs(chroma - ref).max(axis=1)

    before = off()
    cache.balance("grey-world", ref, (0, 1, 2))
    after = off()
    assert before.max() > 0.2  # the generator's photos differ in colour
    # onto it, but for photos whose brightest parts the gains push into clipping
    assert np.median(after) < np.median(before) / 10 and np.mean(after > 0.05) <= 0.25
    assert all(im.dtype == np.float16 and im.shape[-1] == 3 for im in cache.images)


def test_training_on_balanced_photos_keeps_the_reference_and_normalises_the_balanced_photos(
        synth_dataset: Path, tmp_path: Path) -> None:
    configs = {}
    for wb in ("none", "grey-world"):
        train(synth_dataset, tmp_path / wb, TrainConfig(**TINY, epochs=1, white_balance=wb), progress=False)
        configs[wb] = json.loads((tmp_path / wb / "config.json").read_text())
    plain, balanced = configs["none"], configs["grey-world"]
    # the reference that predict balances towards is taken on the photos as they are
    assert balanced["input"]["white_reference"] == plain["input"]["white_reference"]
    # ... and the network's input normalisation on the photos it trained on, balanced
    assert not np.allclose(balanced["input"]["mean"], plain["input"]["mean"], atol=1e-4)
    assert balanced["training"]["settings"]["white_balance"] == "grey-world"


def test_balancing_needs_colour_channels(dataset_writer, tmp_path: Path) -> None:
    w = dataset_writer(channels=("uv",))
    w.add("a", size=(64, 64))
    w.add("b", size=(64, 64))
    with pytest.raises(DermsevError, match="white_balance grey-world: needs red, green and blue"):
        train(w.write(), tmp_path / "m", TrainConfig(**TINY, epochs=1, white_balance="grey-world"), progress=False)


def test_train_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("epochs: 3\nimage-size: 96\nbatch_size: 4\n")
    cfg = TrainConfig.from_file(path, epochs=5)
    assert (cfg.epochs, cfg.image_size, cfg.batch_size) == (5, 96, 4)  # the flag wins over the file
    path.write_text("epochz: 3\n")
    with pytest.raises(DermsevError, match="epochz"):
        TrainConfig.from_file(path)
    with pytest.raises(DermsevError, match="not found"):
        TrainConfig.from_file(tmp_path / "none.yaml")


def test_train_errors_are_dermsev_errors(tmp_path: Path) -> None:
    with pytest.raises(DermsevError, match="not found"):
        train(tmp_path / "missing", tmp_path / "m", TrainConfig(**TINY), progress=False)
    assert not (tmp_path / "m").exists()


def test_sign_loss_weights_steer_the_gradient(synth_dataset: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign weighted 0 gets no gradient: its head row stays as initialised (no weight decay)."""
    seen = {}
    real_fit = fit_module.fit

    def spy(net, *args, **kwargs):
        seen["head"] = net.head[0].weight.detach().clone()
        return real_fit(net, *args, **kwargs)

    monkeypatch.setattr("model.training.train.fit", spy)
    weights = {"erythema": 1.0, "papulation": 0.0, "excoriation": 0.0, "lichenification": 0.0}
    train(synth_dataset, tmp_path / "w", TrainConfig(epochs=1, seed=0, weight_decay=0.0, sign_loss_weights=weights,
                                                     **TINY), progress=False)
    after = load_network(tmp_path / "w")[0].head[0].weight.detach()
    assert not torch.equal(after[0], seen["head"][0])
    assert torch.equal(after[1:4], seen["head"][1:4])  # the 0-weighted signs (row 4 is skin, trained)
    assert not torch.equal(after[4], seen["head"][4])
    with pytest.raises(DermsevError, match=r"sign_loss_weights: \['itch'\] not among"):
        train(synth_dataset, tmp_path / "x", TrainConfig(epochs=1, sign_loss_weights={"itch": 2.0}, **TINY),
              progress=False)
    for bad in ({"erythema": -1.0}, {"erythema": 0.0}, ["erythema"], {"erythema": "2"}):
        with pytest.raises(DermsevError, match="sign_loss_weights must map"):
            TrainConfig(sign_loss_weights=bad)
