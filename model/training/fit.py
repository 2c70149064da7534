"""The training loop: AdamW, warm-up + wsd/cosine/constant, bf16 autocast + channels_last, early stopping.

Loss = masked pixel MAE (where masks exist) + image MAE on MIL-pooled maps (where only
image-level scores exist, or everywhere with --supervision image).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from model import hardware
from model.data import augment
from model.data.io import IGNORE
from model.data.scores import easi_scores, mask_scores
from model.data.trainset import CachedExamples, SeverityDataset, eval_batches
from model.nets.unet import DermSevNet
from model.scoring.metrics import SignAccumulator, SkinDice, mean_over_signs
from model.training import distributed
from model.training.consistency import consistency_mae, turn_grid, turns, warp
from model.training.distributed import Dist
from model.training.losses import image_mae, masked_mae, skin_bce
from model.training.unknown import calibrate_unknown

DEFAULT_EPOCHS = 30  # when neither --epochs nor --max-minutes is given


@dataclass
class FitResult:
    net: DermSevNet
    epochs_run: int = 0
    best_epoch: int = 0
    val_metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    images_per_s: float | None = None
    heldout_metrics: dict = field(default_factory=dict)


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":  # CUDA only (train.pick_precision refuses it elsewhere); with a GradScaler
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


LR_SCHEDULES = ("cosine", "constant", "wsd")
# wsd (warm-up, stable, decay): the share of the run at the end over which the rate falls to 0
WSD_DECAY = 0.2


def shape_factor(done: float, kind: str) -> float:
    """The learning-rate factor after warm-up, at `done` (0..1, the share of the run done).
    cosine: a cosine from 1 to 0 over the whole run; constant: 1 throughout; wsd: 1 until the
    last WSD_DECAY of the run, then a straight line to 0."""
    done = min(1.0, max(done, 0.0))
    if kind == "constant":
        return 1.0
    if kind == "wsd":
        return min(1.0, (1.0 - done) / WSD_DECAY)
    return 0.5 * (1 + math.cos(math.pi * done))


def schedule_factor(step: int, steps: int, warm: int, clock: float | None = None, kind: str = "cosine") -> float:
    """Learning-rate factor: linear warm-up over `warm` steps, then the schedule's shape
    (shape_factor) over whichever runs out first, the steps or the time budget (`clock`: share
    of --max-minutes used, or None), so a run cut by the clock still ends where its schedule
    ends instead of mid-schedule."""
    done = step / steps if clock is None else max(step / steps, clock)
    return min(1.0, (step + 1) / warm) * shape_factor(done, kind)


def clock_factor(clock: float, warm_frac: float, kind: str = "cosine") -> float:
    """Learning-rate factor of a run that trains until the clock ends (--max-minutes, no
    --epochs): linear warm-up over the first `warm_frac` of the time, then the schedule's
    shape ending at the deadline. clock: share of the time budget used (0..1, more once over)."""
    warm = min(1.0, clock / warm_frac) if warm_frac > 0 else 1.0
    return warm * shape_factor(clock, kind)


def drop_channels(x: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Replace each channel of each sample, with probability p, by its own spatial mean
    (what the ablation importance does at test time); every sample keeps at least one channel.

    x: (B, C, H, W). Returns a new tensor; x is unchanged. p = 0 or C = 1 returns x.
    """
    b, c = x.shape[:2]
    if p <= 0 or c < 2:
        return x
    drop = torch.rand(b, c, generator=gen) < p
    full = drop.all(dim=1)
    if full.any():  # keep one channel, chosen at random, in samples that would lose them all
        keep = torch.randint(0, c, (b,), generator=gen)
        drop[full, keep[full]] = False
    drop = drop.to(x.device)[:, :, None, None]
    return torch.where(drop, x.mean(dim=(2, 3), keepdim=True), x)


