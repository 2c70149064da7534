"""The tabular branch: age and sex, each possibly unknown, turned into FiLM parameters.

FiLM (feature-wise linear modulation) scales and shifts image feature channels:
features * (1 + gamma) + beta, with gamma, beta predicted from the patient's age and sex.
Unknown values have their own learned embedding; training drops the inputs at random so the
model still works when a clinician leaves them blank.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.data.patient import encode_tabular  # noqa: F401  (the encoding this branch reads)

AGE_SCALE = 100.0


class TabularFiLM(nn.Module):
    """(age, sex) -> per-channel (gamma, beta) for `channels` feature maps.

    age: (B,) float years, NaN = unknown; sex: (B,) long 0 unknown, 1 F, 2 M.
    Returns gamma, beta: (B, channels, 1, 1), zero at initialisation (identity modulation).
    """

    def __init__(self, channels: int, hidden: int = 32, drop_prob: float = 0.2):
        super().__init__()
        self.drop_prob = drop_prob
        self.sex_embed = nn.Embedding(3, hidden)
        self.age_unknown = nn.Parameter(torch.zeros(hidden))
        self.age_proj = nn.Linear(2, hidden)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, age: Tensor, sex: Tensor) -> tuple[Tensor, Tensor]:
        age = age.float()
        known = torch.isfinite(age)
        if self.training and self.drop_prob > 0:
            keep = torch.rand_like(age) >= self.drop_prob
            known = known & keep
            sex = torch.where(torch.rand_like(age) >= self.drop_prob, sex, torch.zeros_like(sex))
        a = torch.where(known, age, torch.zeros_like(age)) / AGE_SCALE
        age_feat = self.age_proj(torch.stack([a, a * a], dim=1))
        age_feat = torch.where(known[:, None], age_feat, self.age_unknown.expand_as(age_feat))
        h = self.mlp(age_feat + self.sex_embed(sex.long()))
        gamma, beta = h.chunk(2, dim=1)
        return gamma[:, :, None, None], beta[:, :, None, None]
