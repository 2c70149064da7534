"""Saliency on tiny hand-built forwards (no dependency on model/nets/unet.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from model.explain.saliency import explain_image, project, saliency
from model.inference.predictor import Prepared
from model.nets.mil import MILPool

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def relu_net(c: int, s: int = 2, inplace: bool = False) -> nn.Module:
    """Conv-ReLU-conv-ReLU-conv to S maps, squashed onto 0..3 as the real network's head."""
    net = nn.Sequential(
        nn.Conv2d(c, 4, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(4, s, 1),
    )
    return nn.Sequential(net, nn.Sigmoid(), _Scale(3.0)).eval()


class _Scale(nn.Module):
    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k * x


def channel2_only(c: int = 4) -> nn.Module:
    """1x1 conv whose only non-zero weight reads input channel 2."""
    conv = nn.Conv2d(c, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 2] = 1.0
        conv.bias.fill_(0.5)
    return conv


@pytest.mark.parametrize("method", ["gradient", "jacobian"])
@pytest.mark.parametrize("c", [1, 3, 6])
def test_shape_dtype_non_negative(c: int, method: str) -> None:
    x = torch.randn(1, c, 12, 10)
    sal = saliency(relu_net(c), x, sign=1, method=method)
    assert sal.shape == (c, 12, 10)
    assert sal.dtype == torch.float32
    assert (sal >= 0).all()


def test_mass_on_the_channel_the_forward_reads() -> None:
    sal = saliency(channel2_only(), torch.randn(1, 4, 6, 6), sign=0)
    assert sal[2].sum() > 0
    assert sal[[0, 1, 3]].abs().sum() == 0


def test_gradient_hand_value_with_plain_mean_pool() -> None:
    # score = mean over 36 pixels of (x[2] + 0.5) -> d score / d x[2] = 1/36 everywhere.
    sal = saliency(channel2_only(), torch.randn(1, 4, 6, 6), 0, pool=lambda m: m.mean(dim=(2, 3)))
    assert torch.allclose(sal[2], torch.full((6, 6), 1 / 36))


def test_pixel_outside_receptive_field_gets_zero() -> None:
    # 3x3 conv, score pooled over the top-left 2x2 of the map only: pixels with row or
    # column >= 3 cannot reach it.
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU())
    pool = lambda m: m[:, :, :2, :2].mean(dim=(2, 3))  # noqa: E731
    for method in ("gradient", "jacobian"):
        sal = saliency(net, torch.randn(1, 3, 8, 8), 1, pool=pool, method=method)
        assert sal[:, 3:, :].sum() == 0 and sal[:, :, 3:].sum() == 0
    assert saliency(net, torch.randn(1, 3, 8, 8), 1, pool=pool)[:, :3, :3].sum() > 0


def test_default_pool_is_milpool_mean() -> None:
    net, x = relu_net(3), torch.randn(1, 3, 8, 8)
    a = saliency(net, x, 0)
    b = saliency(net, x, 0, pool=MILPool(2, method="mean"))
    assert torch.allclose(a, b)


@pytest.mark.parametrize("inplace", [False, True])
def test_jacobian_differs_from_gradient_on_relu_net(inplace: bool) -> None:
    net, x = relu_net(3, inplace=inplace), torch.randn(1, 3, 10, 10)
    grad = saliency(net, x, 0, method="gradient")
    jac = saliency(net, x, 0, method="jacobian")
    assert jac.shape == grad.shape == (3, 10, 10)
    assert not torch.allclose(jac, grad)
    assert (jac >= 0).all()


def test_jacobian_without_relu_is_positive_gradient() -> None:
    net, x = channel2_only(), torch.randn(1, 4, 5, 5)
    pool = lambda m: m.mean(dim=(2, 3))  # noqa: E731
    assert torch.allclose(
        saliency(net, x, 0, pool=pool, method="jacobian"), saliency(net, x, 0, pool=pool)
    )


