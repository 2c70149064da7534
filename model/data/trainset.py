"""Training-time data: records decoded once into memory at the working size, then augmented.

Decoding and resizing once (not every epoch) keeps a 2-core CPU busy with the network, not
with PNG decoding.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from model.data import augment, colour
from model.data.dataset import DatasetSpec, Record, load_example, load_skin
from model.data.io import IGNORE, resize
from model.data.patient import encode_tabular


def _resize_longest(img: np.ndarray, masks: list[np.ndarray], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    h, w = img.shape[:2]
    scale = size / max(h, w)
    if abs(scale - 1) < 1e-6:
        return img, masks
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = resize(img, nw, nh, cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out, [cv2.resize(m, (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT) for m in masks]


class CachedExamples:
    """Every record's image (float16, (h, w, C)) and masks at the working size, in memory.

    with_skin: each record's skin mask (1 skin, 0 not, IGNORE unknown) follows its sign masks
    as one more mask, so augmentation moves it with them (SeverityDataset splits it off).
    """

    def __init__(self, records: list[Record], spec: DatasetSpec, size: int, with_skin: bool = False):
        self.records, self.spec, self.size, self.with_skin = records, spec, size, with_skin
        self.normalised: dict | None = None  # set by `balance` with a luminance
        self.images: list[np.ndarray] = []
        self.masks: list[list[np.ndarray]] = []
        for rec in records:
            img, masks = load_example(rec, spec)
            if with_skin:
                masks.append(load_skin(rec, img.shape[:2]))
            img, masks = _resize_longest(img, masks, size)
            self.images.append(img.astype(np.float16))
            self.masks.append(masks)

    def balance(self, method: str, reference, rgb, luminance: float | None = None) -> None:
        """White-balance every cached image in place (model/data/colour.py `balance`), as the
        predictor does before scoring: reference, (3,) chromaticity; rgb, the colour planes;
        luminance, the exposure to normalise to (None: keep each photo's)."""
        if luminance is not None:  # what an augmentation that re-exposes a sample normalises to
            self.normalised = {"reference": np.asarray(reference, np.float64), "luminance": float(luminance),
                               "rgb": None if rgb is None else tuple(rgb)}
        for k, img in enumerate(self.images):
            out, _ = colour.balance(img.astype(np.float32), method, reference, rgb=rgb, luminance=luminance)
            self.images[k] = out.astype(np.float16)

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std over all cached pixels (for input normalisation)."""
        c = len(self.spec.channels)
        s, s2, n = np.zeros(c), np.zeros(c), 0
        for img in self.images:
            x = img.reshape(-1, c).astype(np.float64)
            s += x.sum(0)
            s2 += (x * x).sum(0)
            n += x.shape[0]
        mean = s / max(n, 1)
        std = np.sqrt(np.maximum(s2 / max(n, 1) - mean * mean, 1e-8))
        return [float(v) for v in mean], [float(max(v, 1e-3)) for v in std]


class SeverityDataset(TorchDataset):
    """Items: image (C, S, S) float32, masks (signs, S, S) uint8 (255 ignore), valid (1, S, S)
    bool, scores (signs,) float32 NaN unknown, has_mask (signs,) bool, age () float NaN, sex () long;
    with a cache `with_skin`, also skin (1, S, S) uint8 (1 skin, 0 not, 255 unknown); with a
    `view` pipeline (intensity only: augment.consistency_view), also view (C, S, S) float32, the
    augmented image passed through it."""

    def __init__(self, cache: CachedExamples, indices: list[int], transform, view=None):
        self.cache, self.indices, self.transform, self.view = cache, list(indices), transform, view

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = self.indices[i]
        rec = self.cache.records[j]
        img, masks, valid = augment.apply(
            self.transform, self.cache.images[j].astype(np.float32), self.cache.masks[j]
        )
        age, sex = encode_tabular(rec.age, rec.sex)
        signs = self.cache.spec.signs
        scores = [rec.scores[s] if rec.scores[s] is not None else math.nan for s in signs]
        has_mask = [rec.masks.get(s) is not None for s in signs]
        extra = {}
        if self.cache.with_skin:
            extra["skin"] = torch.from_numpy(np.ascontiguousarray(masks[-1][None]))
            masks = masks[:-1]
        if self.view is not None:
            seen = self.view(image=img)["image"]
            extra["view"] = torch.from_numpy(np.ascontiguousarray(seen.transpose(2, 0, 1), dtype=np.float32))
        return {
            **extra,
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "masks": torch.from_numpy(np.stack(masks)),
            "valid": torch.from_numpy(valid[None]),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "has_mask": torch.tensor(has_mask),
            "age": torch.tensor(age, dtype=torch.float32),
            "sex": torch.tensor(sex, dtype=torch.long),
        }


def eval_batches(cache: CachedExamples, indices: list[int], batch_size: int):
    """Unaugmented batches padded to the working size (square), for validation."""
    ds = SeverityDataset(cache, indices, augment.train_transform(cache.size, "none"))
    for start in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
        yield {k: torch.stack([it[k] for it in items]) for k in items[0]}


__all__ = ["CachedExamples", "SeverityDataset", "eval_batches", "IGNORE"]
