"""The input channel mixing layer: shapes for 1..8 channels, weights, bad arguments, recovery."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from model.nets.mixing import ChannelMixing, spread_weights
from model.nets.unet import DermSevNet, NetConfig

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("c", range(1, 9))
@pytest.mark.parametrize("k", [1, 3, 4])
def test_spread_start_is_convex_diverse_and_fair(c: int, k: int) -> None:
    w = spread_weights(c, k)
    assert w.shape == (k, c)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(k))
    torch.testing.assert_close(w.mean(0), torch.full((c,), 1 / c))  # every channel starts equally important
    if c >= k:  # composites start different: no two rows share a dominant channel
        assert len(set(w.argmax(1).tolist())) == k


def test_spread_start_is_identity_for_as_many_composites_as_channels() -> None:
    torch.testing.assert_close(spread_weights(3, 3), torch.eye(3))
    m = ChannelMixing(3, 3)
    assert (m.weights().argmax(1) == torch.arange(3)).all()
    torch.testing.assert_close(m.weights(), 0.5 * torch.eye(3) + 0.5 / 3)  # half spread, half uniform


@pytest.mark.parametrize("c", range(1, 9))
def test_shapes_and_weights(c: int) -> None:
    m = ChannelMixing(c, 3)
    x = torch.randn(2, c, 16, 24)
    assert m(x).shape == (2, 3, 16, 24)
    w = m.weights()
    assert w.shape == (3, c)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    imp = m.importance().detach()
    assert imp.shape == (c,)
    assert (imp >= 0).all()
    assert float(imp.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(imp, torch.full((c,), 1 / c), atol=0.01)  # near uniform at the start
    with torch.no_grad():
        assert 0 <= float(m.entropy()) <= math.log(c) + 1e-6
        assert 0 <= float(m.channel_entropy()) <= math.log(c) + 1e-6


@pytest.mark.parametrize("init", ["spread", "uniform"])
@pytest.mark.parametrize("learn_rows", [False, True])
def test_start_does_not_depend_on_temperature(init: str, learn_rows: bool) -> None:
    torch.manual_seed(1)
    a = ChannelMixing(5, 3, temperature=1.0, init=init, learn_rows=learn_rows).weights()
    torch.manual_seed(1)
    b = ChannelMixing(5, 3, temperature=0.05, init=init, learn_rows=learn_rows).weights()
    torch.testing.assert_close(a, b)


def test_uniform_start_blends_all_channels_equally() -> None:
    m = ChannelMixing(4, 2, init="uniform")
    torch.testing.assert_close(m.weights(), torch.full((2, 4), 0.25))


def test_forward_is_the_convex_blend() -> None:
    m = ChannelMixing(4, 2)
    with torch.no_grad():
        m.scale.fill_(2.0)
        m.bias.fill_(0.5)
    x = torch.randn(3, 4, 8, 8)
    expected = torch.einsum("kc,bchw->bkhw", m.weights(), x) * 2.0 + 0.5
    torch.testing.assert_close(m(x), expected)


def test_only_the_gate_learns_by_default() -> None:
    m = ChannelMixing(5, 3)
    names = {n for n, _ in m.named_parameters()}
    assert names == {"gate", "scale", "bias"} and "logits" in m.state_dict()
    m(torch.randn(2, 5, 8, 8)).pow(2).mean().backward()
    assert m.gate.grad is not None and m.gate.grad.abs().sum() > 0
    torch.testing.assert_close(m.importance(), torch.full((5,), 0.2))  # exact start: 1/C each


def test_learned_rows_get_gradients() -> None:
    m = ChannelMixing(5, 3, learn_rows=True)
    m(torch.randn(2, 5, 8, 8)).pow(2).mean().backward()
    assert m.logits.grad is not None and m.logits.grad.abs().sum() > 0
    assert m.gate.grad is not None and m.gate.grad.abs().sum() > 0


def test_bf16_autocast_forward() -> None:
    m = ChannelMixing(6, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(torch.randn(1, 6, 8, 8))
    assert y.shape == (1, 3, 8, 8) and torch.isfinite(y.float()).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"in_channels": 0}, "in_channels must be a whole number >= 1, got 0"),
        ({"in_channels": -2}, "in_channels must be a whole number >= 1, got -2"),
        ({"in_channels": 2.5}, "in_channels must be a whole number >= 1, got 2.5"),
        ({"in_channels": True}, "in_channels must be a whole number >= 1, got True"),
        ({"out_channels": 0}, "out_channels must be a whole number >= 1, got 0"),
        ({"temperature": 0}, "temperature must be a positive number, got 0"),
        ({"temperature": -1.0}, "temperature must be a positive number, got -1.0"),
        ({"temperature": float("nan")}, "temperature must be a positive number, got nan"),
        ({"temperature": float("inf")}, "temperature must be a positive number, got inf"),
        ({"init": "random"}, "init must be one of ['spread', 'uniform'], got 'random'"),
        ({"init_std": -0.1}, "init_std must be a number >= 0, got -0.1"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    args = {"in_channels": 4, "out_channels": 3, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        ChannelMixing(**args)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (4, 8, 8), (1, 5, 8, 8, 1)])
def test_wrong_input_shape_raises_value_error(shape: tuple) -> None:
    with pytest.raises(ValueError, match="expected"):
        ChannelMixing(4, 3)(torch.randn(*shape))


def test_state_dict_round_trip() -> None:
    a = ChannelMixing(6, 3)
    with torch.no_grad():
        a.gate.copy_(torch.arange(6.0) / 10)
    b = ChannelMixing(6, 3)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.importance(), b.importance())


@pytest.mark.parametrize("c", range(1, 9))
def test_network_with_mixing_any_channel_count(c: int) -> None:
    cfg = NetConfig(signs=("a", "b"), channels=tuple(f"ch{i}" for i in range(c)), mixing=True)
    net = DermSevNet(cfg).eval()
    assert net.mixing is not None and net.mixing.in_channels == c
    with torch.no_grad():
        out = net(torch.rand(1, c, 64, 64), torch.tensor([40.0]), torch.tensor([1]))
    assert out.shape == (1, 2, 64, 64)
    assert float(out.min()) >= 0 and float(out.max()) <= cfg.max_score
    imp = net.channel_importance()
    assert imp is not None and imp.shape == (c,)
    imp = imp.detach()
    assert (imp >= 0).all() and float(imp.sum()) == pytest.approx(1.0, abs=1e-6)


def test_network_without_mixing_has_no_learned_importance() -> None:
    assert DermSevNet(NetConfig(channels=("r", "g", "b", "uv"))).channel_importance() is None


def _recovery_task(n: int, c: int, informative: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random smooth images; the target map (0..3) is a nonlinear function of one channel only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, size // 4, size // 4, generator=g)
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.05 * torch.randn(n, c, size, size, generator=g)
    t = 3 * torch.sigmoid(12 * (x[:, informative : informative + 1] - 0.5))
    return (x - 0.5) / 0.25, t


def _fit_mixing(x: torch.Tensor, t: torch.Tensor, steps: int, **kw) -> ChannelMixing:
    """ChannelMixing + a tiny conv net, Adam at the training default lr, MAE loss (as in training)."""
    mix = ChannelMixing(x.shape[1], 3, **kw)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 1, 1))
    params = list(mix.parameters()) + list(body.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        b = torch.randint(0, x.shape[0], (16,), generator=g)
        loss = (3 * torch.sigmoid(body(mix(x[b]))) - t[b]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mix


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_the_one_informative_channel(seed: int) -> None:
    torch.manual_seed(seed)
    x, t = _recovery_task(128, 4, informative=2, seed=seed)
    imp = _fit_mixing(x, t, steps=300).importance().detach()
    assert int(imp.argmax()) == 2, imp
    assert float(imp[2]) > 0.5, imp


def test_recovers_informative_channels_among_noise() -> None:
    """Two informative channels (one sign each) among four noise channels: both rank first."""
    x, _ = _recovery_task(128, 6, informative=1, seed=3)
    t = 1.5 * torch.sigmoid(12 * (x[:, 1:2] * 0.25)) + 1.5 * torch.sigmoid(12 * (x[:, 4:5] * 0.25))
    imp = _fit_mixing(x, t, steps=300).importance().detach()
    top2 = set(imp.argsort(descending=True)[:2].tolist())
    assert top2 == {1, 4}, imp
    assert float(imp[[0, 2, 3, 5]].max()) < 1 / 6, imp
