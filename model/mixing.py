"""Interpretable input channel mixing (in the spirit of DCMIX, Siegismund et al. 2023).

C input channels are blended into K composite channels before the encoder; each composite
is a convex combination (alpha compositing with softmax weights) of the inputs, so the
weights are non-negative and sum to 1, and their mean over composites reads as channel
importance.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelMixing(nn.Module):
    """(B, C, H, W) -> (B, K, H, W); weights softmax(logits) of shape (K, C).

    A per-input affine normalisation before blending lets channels of different ranges mix.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, temperature: float = 1.0):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        self.in_channels, self.out_channels, self.temperature = in_channels, out_channels, temperature
        # Small random logits so composites start different yet near uniform.
        self.logits = nn.Parameter(0.01 * torch.randn(out_channels, in_channels))
        self.scale = nn.Parameter(torch.ones(out_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels, 1, 1))

    def weights(self) -> Tensor:
        """(K, C) non-negative, each row sums to 1."""
        return torch.softmax(self.logits / self.temperature, dim=1)

    def importance(self) -> Tensor:
        """(C,) non-negative, sums to 1: how much each input channel feeds the network."""
        return self.weights().mean(dim=0)

    def entropy(self) -> Tensor:
        """Mean row entropy of the weights: a sparsity prior pushes it down."""
        w = self.weights()
        return -(w * torch.log(w + 1e-8)).sum(dim=1).mean()

    def forward(self, x: Tensor) -> Tensor:
        mixed = torch.einsum("kc,bchw->bkhw", self.weights().to(x.dtype), x)
        return mixed * self.scale + self.bias
