"""Multiple-instance pooling: per-pixel severity maps -> differentiable image-level scores.

The training target of an image is the mean severity over its affected area (pixels with
severity >= 1), 0 where the sign is absent (model/data/scores.py, which also says how the
*reported* score, a median with a 1 % area rule, differs from it). Every pooling here maps
`(B, S, H, W)` severities on 0..max_score to `(B, S)` scores on 0..max_score and is built
to approximate the training target, differentiably:

- ``mean``: soft affected-area mean. Weights ``w = sigmoid(slope * (s - affected_threshold))``
  (about 1 on affected pixels, about 0 elsewhere) and ``score = sum(w s) / (sum(w) + eps)``.
  A lesion of severity 2 on half the image scores ~2, not 1 (the plain mean). An all-zero map
  scores 0; when no pixel is affected the score is a weighted mean of values below the
  threshold, so its label is "none" whatever the exact value.
- ``max``: the largest pixel severity (the worst spot; an upper bound of the mean).
- ``lse``: log-mean-exp, ``log(mean(exp(r s))) / r``, a smooth max between mean (r -> 0) and
  max (r -> inf).
- ``noisy-and``: Kraus et al. (Bioinformatics 2016), adapted to ordinal severities. Noisy-AND
  pools instance *probabilities*, so the severity is split into cumulative levels
  k = 1..K, K = ceil(max_score): the instance probability ``p_k = clamp((s - k + 1) / w_k, 0, 1)``
  reads as P(severity >= k), where ``w_k = min(1, max_score - k + 1)`` is the level's width
  (1, except a shorter last level when max_score is not an integer), so
  ``sum_k w_k p_k = s`` exactly. ``p̄_k`` is the soft affected-area mean of ``p_k`` (same
  weights as ``mean``), hence ``sum_k w_k p̄_k`` is the ``mean`` pool above. Each level's bag
  probability is the Noisy-AND
  ``P_k = [σ(a(p̄_k − b_k)) − σ(−a b_k)] / [σ(a(1 − b_k)) − σ(−a b_k)]`` with a fixed slope
  ``a`` and a learned threshold ``b_k = sigmoid(θ)`` in (0, 1), one per sign and level
  (shape ``(S, K)``), and the image score is ``sum_k w_k P_k``. P_k is 0 at p̄_k = 0, 1 at
  p̄_k = 1 and increasing in between, so the score stays on 0..max_score, is exactly 0 for an
  all-zero map and max_score for an all-max map, and equals "mean severity over the affected
  area" up to a learned, monotone, per-level sharpening (b_k = 0.5 maps p̄_k = 0.5 to 0.5).

The network owns a ``MILPool`` so that the Noisy-AND thresholds are saved with the weights
(state-dict key ``b_logit``; the other methods have no parameters). See docs/mil.md.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

METHODS = ("mean", "max", "lse", "noisy-and")
_EPS = 1e-6
_NEG = -1e4  # "minus infinity" that stays finite (and finite in its gradient) in fp16/bf16/fp32


def _flatten(maps: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """maps (B, S, H, W) -> float32 (B, S, N); valid -> float32 (B, 1 or S, N) of 0/1."""
    if maps.ndim != 4:
        raise ValueError(f"maps must be (B, S, H, W), got shape {tuple(maps.shape)}")
    b, s, h, w = maps.shape
    x = maps.float().reshape(b, s, h * w)
    if valid is None:
        return x, torch.ones(b, 1, h * w, device=maps.device)
    if valid.ndim == 3:  # (B, H, W)
        valid = valid[:, None]
    if (
        valid.ndim != 4
        or valid.shape[0] != b
        or valid.shape[1] not in (1, s)
        or valid.shape[2:] != (h, w)
    ):
        raise ValueError(
            f"valid must be (B, 1, H, W) = ({b}, 1, {h}, {w}) to match maps, got {tuple(valid.shape)}"
        )
    return x, valid.reshape(b, valid.shape[1], h * w).to(x.dtype)


def affected_weights(s: Tensor, threshold: float = 0.5, slope: float = 10.0) -> Tensor:
    """Soft "is affected" weight per pixel: sigmoid(slope * (s - threshold)), same shape as s."""
    return torch.sigmoid(slope * (s - threshold))


def affected_mean(
    maps: Tensor, valid: Tensor | None = None, threshold: float = 0.5, slope: float = 10.0
) -> Tensor:
    """Soft mean severity over the affected area. maps (B, S, H, W) -> (B, S) float32."""
    x, v = _flatten(maps, valid)
    w = affected_weights(x, threshold, slope) * v
    return (w * x).sum(-1) / (w.sum(-1) + _EPS)


def noisy_and(p: Tensor, b: Tensor, a: float) -> Tensor:
    """Kraus et al. Noisy-AND. p: mean instance probability in [0, 1]; b: threshold in [0, 1]
    broadcastable to p; a: slope > 0. Returns the bag probability, same shape as p, on [0, 1]."""
    lo = torch.sigmoid(-a * b)
    hi = torch.sigmoid(a * (1 - b))
    return (torch.sigmoid(a * (p - b)) - lo) / (hi - lo)


class MILPool(nn.Module):
    """Pool per-pixel severity maps into image scores (see the module docstring).

    Args:
        n_signs: S, the number of map channels (one per sign).
        max_score: top of the severity scale (3 for EASI); need not be an integer.
        method: one of mean, max, lse, noisy-and.
        slope: steepness of the soft affected weight and the Noisy-AND slope ``a``.
        lse_r: sharpness r of the log-mean-exp pool.
        affected_threshold: severity from which a pixel counts as affected (0.5: it rounds to >= 1).
    """

    def __init__(
        self,
        n_signs: int,
        max_score: float = 3.0,
        method: str = "mean",
        slope: float = 10.0,
        lse_r: float = 5.0,
        affected_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown MIL pooling {method!r}; allowed: {', '.join(METHODS)}")
        if int(n_signs) < 1:
            raise ValueError(f"n_signs must be >= 1, got {n_signs}")
        if not max_score > 0:
            raise ValueError(f"max_score must be > 0, got {max_score}")
        if not slope > 0 or not lse_r > 0:
            raise ValueError(f"slope and lse_r must be > 0, got slope={slope}, lse_r={lse_r}")
        if not 0 < affected_threshold < max_score:
            raise ValueError(
                f"affected_threshold must lie in (0, max_score={max_score}), got {affected_threshold}"
            )
        self.n_signs = int(n_signs)
        self.max_score = float(max_score)
        self.method = method
        self.slope = float(slope)
        self.lse_r = float(lse_r)
        self.affected_threshold = float(affected_threshold)
        self.n_levels = math.ceil(self.max_score - 1e-9)
        if method == "noisy-and":
            # b = sigmoid(b_logit) starts at 0.5 (the symmetric Noisy-AND) for every sign and level.
            self.b_logit = nn.Parameter(torch.zeros(self.n_signs, self.n_levels))

    @property
    def b(self) -> Tensor:
        """Noisy-AND thresholds (S, K) in (0, 1); only for method 'noisy-and'."""
        return torch.sigmoid(self.b_logit)

    def level_widths(self, device: torch.device | None = None) -> Tensor:
        """(K,) width of each cumulative level: 1, except a shorter last one; they sum to max_score."""
        k = torch.arange(self.n_levels, dtype=torch.float32, device=device)
        return (self.max_score - k).clamp(max=1.0)

    def forward(self, maps: Tensor, valid: Tensor | None = None) -> Tensor:
        """maps: (B, S, H, W) per-pixel severity on 0..max_score; valid: optional (B, 1, H, W)
        bool (False = padding, excluded). Returns (B, S) float32 image scores on 0..max_score
        (0 for an image with no valid pixel)."""
        if maps.ndim == 4 and maps.shape[1] != self.n_signs:
            raise ValueError(
                f"maps have {maps.shape[1]} sign channels, MILPool expects {self.n_signs}"
            )
        x, v = _flatten(maps, valid)
        has_any = v.sum(-1) > 0
        if self.method == "mean":
            out = affected_mean(maps, valid, self.affected_threshold, self.slope)
        elif self.method == "max":
            out = x.masked_fill(v == 0, _NEG).amax(-1)
        elif self.method == "lse":
            r = self.lse_r
            n = v.sum(-1).clamp(min=1)
            out = (torch.logsumexp((r * x).masked_fill(v == 0, _NEG), -1) - n.log()) / r
        else:
            out = self._noisy_and(x, v)
        return torch.where(has_any, out, torch.zeros_like(out))

    def _noisy_and(self, x: Tensor, v: Tensor) -> Tensor:
        widths = self.level_widths(x.device)  # (K,)
        starts = torch.arange(self.n_levels, dtype=x.dtype, device=x.device)  # k - 1
        # p[..., k] = P(severity >= k + 1) per pixel: (B, S, N, K); sum_k widths * p = clamp(s).
        p = ((x[..., None] - starts) / widths).clamp(0.0, 1.0)
        w = affected_weights(x, self.affected_threshold, self.slope) * v  # (B, S, N)
        p_bar = (w[..., None] * p).sum(-2) / (w.sum(-1)[..., None] + _EPS)  # (B, S, K)
        bag = noisy_and(p_bar, self.b, self.slope)  # b: (S, K) broadcasts over B
        return (bag * widths).sum(-1)

    def extra_repr(self) -> str:
        return (
            f"n_signs={self.n_signs}, max_score={self.max_score}, method={self.method!r}, "
            f"slope={self.slope}, lse_r={self.lse_r}, affected_threshold={self.affected_threshold}"
        )