def test_leaves_model_and_input_untouched_and_works_in_inference_mode() -> None:
    net, x = relu_net(3), torch.randn(1, 3, 8, 8)
    before = saliency(net, x, 1)
    with torch.inference_mode():
        sal = saliency(net, x, 1, method="jacobian")
    assert sal.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert x.grad is None and not x.requires_grad
    # the ReLU hooks are gone afterwards: the plain gradient is unchanged
    assert torch.equal(saliency(net, x, 1), before)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "smoothgrad"}, "unknown saliency method 'smoothgrad'; allowed: gradient, jacobian"),
        ({"sign": 5}, "sign index 5 out of range for 2 signs"),
    ],
)
def test_ill_args(kwargs: dict, message: str) -> None:
    args = {"forward": relu_net(3), "x": torch.randn(1, 3, 4, 4), "sign": 0} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        saliency(**args)


def test_ill_input_shape() -> None:
    with pytest.raises(ValueError, match=re.escape("x must be one image (1, C, H, W), got shape (2, 3, 4, 4)")):
        saliency(relu_net(3), torch.randn(2, 3, 4, 4), 0)


def test_project() -> None:
    sal = torch.zeros(3, 4, 5)
    sal[0, 1, 1], sal[2, 1, 1], sal[1, 3, 4] = 1.0, 1.0, 0.5
    out = project(sal, percentile=100)
    assert out.shape == (4, 5) and out.dtype == np.float32
    assert out[1, 1] == pytest.approx(1.0) and out[3, 4] == pytest.approx(0.25)
    assert out.min() >= 0 and out.max() <= 1
    one_pixel = np.zeros((2, 10, 10), dtype=np.float32)
    one_pixel[1, 4, 4] = 3.0  # 99th percentile is 0 -> normalised by the max instead
    assert project(one_pixel)[4, 4] == pytest.approx(1.0)
    assert project(one_pixel).sum() == pytest.approx(1.0)
    assert not project(np.zeros((2, 3, 3))).any()
    with pytest.raises(ValueError, match=re.escape("saliency must be (C, H, W), got shape (1, 2, 3, 3)")):
        project(np.zeros((1, 2, 3, 3)))


class _FakeNet(nn.Module):
    """(x, age, sex) -> (B, 2, H, W) maps on 0..3; sign 0 reads channel 0, sign 1 channel 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 4.0
            self.conv.weight[1, 2] = 4.0
            self.conv.bias.fill_(-2.0)

    def forward(self, x, age=None, sex=None):
        assert age is not None and sex is not None
        return 3 * torch.sigmoid(torch.relu(self.conv(x)))


class _FakePredictor:
    """Duck-typed model.inference.predictor.Predictor: an 20x24 image padded to 32x32."""

    signs = ["erythema", "papulation"]
    channels = ["red", "green", "blue"]
    thresholds = [0.5, 1.5, 2.5]

    def __init__(self) -> None:
        self.net = _FakeNet()

    def prepare(self, image):
        x = np.zeros((3, 32, 32), np.float32)
        x[:, :20, :24] = np.asarray(image, np.float32).transpose(2, 0, 1)
        return Prepared(np.asarray(image), x, (20, 24), (20, 24))


@pytest.mark.parametrize("method", ["gradient", "jacobian"])
def test_explain_image_with_a_predictor(method: str) -> None:
    img = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    out = explain_image(_FakePredictor(), img, age=40, sex="F", method=method)
    assert out["size"] == (20, 24) and out["image"].shape == (20, 24, 3)
    for sign, channel in (("erythema", "red"), ("papulation", "blue")):
        assert out["saliency"][sign].shape == (3, 20, 24)
        assert out["projected"][sign].shape == (20, 24)
        share = out["channel_share"][sign]
        assert sum(share.values()) == pytest.approx(1.0)
        assert share[channel] == pytest.approx(1.0)
        assert 0 <= out["scores"][sign] <= 3
    with pytest.raises(ValueError, match="sex must be F or M, or left unknown; got 'X'"):
        explain_image(_FakePredictor(), img, sex="X")
