"""Channel importance: how much each input channel matters to a trained model.

Four estimates, each a ``{channel: weight}`` dict, weights non-negative and summing to 1:

- ``learned``: read off the input channel mixing layer (``ChannelMixing.importance()``, see
  model/nets/mixing.py and docs/channels.md). Free (no data), but only for models trained with
  mixing on.
- ``ablation``: for any model. On a dataset split, each channel in turn is replaced by its
  mean over the image (a flat channel carries no spatial information) and the increase of
  the validation MAE over the unablated model is measured; increases are clipped at 0 and
  normalised (uniform when no channel increases the error). Pixel MAE over annotated pixels
  when the split has masks, image-level MAE (EASI convention) otherwise. Measured at the
  model's working size (the masks are resized to it, nearest neighbour), so it is fast; it
  is a relative measure, not `dermsev evaluate`'s full-resolution number.
- ``gradient``: for any model, from a few images and no labels: the mean over images,
  pixels and signs of ``|d score / d x_c * (x_c - mean(x_c))|``, the first-order (Taylor)
  estimate of what the ablation above would change in each sign's image score.

- ``probe`` (model/explain/probe.py, on request, needs a dataset with masks): not about the model
  but the data: what each channel can tell on its own, from one small network trained per
  channel. It credits a channel that carries a sign even when the model gets that sign more
  cleanly from another channel (which the three measures above score about 0).

``channel_importance(predictor, dataset_dir=None, images=None, probe=False)`` returns SPEC's
``{"channel_importance": {...}}`` plus every estimate it computed. The headline
``channel_importance`` is, in this order of preference: learned (mixing layer), ablation
(a dataset was given), gradient (images were given), else uniform (1/C each: "no evidence
either way"), with ``"method"`` naming which one it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from model.data.dataset import load_for_model
from model.data.io import IGNORE, read_mask
from model.data.splits import split_as_trained, trained_split_settings
from model.errors import DermsevError
from model.explain.args import check_whole
from model.nets.mixing import normalise
from model.scoring.summary import easi_scores

SPLITS = ("train", "val", "test", "all")


def _net_and_channels(predictor: Any) -> tuple[torch.nn.Module, list[str]]:
    net = getattr(predictor, "net", None)
    channels = getattr(predictor, "channels", None)
    if net is None or channels is None:
        raise ValueError("expected a Predictor (model.inference.predictor.load_model) with .net and .channels")
    return net, list(channels)


def learned_importance(predictor: Any) -> dict[str, float] | None:
    """The mixing layer's channel weights as {channel: w} (sums to 1), or None without one."""
    net, channels = _net_and_channels(predictor)
    mixing = getattr(net, "mixing", None)
    if mixing is None:
        return None
    with torch.no_grad():
        imp = mixing.importance().detach().float().cpu().numpy()
    if imp.shape != (len(channels),):
        raise ValueError(f"mixing layer has {imp.shape[0]} inputs, the model names {len(channels)} channels")
    return normalise(imp.tolist(), channels)


