"""Saliency: which input channels and pixels drove a sign's image score.

Two methods, both kept per input channel (the map has the input's C channels, not one):

- ``gradient``: ``|d score / d x|``, the plain input gradient (Simonyan et al. 2014).
- ``jacobian``: the Jacobian maps of Kraus et al. (Bioinformatics 2016): back-propagate with
  ReLU applied to the partial derivatives on the way back. Exactly what we do: during the
  forward pass a global module forward hook catches every ``nn.ReLU``/``nn.ReLU6`` module that
  runs and registers a tensor hook on its output that replaces the incoming gradient g by
  ``max(g, 0)``; the ReLU's own backward then applies its forward mask (output > 0). That is
  the guided-backpropagation rule (Springenberg et al. 2015). At the input the same ReLU is
  applied once more, so the map keeps positive evidence only (raising that channel at that
  pixel raises the score). Activations called as functions (``F.relu``) or of other kinds
  (SiLU, hardswish, ...) back-propagate normally; on a network without ReLU modules the
  jacobian map is the positive part of the gradient.

``score`` is the sign's soft image score, ``pool(maps)[:, sign]``, by default the soft
affected-area mean (``MILPool('mean')``, see docs/mil.md): a differentiable stand-in for
the reported score (a median; model/data/scores.py), which has no useful gradient.
``project`` sums the channels into one (H, W) map on 0..1 for an overlay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from model.nets.mil import affected_mean

METHODS = ("gradient", "jacobian")
_GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def _positive_grad_hook(module: nn.Module, inputs: Any, output: Any) -> None:
    if (
        isinstance(module, _GUIDED_ACTIVATIONS)
        and isinstance(output, Tensor)
        and output.requires_grad
    ):
        output.register_hook(lambda g: g.clamp(min=0))


def saliency(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    sign: int,
    pool: Callable[[Tensor], Tensor] | None = None,
    method: str = "gradient",
) -> Tensor:
    """Per-channel saliency of one sign's image score.

    Args:
        forward: x -> maps (1, S, H', W'), e.g. ``lambda t: net(t, age, sex)``; put the
            network in eval mode first.
        x: (1, C, H, W) normalised input.
        sign: index of the sign in 0..S-1.
        pool: maps (1, S, H', W') -> (1, S) image scores; default the affected-area mean.
        method: ``gradient`` or ``jacobian`` (see the module docstring).

    Returns:
        (C, H, W) float32 >= 0 on the CPU. The model's parameter gradients are not touched.
    """
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; allowed: {', '.join(METHODS)}")
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image (1, C, H, W), got shape {tuple(x.shape)}")
    pool = pool if pool is not None else affected_mean
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().float().requires_grad_(True)
        handle = None
        if method == "jacobian":
            handle = nn.modules.module.register_module_forward_hook(_positive_grad_hook)
        try:
            maps = forward(xg)
        finally:
            if handle is not None:
                handle.remove()
        if maps.ndim != 4 or maps.shape[0] != 1:
            raise ValueError(f"forward must return maps (1, S, H, W), got {tuple(maps.shape)}")
        if not 0 <= sign < maps.shape[1]:
            raise ValueError(f"sign index {sign} out of range for {maps.shape[1]} signs")
        score = pool(maps)[:, sign].sum()
        (grad,) = torch.autograd.grad(score, xg, allow_unused=True)
    if grad is None:  # the score does not depend on the input at all
        grad = torch.zeros_like(xg)
    sal = grad[0].abs() if method == "gradient" else grad[0].clamp(min=0)
    return sal.detach().float().cpu()


def project(sal: Tensor | np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """(C, H, W) saliency -> (H, W) float32 on 0..1 for an overlay.

    Sums the channels and divides by the given percentile of the summed map (by its max if
    that percentile is 0, e.g. for very sparse maps), clipping above 1. An all-zero map
    stays all zero. A 2-D input is taken as one channel.
    """
    a = sal.detach().float().cpu().numpy() if isinstance(sal, Tensor) else np.asarray(sal)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"saliency must be (C, H, W), got shape {a.shape}")
    m = np.abs(a.astype(np.float32)).sum(axis=0)
    scale = float(np.percentile(m, percentile)) if m.size else 0.0
    if scale <= 0:
        scale = float(m.max()) if m.size else 0.0
    if scale <= 0:
        return np.zeros(m.shape, dtype=np.float32)
    return np.clip(m / scale, 0.0, 1.0).astype(np.float32)


def explain_image(
    predictor: Any,
    image: Any,
    age: float | None = None,
    sex: str | None = None,
    method: str = "gradient",
) -> dict:
    """Per-sign saliency of one image, through the predictor's own preprocessing.

    predictor: a ``model.inference.predictor.Predictor`` (uses ``prepare``, ``net``, ``signs``,
    ``channels``, ``thresholds``; always the torch network in float32, whatever the backend).
    image: what ``predictor.predict`` accepts. The gradient is taken with respect to the
    network input on 0..1 (before the network's own normalisation), at the working size,
    padding removed. The score explained is each sign's soft affected-area mean (threshold =
    the first label threshold), the differentiable counterpart of the reported score.

    Returns a dict:
        signs, channels: names; method; size: (h, w) working size;
        image: (h, w, 3) uint8 RGB at the working size, for overlays;
        scores: {sign: soft image score}; saliency: {sign: (C, h, w) float32 >= 0};
        projected: {sign: (h, w) float32 0..1};
        channel_share: {sign: {channel: share of the saliency mass, summing to 1 (0s if none)}}.
    """
    from model.data.io import to_uint8_rgb
    from model.data.patient import encode_tabular

    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; allowed: {', '.join(METHODS)}")
    a, s = encode_tabular(age, sex)  # checked before the (slower) decode
    prep = predictor.prepare(image)
    x, (h, w) = prep.x, prep.hw
    net = predictor.net.eval()
    age_t, sex_t = torch.full((1,), a), torch.full((1,), s, dtype=torch.long)
    thr = float(predictor.thresholds[0]) if predictor.thresholds else 0.5

    def forward(t: Tensor) -> Tensor:
        return net(t, age_t, sex_t).float()

    def pool(maps: Tensor) -> Tensor:
        return affected_mean(maps[:, :, :h, :w], threshold=thr)

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    with torch.inference_mode():
        scores = pool(forward(xt))[0].tolist()
    channels = list(predictor.channels)
    out: dict = {
        "signs": list(predictor.signs),
        "channels": channels,
        "method": method,
        "size": (h, w),
        "image": to_uint8_rgb(np.ascontiguousarray(x[:, :h, :w].transpose(1, 2, 0))),
        "scores": {},
        "saliency": {},
        "projected": {},
        "channel_share": {},
    }
    for k, sign in enumerate(out["signs"]):
        sal = saliency(forward, xt, k, pool=pool, method=method)[:, :h, :w].contiguous()
        mass = sal.sum(dim=(1, 2)).double()
        share = (mass / mass.sum()).tolist() if mass.sum() > 0 else [0.0] * len(channels)
        out["scores"][sign] = float(scores[k])
        out["saliency"][sign] = sal.numpy()
        out["projected"][sign] = project(sal)
        out["channel_share"][sign] = dict(zip(channels, share, strict=True))
    return out
