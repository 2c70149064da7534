"""The "unknown" embeddings fitted after training: a blank age or sex gets a fitted hedge, and
predictions with a known age and sex do not change at all."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from model.nets.unet import DermSevNet
from model.training.unknown import calibrate_unknown, hide
from tests.conftest import tiny_config


def _batches(n: int = 8, size: int = 32) -> list[dict]:
    """A task only age can solve: the target is 3 where age >= 50, 0 elsewhere, on noise images."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        age = torch.randint(20, 80, (4,), generator=g).float()
        target = (age >= 50).float()[:, None, None, None] * 3
        out.append({"image": torch.rand(4, 3, size, size, generator=g), "age": age,
                    "sex": torch.randint(1, 3, (4,), generator=g), "masks": target.expand(4, 1, size, size).clone()})
    return out


def _loss(net: DermSevNet, batch: dict) -> tuple[torch.Tensor, dict]:
    out = net(batch["image"], batch["age"], batch["sex"], raw=True)
    return (out[:, :1] - batch["masks"]).abs().mean(), {}


def test_hide_blanks_age_sex_or_both() -> None:
    age, sex = torch.full((300,), 40.0), torch.full((300,), 2)
    a, s = hide(age, sex, torch.Generator().manual_seed(0))
    lost_age, lost_sex = torch.isnan(a), s == 0
    assert (lost_age | lost_sex).all()  # every sample loses something
    for kind in (lost_age & ~lost_sex, ~lost_age & lost_sex, lost_age & lost_sex):
        assert 70 < int(kind.sum()) < 130  # about a third each
    assert (a[~lost_age] == 40).all() and (s[~lost_sex] == 2).all()


def test_calibration_fits_only_the_unknown_embeddings() -> None:
    torch.manual_seed(0)
    net = DermSevNet(tiny_config(signs=("severity",), film="all"))
    data = _batches()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(3):  # learn to use age a little, with age always known
        for b in data:
            opt.zero_grad()
            _loss(net, b)[0].backward()
            opt.step()
    net.eval()
    x, age, sex = data[0]["image"], data[0]["age"], data[0]["sex"]
    with torch.no_grad():
        known_before = net(x, age, sex)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = calibrate_unknown(net, DataLoader(data, batch_size=None), _loss, steps=40, autocast=nullcontext)
    assert len(losses) == 40
    assert sum(losses[-8:]) < sum(losses[:8])  # the hidden-input loss fell
    with torch.no_grad():
        assert torch.equal(net(x, age, sex), known_before)  # a known age and sex: not one bit changed
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"tabular.age_unknown", "tabular.sex_embed.weight"}
    assert torch.equal(after["tabular.sex_embed.weight"][1:], before["tabular.sex_embed.weight"][1:])
    assert all(p.requires_grad for p in net.parameters()) and not net.training


def test_no_tabular_branch_is_left_alone() -> None:
    net = DermSevNet(tiny_config(signs=("severity",), film="none"))
    assert calibrate_unknown(net, DataLoader(_batches(1), batch_size=None), _loss, 5, nullcontext) == []


def test_training_fits_the_unknown_embeddings(tmp_path: Path, synth_dataset: Path) -> None:
    """The default recipe ends with the calibration: the same run with it off gives the same
    weights but for the unknown-age vector and the unknown-sex row."""
    from model.nets.modeldir import load_network
    from model.training.train import TrainConfig, train

    tiny = {"image_size": 64, "batch_size": 4, "precision": "fp32", "epochs": 1}
    nets = {}
    for on in (True, False):
        train(synth_dataset, tmp_path / str(on), TrainConfig(calibrate_unknown=on, **tiny), progress=False)
        nets[on] = load_network(tmp_path / str(on))[0].state_dict()
    differ = {k for k in nets[True] if not torch.equal(nets[True][k], nets[False][k])}
    assert differ == {"tabular.age_unknown", "tabular.sex_embed.weight"}
    emb = [nets[on]["tabular.sex_embed.weight"] for on in (True, False)]
    assert torch.equal(emb[0][1:], emb[1][1:]) and not torch.equal(emb[0][0], emb[1][0])


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_tabular_dropout_is_checked(p: float) -> None:
    from model.errors import DermsevError
    from model.training.train import TrainConfig

    with pytest.raises(DermsevError, match=r"tabular_dropout must be in \[0, 1\)"):
        TrainConfig(tabular_dropout=p)