def _ablated_batch(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """x (C, H, W) -> (C + 1, C, H, W): the original, then channel c flattened to its mean."""
    c = x.shape[0]
    out = np.repeat(x[None], c + 1, axis=0)
    for k in range(c):
        out[k + 1, k, :h, :w] = x[k, :h, :w].mean()
    return out


def ablation_study(predictor: Any, dataset_dir: str | Path, split: str = "val", max_images: int = 50,
                   batch_size: int = 4) -> dict:
    """The full ablation measurement behind `ablation_importance`.

    Returns {"metric": "pixel_mae" | "image_mae", "n_images", "split", "base": MAE,
    "ablated": {channel: MAE}, "importance": {channel: w},
    "by_sign": {sign: {channel: w}}} (by_sign: the same normalisation per sign).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    max_images = check_whole("max_images", max_images, 1)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    _, channels = _net_and_channels(predictor)
    signs = list(predictor.signs)
    ds = load_for_model(dataset_dir, signs, len(channels))
    split_as_trained(ds.records, getattr(predictor, "config", None) or {})
    recs = ds.subset(split)[: int(max_images)]
    if not recs:
        raise DermsevError(f"{dataset_dir}: no images in split {split!r}")
    c, s = len(channels), len(signs)
    thr = predictor.thresholds[0] if predictor.thresholds else predictor.max_score / 2
    pix_err = np.zeros((c + 1, s))
    pix_n = np.zeros(s)
    img_err = np.zeros((c + 1, s))
    img_n = np.zeros(s)
    for rec in recs:
        prep = predictor.prepare(rec.image, name=f"id {rec.id}")
        x, (h, w) = prep.x, prep.hw
        batch = _ablated_batch(x, h, w)
        out = np.concatenate([predictor.forward(np.ascontiguousarray(batch[i:i + batch_size]), rec.age, rec.sex)
                              for i in range(0, len(batch), batch_size)])[:, :, :h, :w]
        for k, sign in enumerate(signs):
            path = rec.masks.get(sign)
            if path is not None:
                mask = read_mask(path, f"id {rec.id} mask_{sign}")
                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
                valid = mask != IGNORE
                if valid.any():
                    truth = mask[valid].astype(np.float32)
                    pix_err[:, k] += np.abs(out[:, k][:, valid] - truth).sum(axis=1)
                    pix_n[k] += valid.sum()
            truth_score = rec.scores.get(sign)
            if truth_score is not None:
                scores = np.array([easi_scores(out[v, k:k + 1], None, thr)[0] for v in range(c + 1)])
                img_err[:, k] += np.abs(scores - truth_score)
                img_n[k] += 1
    if pix_n.sum() > 0:
        metric, err, n = "pixel_mae", pix_err, pix_n
    elif img_n.sum() > 0:
        metric, err, n = "image_mae", img_err, img_n
    else:
        raise DermsevError(f"{dataset_dir}: split {split!r} has neither masks nor image-level scores")
    has = n > 0
    per_sign = err[:, has] / n[has]  # (C + 1, signs with data)
    mae = per_sign.mean(axis=1)
    delta = mae[1:] - mae[0]
    by_sign = {sign: normalise((per_sign[1:, j] - per_sign[0, j]).tolist(), channels)
               for j, sign in enumerate(sg for sg, ok in zip(signs, has, strict=True) if ok)}
    return {
        "metric": metric, "split": split, "n_images": len(recs), "base": float(mae[0]),
        "ablated": {ch: float(v) for ch, v in zip(channels, mae[1:], strict=True)},
        "importance": normalise(delta.tolist(), channels),
        "by_sign": by_sign,
    }


def ablation_importance(predictor: Any, dataset_dir: str | Path, split: str = "val",
                        max_images: int = 50) -> dict[str, float]:
    """Per-channel increase in MAE when the channel is flattened to its image mean, normalised."""
    return ablation_study(predictor, dataset_dir, split, max_images)["importance"]


def gradient_importance(predictor: Any, images: Sequence[Any], max_images: int = 20) -> dict[str, float]:
    """Gradient x (input - channel mean), summed over pixels and signs, mean over images; normalised.

    images: paths, arrays or anything `Predictor.prepare` reads. Needs no labels.
    """
    from model.nets.mil import affected_mean

    max_images = check_whole("max_images", max_images, 1)
    images = list(images)[: int(max_images)]
    if not images:
        raise ValueError("gradient importance needs at least one image")
    net, channels = _net_and_channels(predictor)
    total = np.zeros(len(channels))
    for image in images:
        prep = predictor.prepare(image)
        x, (h, w) = prep.x, prep.hw
        xt = torch.from_numpy(x[None]).float()
        mean = xt[:, :, :h, :w].mean(dim=(2, 3), keepdim=True)
        with torch.inference_mode(False), torch.enable_grad():
            xg = xt.clone().requires_grad_(True)
            maps = net(xg)[:, :, :h, :w]
            score = affected_mean(maps).sum()
            (grad,) = torch.autograd.grad(score, xg, allow_unused=True)
        if grad is None:
            continue
        contrib = (grad * (xt - mean))[0, :, :h, :w].abs().sum(dim=(1, 2))
        total += contrib.detach().double().numpy() / len(images)
    return normalise(total.tolist(), channels)


def channel_importance(predictor: Any, dataset_dir: str | Path | None = None, images: Sequence[Any] | None = None,
                       split: str = "val", max_images: int = 50, probe: bool = False, probe_steps: int = 300,
                       probe_size: int = 96) -> dict:
    """SPEC's explain JSON part: {"channel_importance": {channel: w}, "method", "learned",
    "ablation", ...}; see the module docstring for which estimate is the headline.

    probe: also train model/explain/probe.py's per-channel probes on `dataset_dir` (the model's own
    train/val split): "probe", "probe_by_sign" and "probe_detail", what each channel carries
    on its own. Never the headline (it describes the data, not this model)."""
    _, channels = _net_and_channels(predictor)
    if probe and dataset_dir is None:
        raise ValueError("probe importance needs a dataset")
    out: dict[str, Any] = {"learned": learned_importance(predictor), "ablation": None}
    if dataset_dir is not None:
        study = ablation_study(predictor, dataset_dir, split, max_images)
        out["ablation"] = study["importance"]
        out["ablation_by_sign"] = study["by_sign"]
        out["ablation_detail"] = {k: study[k] for k in ("metric", "split", "n_images", "base", "ablated")}
    if images:
        out["gradient"] = gradient_importance(predictor, images)
    if probe:
        from model.explain.probe import probe_study

        split_settings = trained_split_settings(getattr(predictor, "config", None) or {})
        study = probe_study(dataset_dir, size=probe_size, steps=probe_steps, split_seed=split_settings.pop("seed"),
                            **split_settings)
        if list(study["alone"]) != channels:
            raise DermsevError(f"{dataset_dir}: dataset channels {list(study['alone'])} differ from the model's {channels}")
        out["probe"], out["probe_by_sign"] = study["importance"], study["by_sign"]
        out["probe_detail"] = {k: study[k] for k in ("metric", "split", "n_train", "n_images", "base", "alone",
                                                     "explained")}
    for method in ("learned", "ablation", "gradient"):
        if out.get(method) is not None:
            out["channel_importance"], out["method"] = out[method], method
            break
    else:
        out["channel_importance"], out["method"] = normalise([1.0] * len(channels), channels), "uniform"
    return {"channel_importance": out.pop("channel_importance"), "method": out.pop("method"), **out}


def rank(importance: Mapping[str, float]) -> list[str]:
    """Channel names, most important first (ties keep the input order)."""
    return sorted(importance, key=lambda k: -importance[k])


__all__ = ["learned_importance", "ablation_importance", "ablation_study", "gradient_importance",
           "channel_importance", "normalise", "rank"]
