"""DermSevNet: shapes, bounds and gradients over signs x channels x FiLM; the tabular branch."""

from __future__ import annotations

import math

import pytest
import torch

from model.nets.tabular import TabularFiLM, encode_tabular
from model.nets.unet import DermSevNet, NetConfig

TINY = {"decoder_channels": (16, 8, 8, 8, 8)}
NAN = float("nan")


def net_for(**kw) -> DermSevNet:
    torch.manual_seed(0)
    return DermSevNet(NetConfig(**{**TINY, **kw}))


def names(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(n))


# [signs, channels, film, with tabular inputs, extra NetConfig settings]
CASES = [
    (1, 1, "none", False, {}),
    (2, 2, "deepest", True, {}),
    (3, 3, "all", True, {}),
    (4, 3, "deepest", False, {}),
    (5, 4, "all", False, {}),
    (1, 5, "deepest", True, {"mixing": True}),
    (4, 6, "none", True, {"mixing": True, "mixing_channels": 2}),
    (5, 6, "deepest", True, {"encoder": "resnet18", "max_score": 4.0}),
    (2, 1, "all", True, {"max_score": 1.0}),
]


@pytest.mark.parametrize("n_signs, n_channels, film, tabular, extra", CASES)
def test_forward_backward_shapes(n_signs: int, n_channels: int, film: str, tabular: bool, extra: dict) -> None:
    net = net_for(signs=names("s", n_signs), channels=names("c", n_channels), film=film, **extra)
    net.train()
    x = torch.rand(2, n_channels, 64, 64, requires_grad=True)
    args = (torch.tensor([35.0, NAN]), torch.tensor([1, 0])) if tabular else ()
    out = net(x, *args)
    assert out.shape == (2, n_signs, 64, 64)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    max_score = extra.get("max_score", 3.0)
    assert out.min() >= 0 and out.max() <= max_score
    out.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    first_conv = next(p for n, p in net.encoder.named_parameters() if p.dim() == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    head = net.head[0].weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    if film == "none":
        assert net.tabular is None
    else:  # the tabular branch learns: its output layer gets a gradient from the first step
        assert net.tabular.mlp[-1].weight.grad.abs().sum() > 0
    if extra.get("mixing"):
        imp = net.channel_importance()
        assert imp.shape == (n_channels,) and torch.all(imp >= 0)
        assert imp.sum().item() == pytest.approx(1.0, abs=1e-5)
    else:
        assert net.channel_importance() is None


@pytest.mark.parametrize("h, w", [(32, 96), (96, 64)])
def test_non_square_inputs(h: int, w: int) -> None:
    net = net_for().eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, h, w)).shape == (1, 4, h, w)


def nonzero_film(net: DermSevNet) -> DermSevNet:
    """Give the FiLM output layer weights, as training would (it starts at zero)."""
    torch.manual_seed(1)
    with torch.no_grad():
        torch.nn.init.normal_(net.tabular.mlp[-1].weight, std=0.5)
        torch.nn.init.normal_(net.tabular.mlp[-1].bias, std=0.5)
    return net.eval()


def run(net: DermSevNet, x: torch.Tensor, age: float | None, sex: str | None) -> torch.Tensor:
    a, s = encode_tabular(age, sex)
    with torch.no_grad():
        return net(x, torch.full((x.shape[0],), a), torch.full((x.shape[0],), s, dtype=torch.long))


@pytest.mark.parametrize("film", ["deepest", "all"])
def test_age_and_sex_change_the_output_once_film_is_trained(film: str) -> None:
    net = net_for(film=film).eval()
    x = torch.rand(2, 3, 64, 64)
    # at initialisation FiLM is the identity: tabular inputs change nothing yet
    torch.testing.assert_close(run(net, x, 20, "F"), run(net, x, 70, "M"), rtol=0, atol=0)
    nonzero_film(net)
    base = run(net, x, 20, "F")
    assert (run(net, x, 70, "F") - base).abs().max() > 1e-4  # age matters
    assert (run(net, x, 20, "M") - base).abs().max() > 1e-4  # sex matters
    unknown = run(net, x, None, None)
    assert torch.isfinite(unknown).all()
    assert (unknown - base).abs().max() > 1e-4  # "unknown" is its own learned value
    with torch.no_grad():  # omitted inputs mean unknown
        torch.testing.assert_close(net(x), unknown)


def test_film_none_ignores_age_and_sex() -> None:
    net = net_for(film="none").eval()
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(run(net, x, 20, "F"), run(net, x, 80, "M"), rtol=0, atol=0)


def test_nan_age_gives_finite_gradients() -> None:
    net = net_for(film="all")
    nonzero_film(net).train()
    out = net(torch.rand(2, 3, 64, 64), torch.tensor([NAN, NAN]), torch.tensor([0, 2]))
    out.sum().backward()
    for name, p in net.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


def test_tabular_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    film = TabularFiLM(channels=4, drop_prob=0.5)
    torch.nn.init.normal_(film.mlp[-1].weight)
    age, sex = torch.full((256,), 50.0), torch.full((256,), 2)
    film.eval()
    g_eval, _ = film(age, sex)
    assert torch.allclose(g_eval, g_eval[:1].expand_as(g_eval))  # no dropout: all rows equal
    film.train()
    g_train, _ = film(age, sex)
    differs = (g_train - g_eval).abs().amax(dim=(1, 2, 3)) > 1e-6
    assert 0.3 < differs.float().mean() < 0.95  # some rows dropped to "unknown", not all


@pytest.mark.parametrize(
    "age, sex, expected",
    [(None, None, (math.nan, 0)), (40, "F", (40.0, 1)), (0, "m", (0.0, 2)), (7.5, "", (7.5, 0))],
)
def test_encode_tabular(age, sex, expected) -> None:
    a, s = encode_tabular(age, sex)
    assert s == expected[1]
    assert (math.isnan(a) and math.isnan(expected[0])) or a == expected[0]


def test_encode_tabular_rejects_other_sex() -> None:
    with pytest.raises(ValueError, match="sex"):
        encode_tabular(30, "X")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"signs": ()}, "sign"),
        ({"channels": ()}, "channel"),
        ({"film": "late"}, "deepest"),
        ({"decoder_channels": (16, 8, 8)}, "decoder_channels"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.2,) * 4}, "std"),
    ],
)
def test_net_config_ill_args(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        NetConfig(**kwargs)


def test_net_config_dict_round_trip() -> None:
    cfg = NetConfig(signs=("a", "b"), channels=names("c", 5), mixing=True, film="all",
                    mean=(0.1,) * 5, std=(0.2,) * 5, **TINY)
    d = cfg.to_dict()
    import json

    assert NetConfig.from_dict(json.loads(json.dumps(d))) == cfg  # lists come back as tuples
    with pytest.raises(ValueError, match="unknown"):
        NetConfig.from_dict({**d, "dropout": 0.1})


def test_input_normalisation_uses_config_statistics() -> None:
    net = net_for(channels=names("c", 2), mean=(0.2, 0.6), std=(0.1, 0.3))
    x = torch.tensor([0.2, 0.9]).view(1, 2, 1, 1)
    torch.testing.assert_close(net.normalise(x).flatten(), torch.tensor([0.0, 1.0]))
