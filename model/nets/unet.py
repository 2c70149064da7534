"""The severity network: [channel mixing] -> U-Net encoder -> FiLM(age, sex) -> decoder -> head.

The head regresses one per-pixel severity per sign, clamped to 0..max_score (a regression
trained with MAE on the unclamped output, not a per-combination classifier): it can score combinations of signs
never seen together in training. With `skin_head`, one more output channel after the signs
is the probability that a pixel is skin (a logit with raw=True), from the same decoder: the
affected area is a fraction of it, at no extra cost per photo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import segmentation_models_pytorch as smp
import torch
from torch import Tensor, nn

from model.nets.mil import MILPool
from model.nets.mixing import ChannelMixing
from model.nets.tabular import TabularFiLM

FILM_MODES = ("none", "deepest", "all")


@dataclass(frozen=True)
class NetConfig:
    """Everything needed to rebuild the network; saved in config.json next to the weights."""

    signs: tuple[str, ...] = ("erythema", "papulation", "excoriation", "lichenification")
    channels: tuple[str, ...] = ("red", "green", "blue")
    max_score: float = 3.0
    encoder: str = "mobilenet_v2"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 16)
    film: str = "deepest"
    mixing: bool = False
    mixing_channels: int = 3
    mixing_temperature: float = 0.1  # softmax temperature of the mixing weights (saved: weights mean nothing without it)
    mil_pool: str = "mean"
    mean: tuple[float, ...] = field(default_factory=tuple)
    std: tuple[float, ...] = field(default_factory=tuple)
    skin_head: bool = False  # one more output channel: skin probability

    def __post_init__(self) -> None:
        if not self.signs:
            raise ValueError("at least one sign is needed")
        if not self.channels:
            raise ValueError("at least one input channel is needed")
        if not self.mixing_temperature > 0:
            raise ValueError(f"mixing_temperature must be > 0, got {self.mixing_temperature}")
        if self.film not in FILM_MODES:
            raise ValueError(f"film must be one of {list(FILM_MODES)}, got {self.film!r}")
        if len(self.decoder_channels) != self.encoder_depth:
            raise ValueError("decoder_channels needs one entry per encoder stage (encoder_depth)")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v and len(v) != len(self.channels):
                raise ValueError(f"{name} needs one value per channel ({len(self.channels)}), got {len(v)}")

    @property
    def n_signs(self) -> int:
        return len(self.signs)

    @property
    def n_outputs(self) -> int:
        """Output channels: one per sign, plus the skin channel with `skin_head`."""
        return len(self.signs) + int(self.skin_head)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown network settings {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class DermSevNet(nn.Module):
    """x: (B, C, H, W) raw input on 0..1 (normalised inside), H and W multiples of 32; age: (B,) years, NaN unknown;
    sex: (B,) long 0 unknown / 1 F / 2 M. Returns maps (B, S, H, W) on 0..max_score, and with
    `skin_head` (B, S + 1, H, W): the last channel the skin probability on 0..1."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        c = len(cfg.channels)
        self.mixing = ChannelMixing(c, cfg.mixing_channels, temperature=cfg.mixing_temperature) if cfg.mixing else None
        unet = smp.Unet(
            encoder_name=cfg.encoder,
            encoder_weights=None,
            encoder_depth=cfg.encoder_depth,
            in_channels=cfg.mixing_channels if cfg.mixing else c,
            classes=cfg.n_outputs,
            decoder_channels=cfg.decoder_channels,
            activation=None,
        )
        self.encoder, self.decoder, self.head = unet.encoder, unet.decoder, unet.segmentation_head
        # A shallower encoder never runs its deeper ResNet stages: drop their weights so the
        # saved model holds only what it uses (resnet18 at depth 4: 11 M -> 3 M parameters).
        for k in range(max(cfg.encoder_depth, 1), 5):
            if hasattr(self.encoder, f"layer{k}"):
                delattr(self.encoder, f"layer{k}")
        feat_ch = list(self.encoder.out_channels)
        self._film_idx = {"none": [], "deepest": [len(feat_ch) - 1], "all": list(range(1, len(feat_ch)))}[cfg.film]
        self._film_ch = [feat_ch[i] for i in self._film_idx]
        self.tabular = TabularFiLM(sum(self._film_ch)) if self._film_idx else None
        self.pool = MILPool(cfg.n_signs, cfg.max_score, method=cfg.mil_pool)
        mean = cfg.mean or (0.5,) * c
        std = cfg.std or (0.25,) * c
        self.register_buffer("in_mean", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1), persistent=False)
        self.register_buffer("in_std", torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1), persistent=False)

    def normalise(self, x: Tensor) -> Tensor:
        """(B, C, H, W) on 0..1 -> standardised with the training set's per-channel statistics."""
        return (x - self.in_mean) / self.in_std

    def forward(self, x: Tensor, age: Tensor | None = None, sex: Tensor | None = None, raw: bool = False) -> Tensor:
        """raw=True returns the unclamped regression (training: an MAE on it never stops
        learning at the bounds, unlike a squashing sigmoid whose saturated tails starve
        lesion pixels of gradient); otherwise maps clamped to 0..max_score."""
        b = x.shape[0]
        x = self.normalise(x)
        if self.mixing is not None:
            x = self.mixing(x)
        features = list(self.encoder(x))
        if self.tabular is not None:
            if age is None:
                age = torch.full((b,), float("nan"), device=x.device)
            if sex is None:
                sex = torch.zeros(b, dtype=torch.long, device=x.device)
            gamma, beta = self.tabular(age, sex)
            start = 0
            for i, ch in zip(self._film_idx, self._film_ch, strict=True):
                g, bt = gamma[:, start : start + ch], beta[:, start : start + ch]
                features[i] = features[i] * (1 + g.to(features[i].dtype)) + bt.to(features[i].dtype)
                start += ch
        logits = self.head(self.decoder(features))
        out = logits.float()
        if raw:
            return out
        maps = out[:, : self.cfg.n_signs].clamp(0.0, self.cfg.max_score)
        if not self.cfg.skin_head:
            return maps
        return torch.cat([maps, torch.sigmoid(out[:, self.cfg.n_signs :])], dim=1)

    def channel_importance(self) -> Tensor | None:
        return None if self.mixing is None else self.mixing.importance()