def compute_loss(net: DermSevNet, batch: dict, supervision: str, image_weight: float, sparsity: float,
                 region_weight: float = 0.0, sign_weights: torch.Tensor | None = None,
                 skin_weight: float = 0.0, consistency: float = 0.0,
                 gen: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """consistency: the weight of the consistency term (model/training/consistency.py) on a
    batch with a "view"; the views are turned with angles drawn from `gen` and scored in the
    same forward as the crops."""
    x, age, sex = batch["image"], batch["age"], batch["sex"]
    grid = None
    if consistency > 0 and "view" in batch:
        b, _, h, w = x.shape
        grid = turn_grid(turns(b, gen), h, w, x.device)
        view = warp(batch["view"], grid).to(x.dtype)
        x = torch.cat([x, view]).contiguous(memory_format=torch.channels_last)
        age, sex = torch.cat([age, age]), torch.cat([sex, sex])
    out = net(x, age, sex, raw=True)
    view_out = None
    if grid is not None:
        out, view_out = out[: len(out) // 2], out[len(out) // 2 :]
    raw = out[:, : net.cfg.n_signs]
    maps = raw.clamp(0.0, net.cfg.max_score)
    zero = out.sum() * 0
    pix, img, skin, cons = zero, zero, zero, zero
    if view_out is not None:
        cons = consistency_mae(view_out[:, : net.cfg.n_signs].clamp(0.0, net.cfg.max_score), maps,
                               batch["valid"], grid)
    if net.cfg.skin_head and "skin" in batch:
        # skin vs background/clothing/hair: binary cross-entropy on the pixels whose skin is known
        skin = skin_bce(out[:, net.cfg.n_signs :], batch["skin"])
    if supervision in ("auto", "pixel"):
        pix, _ = masked_mae(raw, batch["masks"], sign_weights, max_score=net.cfg.max_score)
        if region_weight > 0:
            # The pooled score of the (cropped) masks: a direct signal for the image score,
            # which the per-pixel median regression alone learns slowly on sparse textures.
            target, use = mask_scores(batch["masks"])
            region, _ = image_mae(net.pool(maps, batch["masks"] != IGNORE), target, use, sign_weights)
            pix = pix + region_weight * region
    if supervision in ("auto", "image"):
        use = torch.ones_like(batch["has_mask"]) if supervision == "image" else ~batch["has_mask"]
        if use.any():
            pooled = net.pool(maps, batch["valid"])
            img, _ = image_mae(pooled, batch["scores"], use, sign_weights)
    loss = pix + image_weight * img + skin_weight * skin + consistency * cons
    if net.mixing is not None and sparsity > 0:
        loss = loss + sparsity * net.mixing.entropy()
    return loss, {"pixel": float(pix.detach()), "image": float(img.detach()), "skin": float(skin.detach()),
                  "consistency": float(cons.detach())}


@torch.no_grad()
def evaluate_indices(net: DermSevNet, cache: CachedExamples, indices: list[int], precision: str, batch_size: int = 8,
                     dist: Dist | None = None) -> dict:
    """Metrics at the working size (fast; `dermsev evaluate` measures at full resolution).
    dist: each rank scores its share of `indices`; the metrics are those of all of them."""
    net.eval()
    if dist is not None:
        indices = distributed.shard(indices, dist)
    spec = cache.spec
    acc = {s: SignAccumulator(spec.thresholds) for s in spec.signs}
    device = next(net.parameters()).device
    skin = SkinDice()
    for batch in eval_batches(cache, indices, batch_size):
        with autocast(precision, device):
            out = net(batch["image"].to(device).contiguous(memory_format=torch.channels_last),
                      batch["age"].to(device), batch["sex"].to(device))
        out = out.float().cpu().numpy()
        maps = out[:, : len(spec.signs)]
        valid = batch["valid"].numpy()[:, 0]
        if net.cfg.skin_head and "skin" in batch:
            skin.add(out[:, len(spec.signs):] >= 0.5, batch["skin"].numpy())
        for b in range(maps.shape[0]):
            scores = easi_scores(maps[b], valid[b], spec.thresholds[0])
            for k, sign in enumerate(spec.signs):
                has = bool(batch["has_mask"][b, k])
                truth = float(batch["scores"][b, k])
                acc[sign].add(maps[b, k][valid[b]], batch["masks"][b, k].numpy()[valid[b]] if has else None,
                              scores[k], None if math.isnan(truth) else truth)
    distributed.merge_metrics(acc, skin, dist)
    per_sign = {s: a.result() for s, a in acc.items()}
    out = {"per_sign": per_sign, "mean": mean_over_signs(per_sign)}
    if skin.result() is not None:
        out["skin_dice"] = skin.result()
    return out


SELECT_BY = ("pixel_mae", "worst_qwk")


def _criterion(metrics: dict, select_by: str = "pixel_mae") -> float:
    """Lower is better. pixel_mae: the mean pixel MAE (image MAE without masks); worst_qwk: minus
    the lowest image-label QWK over the signs (the label a clinician reads, for the weakest sign)."""
    if select_by == "worst_qwk":
        qwks = [v["qwk"] for v in metrics["per_sign"].values() if v.get("qwk") is not None]
        if qwks:
            return -float(min(qwks))
    m = metrics["mean"]
    v = m["pixel_mae"] if m["pixel_mae"] is not None else m["image_mae"]
    return float("inf") if v is None else float(v)


def fit(
    net: DermSevNet, cache: CachedExamples, train_idx: list[int], val_idx: list[int], cfg, precision: str,
    deadline: float | None = None, desc: str = "train", progress: bool = True,
    on_best: Callable[[DermSevNet, FitResult], None] | None = None,
    checkpoint: Path | None = None, resume: bool = False, heldout: list[int] | None = None,
    dist: Dist | None = None,
) -> FitResult:
    """dist: this process's rank in a torchrun job (model.training.distributed); None trains in
    this process alone, as always. Only rank 0 reports progress and writes the checkpoint."""
    main = dist is None or dist.is_main
    progress = progress and main
    device = dist.device if dist is not None else hardware.device()
    net.to(device).to(memory_format=torch.channels_last)
    if net.tabular is not None:  # a training setting, not part of the saved network
        net.tabular.drop_prob = cfg.tabular_dropout
    gen = torch.Generator().manual_seed(cfg.seed)
    renorm = (cache.normalised, cfg.overexposure) if cache.normalised else None
    view = augment.consistency_view(cache.normalised, seed=cfg.seed + 2) if cfg.consistency > 0 else None
    ds = SeverityDataset(cache, train_idx, augment.train_transform(cache.size, cfg.augment, seed=cfg.seed, crop=cfg.crop_size,
                                                                   renormalise=renorm, edge_crops=cfg.edge_crops),
                         view=view)
    if dist is not None:
        loader = distributed.train_loader(ds, cfg.batch_size, cfg.seed, dist)
    else:
        loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                            drop_last=len(ds) > cfg.batch_size, num_workers=0, pin_memory=device.type == "cuda")
    # --max-minutes without --epochs: as many epochs as the clock allows, scheduled by the clock
    epochs = cfg.epochs if cfg.epochs is not None else (None if deadline is not None else DEFAULT_EPOCHS)
    steps = max(1, (epochs or 1) * len(loader))
    warm = max(1, int(cfg.warmup_frac * steps))
    # fused: one kernel over all the weights instead of a loop of small ones per tensor: on two
    # CPU cores 20 ms a step instead of 96 ms for a resnet18 U-Net, the same update
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    started = time.monotonic()

    def clock() -> float | None:
        if deadline is None or deadline <= started:
            return None
        return (time.monotonic() - started) / (deadline - started)

    def over() -> bool:
        return deadline is not None and time.monotonic() > deadline

    if deadline is not None:  # every rank keeps rank 0's time: the same learning rate, the same last step
        clock, over = distributed.from_rank0(clock, dist), distributed.from_rank0(over, dist)

    def lr_factor(s: int) -> float:
        if epochs is None:
            return clock_factor(clock() or 0.0, cfg.warmup_frac, cfg.lr_schedule)
        return schedule_factor(s, steps, warm, clock(), cfg.lr_schedule)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    res = FitResult(net=net)
    best, best_state, bad, first_epoch = math.inf, None, 0, 0
    last_save = -math.inf
    ckpt = checkpoint / "checkpoint.pt" if checkpoint else None
    state = None
    if resume and ckpt is not None and main and ckpt.is_file():
        state = torch.load(ckpt, map_location=device if dist is None else "cpu", weights_only=True)
    if resume and dist is not None:  # rank 0 reads the checkpoint (a single-process one too), all ranks resume
        state = distributed.share(state, dist)
    if state is not None:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        best, bad, first_epoch, res.history = state["best"], state["bad"], state["epoch"], state["history"]
        best_state = state["best_state"]
        res.best_epoch = state["best_epoch"]
        gen.manual_seed(cfg.seed + first_epoch)
        if main:
            tqdm.write(f"{desc}: resuming after epoch {first_epoch}")
    drop_gen = torch.Generator().manual_seed(cfg.seed + 1)
    sign_weights = None
    if cfg.sign_loss_weights:
        sign_weights = torch.tensor([float(cfg.sign_loss_weights.get(s, 1.0)) for s in cache.spec.signs])
    seen, busy = 0, 0.0
    # DDP across ranks; one process: the same loss, computed directly
    turn_gen = torch.Generator().manual_seed(cfg.seed + 3)
    step = distributed.wrap(net, lambda n, b: compute_loss(
        n, b, cfg.supervision, cfg.image_loss_weight, cfg.mixing_sparsity, cfg.region_loss_weight, sign_weights,
        cfg.skin_loss_weight, cfg.consistency, turn_gen), dist, cfg.sync_batchnorm)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # fp16 needs loss scaling, bf16 not
    # A progress bar per step only on a terminal; in a log file, one line per epoch.
    step_bar = progress and sys.stderr.isatty()
    for epoch in (itertools.count(first_epoch) if epochs is None else range(first_epoch, epochs)):
        step.train()
        if dist is not None:
            distributed.set_epoch(loader, epoch)
        losses = []
        bar = tqdm(loader, desc=f"{desc} epoch {epoch + 1}/{epochs or '-'}", disable=not step_bar, leave=False)
        for batch in bar:
            t0 = time.perf_counter()
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if cfg.channel_dropout > 0:
                batch["image"] = drop_channels(batch["image"], cfg.channel_dropout, drop_gen)
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            with autocast(precision, device):
                loss, parts = step(batch)
            opt.zero_grad(set_to_none=True)
            _backward_step(loss, net, opt, scaler)
            sched.step()
            busy += time.perf_counter() - t0
            seen += batch["image"].shape[0]
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            if over():
                break
        distributed.sync_buffers(net, dist)
        metrics = evaluate_indices(net, cache, val_idx, precision, dist=dist)
        crit = _criterion(metrics, cfg.select_by)
        train_loss, res.images_per_s = distributed.epoch_stats(float(np.sum(losses)), len(losses), seen, busy, dist)
        res.history.append({"epoch": epoch + 1, "train_loss": train_loss,
                            "val": metrics["mean"],
                            **({"val_skin_dice": metrics["skin_dice"]} if "skin_dice" in metrics else {})})
        res.epochs_run = epoch + 1
        improved = crit < best - 1e-4
        if progress:
            m = metrics["mean"]
            tqdm.write(f"{desc} epoch {epoch + 1}: loss {res.history[-1]['train_loss']:.4f} "
                       f"val pixel_mae {_fmt(m['pixel_mae'])} image_mae {_fmt(m['image_mae'])} "
                       f"qwk {_fmt(m['qwk'])}"
                       + (f" skin_dice {_fmt(metrics['skin_dice'])}" if "skin_dice" in metrics else "")
                       + (" *" if improved else ""))
        # Writing the best model and the checkpoint costs about a second for a resnet18 (the
        # checkpoint is 200 MB): at most every save_every_minutes (and after the first epoch),
        # so small runs train instead of writing; a killed run loses at most that much.
        due = epoch == first_epoch or time.monotonic() - last_save >= cfg.save_every_minutes * 60
        if improved:
            best, bad, res.best_epoch, res.val_metrics = crit, 0, epoch + 1, metrics
            best_state = copy.deepcopy(net.state_dict())
            if on_best is not None and due and main:
                on_best(net, res)
        else:
            bad += 1
        # Early stopping waits until min_progress of the run (epochs or clock) is done: the
        # tabular branch and the low-learning-rate end of the schedule come late. A run given
        # time and no epoch count (--max-minutes alone) trains until the time is up: the
        # schedule ends at the deadline, and the best validation epoch is kept either way.
        done = max((epoch + 1) / epochs if epochs else 0.0, clock() or 0.0)
        out_of_time = over()
        stop = (epochs is not None and bad >= cfg.patience and done >= cfg.min_progress) or out_of_time
        if ckpt is not None and due and main:
            last_save = time.monotonic()
            _save_checkpoint(ckpt, {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                    "best": best, "bad": bad, "epoch": epoch + 1, "history": res.history,
                                    "best_state": best_state, "best_epoch": res.best_epoch})
        if stop:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    if cfg.calibrate_unknown and net.tabular is not None:
        _calibrate_unknown(net, loader, cfg, sign_weights, precision, device, dist, progress)
    net.eval()
    if heldout:
        res.heldout_metrics = evaluate_indices(net, cache, heldout, precision, dist=dist)["mean"]
    if checkpoint is not None and main:
        shutil.rmtree(checkpoint, ignore_errors=True)
    return res


def _calibrate_unknown(net: DermSevNet, loader: DataLoader, cfg, sign_weights: torch.Tensor | None, precision: str,
                       device: torch.device, dist: Dist | None, progress: bool) -> None:
    """Fit the tabular branch's "unknown" embeddings on the training set (model.training.unknown):
    one pass, 20 to 200 steps. Every rank fits on its shard; rank 0's result is kept by all."""
    steps = min(200, max(20, len(loader)))
    losses = calibrate_unknown(
        net, loader, lambda n, b: compute_loss(n, b, cfg.supervision, cfg.image_loss_weight, cfg.mixing_sparsity,
                                               cfg.region_loss_weight, sign_weights, cfg.skin_loss_weight),
        steps, lambda: autocast(precision, device), seed=cfg.seed)
    tab = net.tabular
    fitted = distributed.share({"age": tab.age_unknown.detach().cpu(), "sex": tab.sex_embed.weight.detach()[0].cpu()}, dist)
    with torch.no_grad():
        tab.age_unknown.copy_(fitted["age"])
        tab.sex_embed.weight[0] = fitted["sex"]
    if progress and losses:
        k = max(1, len(losses) // 5)
        tqdm.write(f"unknown age/sex fitted over {steps} steps: loss with them hidden "
                   f"{np.mean(losses[:k]):.4f} -> {np.mean(losses[-k:]):.4f}")


def _backward_step(loss: torch.Tensor, net: DermSevNet, opt: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None) -> None:
    """Backward (DDP averages the gradients across ranks here), clip at norm 5, step; with an
    fp16 GradScaler, the clip sees the unscaled gradients and a step with inf/NaN is skipped."""
    if scaler is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    scaler.step(opt)
    scaler.update()


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
