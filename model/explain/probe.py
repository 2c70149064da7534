"""Probe importance: what each input channel can tell on its own, whatever a model uses.

The learned and ablation importances (model/explain/importance.py) measure what one trained model
relies on. A model that gets a sign cleanly from one channel has no reason to use a noisier
copy of it, so a channel can carry a sign and still score about 0 there (docs/channels.md).
The probe answers the other question, "which channels carry which sign?":

- For each channel c, a small fully convolutional network (the probe) is trained on that
  channel alone to regress the per-pixel severities on the dataset's training split; then
  its pixel mean squared error on the validation split is measured, per sign. The channel is
  centred on its image mean and scaled by its dataset std: the probe reads local contrast (a
  lesion against the skin around it), not the photo's overall tone or exposure.
- The baseline is the best constant: each sign's mean over the annotated training pixels
  (what the training labels allow without looking at the image).
- A channel's probe importance is its MSE reduction under the baseline (the share of the
  severity variance it explains alone), clipped at 0 and normalised to sum 1; ``by_sign``
  does the same per sign. A channel that carries nothing (noise) cannot beat the baseline
  on held-out images and scores about 0; a channel that carries a sign scores above it, also
  when another channel carries the same sign more cleanly.

Squared error, not the model's MAE: with an absolute error a short training sits at "0
everywhere" (the median of mostly unaffected pixels) for every channel but the cleanest,
and the probe sees nothing; the squared error's gradient grows with the miss. Every probe
starts from the same weights and sees the same batches and augmented views, so the
channels differ only in their pixels. It needs pixel masks. Cost: C short trainings
(default 300 steps of 8 images at 96 px: about 15 s each on one core).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.data import augment
from model.data.dataset import load_dataset
from model.data.io import IGNORE
from model.data.splits import assign_splits
from model.data.trainset import CachedExamples, SeverityDataset, eval_batches
from model.errors import DermsevError
from model.explain.args import check_whole
from model.nets.mixing import normalise


class ProbeNet(nn.Module):
    """1 channel -> S severity maps: a stride-2 stem, dilated 3x3 convolutions (receptive field
    about 60 input pixels), a 1x1 head, upsampled back to the input size."""

    def __init__(self, signs: int, width: int = 24):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        for d in (1, 2, 4, 8):
            layers += [nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(nn.Conv2d(width, signs, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def _train_probe(inputs: list[torch.Tensor], masks: list[torch.Tensor], signs: int, steps: int, batch_size: int,
                 seed: int, lr: float) -> ProbeNet:
    torch.manual_seed(seed)
    net = ProbeNet(signs)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    order = torch.Generator().manual_seed(seed)
    n = len(inputs)
    net.train()
    for _ in range(steps):
        pick = torch.randint(0, n, (min(batch_size, n),), generator=order).tolist()
        target = torch.stack([masks[i] for i in pick])
        valid = target != IGNORE
        err = (net(torch.stack([inputs[i] for i in pick])) - target.float()) ** 2 * valid
        loss = err.sum() / valid.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def probe_study(dataset_dir: str | Path, size: int = 96, steps: int = 300, batch_size: int = 8, seed: int = 0,
                split_seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15, lr: float = 3e-3,
                threads: int | None = None) -> dict:
    """Train one probe per channel and compare its val pixel MSE with the best constant's.

    The splits are the ones `dermsev train --seed split_seed` makes (patient-grouped), so the
    probes never see the validation images. Returns {"metric": "pixel_mse", "split": "val",
    "n_train", "n_images", "base": MSE of the best constant, "alone": {channel: MSE},
    "explained": {channel: 1 - MSE / base},
    "importance": {channel: w}, "by_sign": {sign: {channel: w}}, "base_by_sign", "alone_by_sign"}.
    """
    size = check_whole("size", size, 32)
    steps = check_whole("steps", steps, 1)
    batch_size = check_whole("batch_size", batch_size, 1)
    ds = load_dataset(dataset_dir)
    assign_splits(ds.records, seed=split_seed, val_frac=val_frac, test_frac=test_frac)
    train_recs, val_recs = ds.subset("train"), ds.subset("val")
    if not train_recs or not val_recs:
        raise DermsevError(f"{dataset_dir}: probe importance needs training and validation images "
                           f"(got {len(train_recs)} and {len(val_recs)})")
    if not any(p for r in ds.records for p in r.masks.values()):
        raise DermsevError(f"{dataset_dir}: probe importance needs pixel masks, and the manifest has none")
    spec = ds.spec
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        cache = CachedExamples(train_recs + val_recs, spec, size)
        _, std = cache.channel_stats()
        n_train = len(train_recs)
        # A fixed set of augmented training views (geometric only: intensities are the signal),
        # shared by every probe so that they differ in nothing but their input channel.
        views = SeverityDataset(cache, list(range(n_train)), augment.train_transform(size, "geometric", seed=seed))
        repeats = max(1, min(4, 512 // n_train))  # at most ~512 views (or the training split) in memory
        train_items = [views[i] for _ in range(repeats) for i in range(n_train)]
        val_items = list(eval_batches(cache, list(range(n_train, len(cache.records))), 16))

        def standardise(img: torch.Tensor, c: int) -> torch.Tensor:
            # Centred on the image's own mean: the probe reads local contrast (a lesion against
            # the skin around it), not the skin tone or exposure of the whole photo.
            x = img[c:c + 1]
            return (x - x.mean()) / std[c]

        def val_mse(predict) -> np.ndarray:
            err, cnt = np.zeros(len(spec.signs)), np.zeros(len(spec.signs))
            with torch.no_grad():
                for batch in val_items:
                    target = batch["masks"]
                    valid = target != IGNORE
                    diff = (predict(batch["image"]).clamp(0, spec.max_score) - target.float()) ** 2 * valid
                    err += diff.sum(dim=(0, 2, 3)).double().numpy()
                    cnt += valid.sum(dim=(0, 2, 3)).double().numpy()
            return np.where(cnt > 0, err / np.maximum(cnt, 1), np.nan)

        train_masks = [it["masks"] for it in train_items]
        # Baseline: the best constant, each sign's mean over the annotated training pixels.
        stacked = torch.stack(train_masks)
        annotated = stacked != IGNORE
        const = (stacked.float() * annotated).sum(dim=(0, 2, 3)) / annotated.sum(dim=(0, 2, 3)).clamp(min=1)
        mses_list = [val_mse(lambda images: const.view(1, -1, 1, 1).expand(len(images), -1, *images.shape[-2:]))]
        for c in range(len(spec.channels)):
            net = _train_probe([standardise(it["image"], c) for it in train_items], train_masks, len(spec.signs),
                               steps, batch_size, seed, lr)
            mses_list.append(val_mse(lambda images, net=net, c=c: net(
                torch.stack([standardise(img, c) for img in images]))))
    finally:
        torch.set_num_threads(old_threads)
    mses = np.array(mses_list)  # (C + 1, S)
    has = np.isfinite(mses[0])
    if not has.any():
        raise DermsevError(f"{dataset_dir}: the validation images have no annotated pixels")
    mean_mse = mses[:, has].mean(axis=1)
    channels = list(spec.channels)
    signs = [s for s, ok in zip(spec.signs, has, strict=True) if ok]
    cols = np.flatnonzero(has)
    return {
        "metric": "pixel_mse", "split": "val", "n_train": n_train, "n_images": len(val_recs),
        "base": float(mean_mse[0]),
        "alone": {ch: float(v) for ch, v in zip(channels, mean_mse[1:], strict=True)},
        "explained": {ch: float(1 - v / mean_mse[0]) if mean_mse[0] > 0 else 0.0
                      for ch, v in zip(channels, mean_mse[1:], strict=True)},
        "importance": normalise((mean_mse[0] - mean_mse[1:]).tolist(), channels),
        "by_sign": {s: normalise((mses[0, j] - mses[1:, j]).tolist(), channels)
                    for s, j in zip(signs, cols, strict=True)},
        "base_by_sign": {s: float(mses[0, j]) for s, j in zip(signs, cols, strict=True)},
        "alone_by_sign": {s: {ch: float(mses[i + 1, j]) for i, ch in enumerate(channels)}
                          for s, j in zip(signs, cols, strict=True)},
    }


__all__ = ["ProbeNet", "probe_study"]
