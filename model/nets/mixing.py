"""Interpretable input channel mixing (in the spirit of DCMIX, Siegismund et al. 2023).

C input channels (already standardised per channel) are blended into K composite channels
before the encoder. Each composite is a convex combination of the inputs (alpha compositing
with softmax weights, non-negative, each row summing to 1), so the weights read directly as
"which share of what the network sees comes from channel c", and their mean over the K
composites is the channel importance (non-negative, sums to 1):

    W[k, c] = softmax_c((logits[k, c] + gate[c]) / temperature)
    mixed[k] = scale[k] * sum_c W[k, c] x[c] + bias[k]
    importance[c] = mean_k W[k, c]

``logits`` fix each composite's "colour" (which channels it favours, as DCMIX gives each
channel a colour); ``gate`` is one learned logit per channel, shared by every composite, so
W[k, c] is proportional to start[k, c] * exp(gate[c] / temperature). Choices, and why
(docs/channels.md has the measurements):

- Only the per-channel ``gate`` is learned by default (``learn_rows=False``; ``logits`` is
  then a buffer). With free per-row logits, a composite the encoder does not need collects
  no gradient, and whatever channel it happens to favour, noise included, keeps its weight:
  on 6-channel synthetic data the noise channel then outranked red, green and blue. A
  channel's gate is shared by all composites, so the only way to silence it is to lower its
  importance. ``learn_rows=True`` also learns the rows (more freedom, weaker reading).
- ``temperature`` < 1 (default 0.1): divides the logits, which multiplies the optimiser's
  step on the weights by 1/temperature. At the training learning rate (2e-3, AdamW) and a
  few hundred steps, temperature 1 leaves the weights within a few percent of 1/C.
- Start ``spread`` (default): every channel starts with the same importance 1/C ("equally
  important until the data says otherwise"), but the K composites start as different as
  possible: half ``spread_weights`` (the identity when C == K), half uniform, so every
  channel is in every composite and its gate hears from all of them. A uniform start
  (``init="uniform"``: every composite the plain mean of all channels) hands the encoder K
  copies of one grey image; colour contrast (redness = red against green and blue) is lost
  and in a short training the network learned nothing (pixel MAE = the all-zero answer).
- ``entropy()``: mean row entropy, the optional sparsity prior the training loss adds
  (``TrainConfig.mixing_sparsity``); with fixed rows it can only lower it by concentrating
  the gates on few channels. ``channel_entropy()`` is the entropy of the importance.
- ``scale``/``bias``: a per-composite affine after blending, so a composite of few channels
  is not stuck at a smaller variance than one of many.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

INITS = ("spread", "uniform")
SPREAD_FLOOR = 0.5  # share of the uniform mixture in the "spread" start: no weight starts near 0


def spread_weights(in_channels: int, out_channels: int) -> Tensor:
    """(K, C) start weights: rows sum to 1, every channel has the same total weight (importance 1/C),
    and the K composites are as different as possible.

    The C channels, taken in strided order (0, K, 2K, ..., 1, K + 1, ...) so that neighbouring
    channels such as R, G, B land in different composites, are laid on [0, C); composite k
    takes the stretch [k C / K, (k + 1) C / K) in proportion to overlap. C == K gives the
    identity; C < K shares each channel among several composites.
    """
    c, k = in_channels, out_channels
    order = [i for start in range(k) for i in range(start, c, k)] if c > k else list(range(c))
    w = torch.zeros(k, c)
    step = c / k
    for row in range(k):
        lo, hi = row * step, (row + 1) * step
        for pos, ch in enumerate(order):
            overlap = min(hi, pos + 1) - max(lo, pos)
            if overlap > 0:
                w[row, ch] = overlap / step
    return w


class ChannelMixing(nn.Module):
    """(B, C, H, W) -> (B, K, H, W); weights softmax((logits + gate) / temperature), shape (K, C).

    Args: in_channels C >= 1; out_channels K >= 1 (composites fed to the encoder);
    temperature > 0; init "spread" or "uniform"; init_std: noise on the start logits (learned rows only);
    learn_rows: learn the per-composite logits too (default: only the per-channel gate).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, temperature: float = 0.1, init: str = "spread",
                 init_std: float = 0.01, learn_rows: bool = False):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if not (isinstance(init_std, (int, float)) and math.isfinite(init_std) and init_std >= 0):
            raise ValueError(f"init_std must be a number >= 0, got {init_std!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.temperature = float(temperature)
        # Logits are stored multiplied by the temperature, so the initial weights are the same
        # whatever the temperature.
        start = torch.full((out_channels, in_channels), 1.0 / in_channels)
        if init == "spread":
            start = (1 - SPREAD_FLOOR) * spread_weights(in_channels, out_channels) + SPREAD_FLOOR * start
        self.learn_rows = bool(learn_rows)
        # Noise breaks the symmetry between learned rows; fixed rows keep the exact start.
        noise = init_std * torch.randn(out_channels, in_channels) if self.learn_rows else 0.0
        logits = temperature * (torch.log(start) + noise)
        if self.learn_rows:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)
        self.gate = nn.Parameter(torch.zeros(in_channels))
        self.scale = nn.Parameter(torch.ones(out_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels, 1, 1))

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, temperature={self.temperature:g}"

    def weights(self) -> Tensor:
        """(K, C) non-negative, each row sums to 1."""
        return torch.softmax((self.logits + self.gate) / self.temperature, dim=1)

    def importance(self) -> Tensor:
        """(C,) non-negative, sums to 1: the share of the composites each input channel feeds."""
        return self.weights().mean(dim=0)

    def entropy(self) -> Tensor:
        """Mean row entropy of the weights (0..log C): a sparsity prior pushes it down."""
        w = self.weights()
        return -(w * torch.log(w.clamp_min(1e-12))).sum(dim=1).mean()

    def channel_entropy(self) -> Tensor:
        """Entropy of the importance (0..log C): low when few channels matter."""
        p = self.importance()
        return -(p * torch.log(p.clamp_min(1e-12))).sum()

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        mixed = torch.einsum("kc,bchw->bkhw", self.weights().to(x.dtype), x)
        return mixed * self.scale.to(x.dtype) + self.bias.to(x.dtype)


def normalise(values: Mapping[str, float] | Sequence[float], names: Sequence[str] | None = None) -> dict[str, float]:
    """Clip at 0 and scale to sum 1 (uniform when nothing is positive); NaN counts as 0.

    values: a {name: value} mapping, or a sequence with `names` giving one name per value.
    """
    if isinstance(values, Mapping):
        names, vals = list(values), [values[k] for k in values]
    else:
        if names is None:
            raise ValueError("names are needed when values is a sequence")
        names, vals = list(names), list(values)
        if len(names) != len(vals):
            raise ValueError(f"{len(vals)} values for {len(names)} names")
    if not names:
        raise ValueError("no channels")
    v = np.array([float(x) for x in vals], dtype=np.float64)
    v = np.where(np.isfinite(v) & (v > 0), v, 0.0)
    total = v.sum()
    v = v / total if total > 0 else np.full(len(v), 1.0 / len(v))
    return {str(n): float(x) for n, x in zip(names, v, strict=True)}
