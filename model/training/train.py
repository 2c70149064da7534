"""`dermsev train`: fit the severity network on a dataset and write a MODEL_DIR.

Reads top to bottom: settings -> data (split by patient, cached) -> optional patient-grouped
k-fold cross-validation -> the final model, trained with early stopping and written
atomically whenever validation improves.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from model.data.augment import AUGMENT_MODES
from model.data.colour import chromaticity, reference_for_channels, rgb_indices
from model.data.dataset import Dataset, load_dataset
from model.data.padding import MULTIPLE, is_multiple
from model.data.splits import assign_splits, group_kfold
from model.data.trainset import CachedExamples
from model.errors import DermsevError
from model.hardware import auto_precision
from model.nets.mil import METHODS as MIL_METHODS
from model.nets.mixing import normalise
from model.nets.modeldir import library_versions, load_network, save_model_dir
from model.nets.unet import DermSevNet, NetConfig
from model.training import distributed
from model.training.distributed import Dist
from model.training.fit import LR_SCHEDULES, SELECT_BY, FitResult, fit

SUPERVISION = ("auto", "pixel", "image")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int | None = None  # None: DEFAULT_EPOCHS, or with max_minutes as many as the clock allows
    max_minutes: float | None = None
    image_size: int = 256
    crop_size: int | None = None  # train on random crops (pixel supervision only)
    # resnet18 and batch 16: on unseen colour combinations mobilenet_v2 stayed 0.05 below a bare
    # resnet18 U-Net in pixel accuracy at the same wall clock (bench/bench_baseline.py)
    encoder: str = "resnet18"
    encoder_depth: int = 5  # 4 drops the deepest stage: a third of resnet18's weights, same receptive field order
    batch_size: int = 16
    folds: int = 0
    seed: int = 0
    supervision: str = "auto"
    mil_pool: str = "mean"
    # geometric (flips, rotation, zoom; never intensities): the signs live in colour, and on
    # tasks whose labels are absolute colour RGB jitter ("full") teaches the model to ignore
    # them (bench/bench_baseline.py). "full" stays available for camera-varied real data, and
    # "photo" adds what phones do (quarter turns, lower resolution, defocus, exposure, JPEG).
    augment: str = "geometric"
    lr: float = 2e-3
    # After the warm-up: wsd (constant, then a straight line to 0 over the last fifth of the run),
    # constant, or cosine to 0. The cosine (the default until 2026-12-04) spends half the run at
    # under half the rate: on unseen colour combinations at 50 epochs 0.799 pixel accuracy against
    # wsd's 0.846 (docs/recipe_ablation.md).
    lr_schedule: str = "wsd"
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    patience: int = 8
    # What the best epoch (and early stopping) is judged by on the validation split: the mean
    # pixel MAE, or the weakest sign's image-label QWK ("worst_qwk": the labels a clinician reads).
    select_by: str = "pixel_mae"
    # Early stopping only once this share of the run (epochs, or the clock) is done.
    min_progress: float = 0.5
    # FiLM at every encoder level: on the deepest features alone, age and sex changed nothing
    # on a task that needs them (bench/bench_baseline.py, age-sex task).
    film: str = "all"
    # Chance, per training sample, that age (and, independently, sex) is hidden from the tabular
    # branch during training. Off: on a task that needs both, 0.2 and 0.05 doubled the pixel
    # MAE (0.055 and 0.060 against 0.027; docs/recipe_ablation.md). A blank field is learned
    # after training instead (calibrate_unknown: only the two "unknown" embeddings are fitted,
    # so predictions with a known age and sex are untouched; model/training/unknown.py).
    tabular_dropout: float = 0.0
    calibrate_unknown: bool = True
    mixing: str = "auto"  # auto: on when the data has more than 3 channels
    mixing_sparsity: float = 0.01
    # Chance that a training sample's channel is replaced by its image mean (never all of a
    # sample's channels): trains a model that copes with a missing channel. Off by default:
    # on 6-channel synthetic data it raised val MAE and did not make the learned importance
    # rank redundant channels above noise (docs/channels.md, bench/bench_channels.py).
    channel_dropout: float = 0.0
    # MODEL_DIR whose weights start the final model (fine-tuning, a second cosine cycle);
    # its network (signs, channels, encoder, decoder, normalisation) must match this run's.
    init_from: str | None = None
    precision: str = "auto"
    image_loss_weight: float = 1.0
    # Pooled-score MAE on masked images/crops, beside the pixel MAE. Off by default: it cost
    # 0.08 pixel accuracy on unseen colour combinations (bench/bench_baseline.py); the demo
    # model's config turns it on for the sparse papulation texture.
    region_loss_weight: float = 0.0
    # Per-sign weight of every loss term, {sign: w} (unlisted signs 1): more of the network's
    # capacity for a sign that is harder to see. Early stopping still uses the plain mean MAE.
    sign_loss_weights: dict[str, float] | None = None
    # A skin output channel (skin vs background, clothing, hair) trained on the manifest's
    # skin_mask column: auto = when the dataset has skin masks. The affected area is then a
    # fraction of the skin the network sees (and the colour check agrees with).
    skin_head: str = "auto"
    # The skin channel's cross-entropy beside the signs' MAE. 0.5 (the default until 2026-12-05)
    # cost the signs 0.05 pixel MAE on bench_baseline's skin task at 45 epochs (0.307 / 0.314
    # on two seeds against 0.262 / 0.258 without the channel); 0.1 gave 0.267 / 0.258
    # (docs/recipe_ablation.md). The demo model's stages keep the 0.5 they were trained with.
    skin_loss_weight: float = 0.1
    half_weights: bool = False
    # The best model so far and the resume checkpoint are written at most this often (and
    # after the first epoch); the final model is always written at the end.
    save_every_minutes: float = 1.0
    val_frac: float = 0.15
    test_frac: float = 0.15
    # White balance of the training photos, as `predict` does by default ("grey-world": each
    # photo moved onto the training set's reference colour, input.white_reference) or not
    # ("none"). A model trained on unbalanced photos meets balanced ones at prediction: on the
    # demo's synthetic test set grey-world cost papulation QWK 0.854 -> 0.829. Off by default:
    # where the labels are absolute colour (bench_baseline's colour task) it moves them.
    white_balance: str = "none"
    # With white_balance: also bring each photo's exposure to the training photos' median
    # (model/data/colour.py exposure_gain), here and at prediction (config input.normalise_exposure).
    # The demo model trained so moves by a p95 of at most 0.07 per sign under exposure -1 stop
    # (the stage before, trained without it: 0.41; docs/robustness.md).
    normalise_exposure: bool = False
    # With normalise_exposure: the chance that a training sample is overexposed by 0.25-1.5
    # stops (clipped: a bright photo's red channel saturates first) and normalised again, as
    # predict would see that photo (model/data/augment.py Renormalised). 0 = off.
    overexposure: float = 0.0
    # Weight of the consistency term (model/training/consistency.py): each crop also seen as
    # another phone might have taken it (relit, re-exposed, defocused, compressed, turned), its
    # maps pulled toward the crop's. 0 = off; on, a step scores twice the images.
    consistency: float = 0.0
    # The chance, per axis, that a training crop lies against the photo's edge
    # (model/data/augment.py EdgeCrop): a plain random crop hardly ever puts the photo's own
    # edge at the network's border, where every photo has it at prediction. 0 = off. On the
    # demo data 0.5 did not thin the false positives at the frame's edge (docs/rotation.md).
    edge_crops: float = 0.0
    # Several processes (torchrun): BatchNorm statistics pooled over the GPUs' batches
    # (SyncBatchNorm, CUDA only); off, each process normalises its own share of the batch.
    sync_batchnorm: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.supervision in SUPERVISION, f"--supervision must be one of {list(SUPERVISION)}"),
            (self.mil_pool in MIL_METHODS, f"--mil-pool must be one of {list(MIL_METHODS)}"),
            (self.augment in AUGMENT_MODES, f"--augment must be one of {list(AUGMENT_MODES)}"),
            (self.lr_schedule in LR_SCHEDULES, f"--lr-schedule must be one of {list(LR_SCHEDULES)}"),
            (self.select_by in SELECT_BY, f"select_by must be one of {list(SELECT_BY)}"),
            (self.white_balance in ("none", "grey-world"), "white_balance must be none or grey-world"),
            (not self.normalise_exposure or self.white_balance != "none",
             "--normalise-exposure needs --white-balance grey-world"),
            (isinstance(self.overexposure, (int, float)) and 0 <= self.overexposure <= 1
             and (not self.overexposure or self.normalise_exposure),
             "overexposure must be a chance 0..1, and needs normalise_exposure"),
            (isinstance(self.consistency, (int, float)) and not isinstance(self.consistency, bool)
             and 0 <= self.consistency < math.inf, "consistency must be a non-negative number"),
            (isinstance(self.edge_crops, (int, float)) and not isinstance(self.edge_crops, bool)
             and 0 <= self.edge_crops <= 1, "edge_crops must be a chance 0..1"),
            (self.precision in PRECISIONS, f"precision must be one of {list(PRECISIONS)}"),
            (self.mixing in ("auto", "on", "off"), "mixing must be auto, on or off"),
            (self.skin_head in ("auto", "on", "off"), "skin_head must be auto, on or off"),
            (isinstance(self.save_every_minutes, (int, float)) and self.save_every_minutes >= 0,
             "save_every_minutes must be a number >= 0"),
            (isinstance(self.skin_loss_weight, (int, float)) and 0 <= self.skin_loss_weight < math.inf,
             "skin_loss_weight must be a non-negative number"),
            (self.epochs is None or self.epochs >= 1, "--epochs must be at least 1"),
            (0 <= self.min_progress <= 1, "min_progress must be between 0 and 1"),
            (3 <= self.encoder_depth <= 5, "encoder_depth must be 3, 4 or 5"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (is_multiple(self.image_size), f"--image-size must be a multiple of {MULTIPLE}, at least {MULTIPLE}"),
            (self.folds == 0 or self.folds >= 2, "--folds must be 0 (off) or at least 2"),
            (self.crop_size is None or (is_multiple(self.crop_size) and self.crop_size <= self.image_size),
             f"--crop-size must be a multiple of {MULTIPLE} between {MULTIPLE} and --image-size"),
            (self.crop_size is None or self.supervision != "image",
             "--crop-size needs pixel masks: image-level scores describe the whole image, not a crop"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be positive"),
            (0 <= self.channel_dropout < 1, "channel_dropout must be in [0, 1)"),
            (0 <= self.tabular_dropout < 1, "tabular_dropout must be in [0, 1)"),
            (self.sign_loss_weights is None or (
                isinstance(self.sign_loss_weights, dict)
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf
                        for v in self.sign_loss_weights.values())
                and sum(self.sign_loss_weights.values()) > 0),
             "sign_loss_weights must map sign names to non-negative numbers, not all 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DermsevError(msg)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        """Settings from a YAML/JSON file; explicit overrides (CLI flags) win."""
        import yaml

        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise DermsevError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise DermsevError(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
        names = {f.name for f in fields(cls)}
        raw = {k.replace("-", "_"): v for k, v in raw.items()}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise DermsevError(f"{path}: unknown setting(s) {unknown}; allowed: {sorted(names)}")
        return cls(**{**raw, **overrides})


def pick_precision(requested: str) -> str:
    """bf16 autocast where the CPU has native bf16 (3-4x faster here), fp32 otherwise."""
    if requested == "fp16" and not torch.cuda.is_available():
        raise DermsevError("precision fp16 needs a CUDA GPU (with a grad scaler); on CPU use bf16 or fp32")
    return auto_precision() if requested == "auto" else requested


def wants_skin(ds: Dataset, cfg: TrainConfig) -> bool:
    """Whether this run trains a skin channel (refused when asked for without skin masks)."""
    has = any(r.skin_mask is not None for r in ds.records)
    if cfg.skin_head == "on" and not has:
        raise DermsevError(f"{ds.root}: skin_head on needs a skin_mask column in manifest.csv, and it has none")
    return cfg.skin_head == "on" or (cfg.skin_head == "auto" and has)


def net_config(ds: Dataset, cfg: TrainConfig, mean: list[float], std: list[float]) -> NetConfig:
    mixing = cfg.mixing == "on" or (cfg.mixing == "auto" and len(ds.spec.channels) > 3)
    return NetConfig(
        signs=ds.spec.signs,
        channels=ds.spec.channels,
        max_score=ds.spec.max_score,
        encoder=cfg.encoder,
        encoder_depth=cfg.encoder_depth,
        decoder_channels=(128, 64, 32, 16, 16)[5 - cfg.encoder_depth:],  # encoder_depth is 3..5
        film=cfg.film,
        mixing=mixing,
        mil_pool=cfg.mil_pool,
        mean=tuple(mean),
        std=tuple(std),
        skin_head=wants_skin(ds, cfg),
    )


def _fold_summary(folds: list[dict]) -> dict:
    keys = [k for k in folds[0] if isinstance(folds[0][k], (int, float))]
    out = {}
    for k in keys:
        vals = [f[k] for f in folds if f.get(k) is not None]
        if vals:
            out[k] = {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0}
    return out


def train(dataset_dir: str | Path, out: str | Path, cfg: TrainConfig, resume: bool = False, progress: bool = True,
          dist: Dist | None = None) -> dict:
    """Train, write MODEL_DIR to `out`, return the training summary (also in config.json).

    dist: this process's rank in a torchrun job (model.training.distributed); every rank
    trains, rank 0 alone writes `out`.
    """
    start = time.monotonic()
    deadline = start + cfg.max_minutes * 60 if cfg.max_minutes else None
    ds = load_dataset(dataset_dir)
    unknown = sorted(set(cfg.sign_loss_weights or {}) - set(ds.spec.signs))
    if unknown:
        raise DermsevError(f"sign_loss_weights: {unknown} not among the dataset's signs {list(ds.spec.signs)}")
    # A bad init_from fails now, not after caching the data and any cross-validation.
    start_net = load_network(cfg.init_from)[0] if cfg.init_from else None
    assign_splits(ds.records, seed=cfg.seed, val_frac=cfg.val_frac, test_frac=cfg.test_frac)
    if dist is not None:  # rank 0's split on every rank; the global batch shared evenly
        distributed.same_splits(ds.records, dist)
        distributed.check_batch(cfg.batch_size, dist)
    recs = ds.records
    idx = {s: [i for i, r in enumerate(recs) if r.split == s] for s in ("train", "val", "test")}
    if not idx["train"]:
        raise DermsevError(f"{dataset_dir}: no training images after the split")
    if cfg.supervision == "pixel" and not any(p for r in recs for p in r.masks.values()):
        raise DermsevError(f"{dataset_dir}: --supervision pixel needs masks, and the manifest has none")
    if cfg.crop_size and any(p is None for r in recs for p in r.masks.values()):
        raise DermsevError("--crop-size needs a mask for every sign of every image (image-level scores describe the whole image)")
    precision = pick_precision(cfg.precision)
    torch.manual_seed(cfg.seed)
    cache = CachedExamples(recs, ds.spec, cfg.image_size, with_skin=wants_skin(ds, cfg))
    # the reference is taken on the photos as they are; balancing then moves each onto it
    white_reference = reference_for_channels(cache.images, ds.spec.channels)
    if cfg.white_balance != "none":
        if not white_reference:
            raise DermsevError(f"white_balance {cfg.white_balance}: needs red, green and blue channels, "
                               f"the dataset has {ds.spec.channels}")
        ref = chromaticity(np.array(white_reference["rgb"], np.float64))
        lum = white_reference["luminance"] if cfg.normalise_exposure else None
        cache.balance(cfg.white_balance, ref, rgb_indices(ds.spec.channels), luminance=lum)
    mean, std = cache.channel_stats()
    if start_net is not None:  # fine-tuning keeps the start network's input normalisation
        mean, std = list(start_net.cfg.mean), list(start_net.cfg.std)
    ncfg = net_config(ds, cfg, mean, std)
    if start_net is not None:
        theirs = start_net.cfg.to_dict()
        # a skin channel may be added to a network that had none (its other weights kept)
        diff = sorted(k for k, v in ncfg.to_dict().items()
                      if theirs.get(k) != v and not (k == "skin_head" and v and not theirs.get(k)))
        if diff:
            raise DermsevError(f"init_from {cfg.init_from}: its network differs from this run's in {diff}")

    fold_results: list[dict] = []
    if cfg.folds:
        pool = idx["train"] + idx["val"]
        sub = [recs[i] for i in pool]
        for k, (tr, held) in enumerate(group_kfold(sub, cfg.folds, seed=cfg.seed)):
            tr_idx = [pool[i] for i in tr]
            inner_val = _carve_val(recs, tr_idx, cfg.seed + k)
            held_in = set(inner_val)
            inner_tr = [i for i in tr_idx if i not in held_in]
            res = fit(
                DermSevNet(ncfg), cache, inner_tr, inner_val, cfg, precision,
                deadline=_share(deadline, cfg.folds + 1 - k), desc=f"fold {k + 1}/{cfg.folds}",
                progress=progress, heldout=[pool[i] for i in held], dist=dist,
            )
            fold_results.append({"fold": k + 1, "n_heldout": len(held), **res.heldout_metrics})

    summary_base = {
        "dataset": str(Path(dataset_dir).resolve()),
        "n_images": {k: len(v) for k, v in idx.items()},
        "n_patients": len({r.patient_id for r in recs}),
        "settings": asdict(cfg),
        "precision": precision,
    }
    if fold_results:
        summary_base["cross_validation"] = {"folds": fold_results, "summary": _fold_summary(fold_results)}

    def summarise(res: FitResult) -> dict:
        return {**summary_base, "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
                "val_metrics": res.val_metrics, "history": res.history,
                "minutes": round((time.monotonic() - start) / 60, 2),
                "train_images_per_s": res.images_per_s}

    def write(net: DermSevNet, res: FitResult) -> None:
        config = model_config(ds, cfg, ncfg, summarise(res))
        if white_reference:  # grey-world white balance moves photos towards this colour
            config["input"]["white_reference"] = white_reference
            if cfg.normalise_exposure:  # predict normalises the exposure as training did
                config["input"]["normalise_exposure"] = True
        if net.mixing is not None:  # learned channel importance, for the card and `explain`
            imp = net.channel_importance().detach().tolist()
            config["channel_importance"] = normalise(imp, ds.spec.channels)
        from model.training.card import model_card

        save_model_dir(net, config, out, card=model_card(config), half=cfg.half_weights)

    res = fit(
        _initial_network(ncfg, start_net), cache, idx["train"], idx["val"] or idx["train"], cfg, precision,
        deadline=deadline, desc="train", progress=progress, on_best=write,
        checkpoint=Path(str(out) + ".partial"), resume=resume, dist=dist,
    )
    if dist is not None and not dist.is_main:
        return summarise(res)
    write(res.net, res)
    return json.loads((Path(out) / "config.json").read_text())["training"]


def _initial_network(ncfg: NetConfig, start: DermSevNet | None) -> DermSevNet:
    """A fresh network, or one starting from `start`'s weights (the same network, checked by
    the caller; a skin channel `start` lacks keeps its fresh initial weights)."""
    net = DermSevNet(ncfg)
    if start is None:
        return net
    state = start.state_dict()
    if ncfg.skin_head and not start.cfg.skin_head:
        own = net.state_dict()
        for key, value in state.items():
            if own[key].shape != value.shape:  # the head's last conv: the sign rows come from `start`
                grown = own[key].clone()
                grown[: value.shape[0]] = value
                state[key] = grown
    net.load_state_dict(state)
    return net


def model_config(ds: Dataset, cfg: TrainConfig, ncfg: NetConfig, summary: dict) -> dict:
    return {
        "name": Path(ds.root).name + "-" + cfg.encoder,
        "signs": list(ds.spec.signs),
        "max_score": ds.spec.max_score,
        "thresholds": list(ds.spec.thresholds),
        "labels": list(ds.spec.labels),
        "channels": list(ds.spec.channels),
        "architecture": {"type": "Unet", "encoder": cfg.encoder, "film": cfg.film, "mixing": ncfg.mixing},
        "input": {"size": cfg.image_size, "mean": list(ncfg.mean), "std": list(ncfg.std), "range": "0..1"},
        "tabular": {"inputs": ["age", "sex"] if cfg.film != "none" else [], "sex_codes": {"unknown": 0, "F": 1, "M": 2}},
        "synthetic": bool(ds.extra.get("synthetic", False)),
        "network": ncfg.to_dict(),
        "training": summary,
        "versions": library_versions(),
    }


def _carve_val(recs, indices: list[int], seed: int, frac: float = 0.15) -> list[int]:
    """A patient-grouped validation subset of `indices` (for early stopping inside a fold)."""
    pids = sorted({recs[i].patient_id for i in indices})
    rng = np.random.default_rng(seed)
    rng.shuffle(pids)
    n = max(1, int(math.ceil(frac * len(pids))))
    chosen = set(pids[:n])
    return [i for i in indices if recs[i].patient_id in chosen]


def _share(deadline: float | None, parts_left: int) -> float | None:
    """Split the remaining time budget evenly over the runs still to come."""
    if deadline is None:
        return None
    return time.monotonic() + max(0.0, deadline - time.monotonic()) / max(parts_left, 1)


__all__ = ["TrainConfig", "train"]
