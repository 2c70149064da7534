"""MILPool on tiny hand-computed tensors."""

from __future__ import annotations

import math
import re

import pytest
import torch

from model.nets.mil import METHODS, MILPool, affected_mean, noisy_and

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def half_lesion(severity: float, b: int = 1, s: int = 1, h: int = 4, w: int = 4) -> torch.Tensor:
    """Left half of the image at `severity`, right half 0."""
    maps = torch.zeros(b, s, h, w)
    maps[..., : w // 2] = severity
    return maps


# --- Noisy-AND itself -------------------------------------------------------------------


@pytest.mark.parametrize("b", [0.1, 0.5, 0.9])
def test_noisy_and_endpoints_and_hand_value(b: float) -> None:
    a, bt = 10.0, torch.tensor(b)
    assert noisy_and(torch.tensor(0.0), bt, a).item() == pytest.approx(0.0, abs=1e-6)
    assert noisy_and(torch.tensor(1.0), bt, a).item() == pytest.approx(1.0, abs=1e-6)
    p = 0.3
    lo, hi = sigmoid(-a * b), sigmoid(a * (1 - b))
    expected = (sigmoid(a * (p - b)) - lo) / (hi - lo)
    assert noisy_and(torch.tensor(p), bt, a).item() == pytest.approx(expected, rel=1e-5)


def test_noisy_and_symmetric_threshold_maps_half_to_half() -> None:
    assert noisy_and(torch.tensor(0.5), torch.tensor(0.5), 10.0).item() == pytest.approx(0.5)


def test_noisy_and_monotone_in_p_bar() -> None:
    p = torch.linspace(0, 1, 101)
    for b in (0.2, 0.5, 0.8):
        out = noisy_and(p, torch.tensor(b), 10.0)
        assert (out.diff() > 0).all()


# --- MILPool("noisy-and") ---------------------------------------------------------------


def test_pool_noisy_and_all_zero_and_all_max() -> None:
    pool = MILPool(2, max_score=3.0, method="noisy-and")
    assert pool.b.shape == (2, 3)
    assert torch.allclose(pool(torch.zeros(2, 2, 3, 3)), torch.zeros(2, 2), atol=1e-6)
    assert torch.allclose(pool(torch.full((2, 2, 3, 3), 3.0)), torch.full((2, 2), 3.0), atol=1e-5)


def test_pool_noisy_and_per_level_hand_computed() -> None:
    # Whole image at severity 2: P(>=1) = P(>=2) = 1, P(>=3) = 0 -> score 2 for any b.
    pool = MILPool(1, method="noisy-and")
    with torch.no_grad():
        pool.b_logit.copy_(torch.tensor([[-1.0, 0.3, 2.0]]))
    assert pool(torch.full((1, 1, 2, 2), 2.0)).item() == pytest.approx(2.0, abs=1e-5)
    # Half the (affected) image at 3, half at 2: p̄ = (1, 1, 0.5); b = 0.5 gives 0.5 on level 3.
    pool = MILPool(1, method="noisy-and")
    maps = torch.full((1, 1, 2, 2), 2.0)
    maps[..., 0] = 3.0
    assert pool(maps).item() == pytest.approx(2.5, abs=1e-4)


def test_pool_noisy_and_monotone_in_severity() -> None:
    pool = MILPool(1, method="noisy-and")
    scores = [pool(half_lesion(v)).item() for v in torch.linspace(0.6, 3.0, 13).tolist()]
    assert all(b > a for a, b in zip(scores, scores[1:], strict=False))


def test_pool_noisy_and_non_integer_max_score() -> None:
    pool = MILPool(1, max_score=2.5, method="noisy-and")
    assert pool.n_levels == 3
    assert pool.level_widths().tolist() == [1.0, 1.0, 0.5]
    assert pool(torch.full((1, 1, 2, 2), 2.5)).item() == pytest.approx(2.5, abs=1e-5)
    assert pool(torch.zeros(1, 1, 2, 2)).item() == pytest.approx(0.0, abs=1e-6)


def test_pool_noisy_and_gradients_reach_maps_and_b() -> None:
    pool = MILPool(2, method="noisy-and")
    maps = (torch.rand(2, 2, 4, 4, generator=torch.Generator().manual_seed(0)) * 3).requires_grad_()
    pool(maps).sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0
    assert pool.b_logit.grad is not None and pool.b_logit.grad.abs().sum() > 0
    assert torch.isfinite(maps.grad).all()
    assert "b_logit" in pool.state_dict()


# --- mean / max / lse --------------------------------------------------------------------


def test_mean_is_over_affected_area_not_whole_image() -> None:
    score = MILPool(1, method="mean")(half_lesion(2.0)).item()
    # Hand value: 8 pixels at 2 (w = sigmoid(15)), 8 at 0 (w = sigmoid(-5)).
    w1, w0 = sigmoid(15), sigmoid(-5)
    assert score == pytest.approx(8 * w1 * 2 / (8 * w1 + 8 * w0), rel=1e-5)
    assert score == pytest.approx(2.0, abs=0.03)


def test_max_and_lse_hand_values() -> None:
    maps = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert MILPool(1, method="max")(maps).item() == pytest.approx(3.0)
    r = 5.0
    expected = math.log(sum(math.exp(r * v) for v in (0, 1, 2, 3)) / 4) / r
    assert MILPool(1, method="lse", lse_r=r)(maps).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_all_zero_map_scores_zero(method: str) -> None:
    assert MILPool(3, method=method)(torch.zeros(2, 3, 5, 5)).abs().max().item() < 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_valid_mask_excludes_padding(method: str) -> None:
    inner = torch.rand(1, 2, 4, 4) * 3
    padded = torch.full((1, 2, 6, 6), 3.0)  # padding at max severity would dominate if counted
    padded[..., 1:5, 1:5] = inner
    valid = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    valid[..., 1:5, 1:5] = True
    pool = MILPool(2, method=method)
    assert torch.allclose(pool(padded, valid), pool(inner), atol=1e-5)
    assert not torch.allclose(pool(padded), pool(inner), atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_no_valid_pixel_gives_zero_and_finite_gradient(method: str) -> None:
    maps = torch.rand(1, 1, 3, 3).requires_grad_()
    out = MILPool(1, method=method)(maps, torch.zeros(1, 1, 3, 3, dtype=torch.bool))
    out.sum().backward()
    assert out.item() == 0.0 and torch.isfinite(maps.grad).all()


@pytest.mark.parametrize("method", METHODS)
def test_output_in_range_and_gradients(method: str) -> None:
    maps = (torch.rand(2, 3, 6, 6) * 3).requires_grad_()
    out = MILPool(3, method=method)(maps)
    assert out.min() >= -1e-6 and out.max() <= 3.0 + 1e-5
    out.sum().backward()
    assert maps.grad.abs().sum() > 0


def test_affected_mean_matches_pool() -> None:
    maps = torch.rand(2, 3, 4, 4) * 3
    assert torch.allclose(affected_mean(maps), MILPool(3)(maps))


def test_bf16_maps_give_float32_scores() -> None:
    out = MILPool(2, method="noisy-and")(torch.rand(1, 2, 4, 4).to(torch.bfloat16))
    assert out.dtype == torch.float32


# --- shapes and arguments ----------------------------------------------------------------

SHAPE_CASES = (
    [[{"n_signs": 1, "method": m}, (1, 1, 8, 8), (1, 1)] for m in METHODS]
    + [[{"n_signs": 4, "method": m}, (3, 4, 5, 7), (3, 4)] for m in METHODS]
    + [
        [{"n_signs": 2, "method": "noisy-and", "max_score": 4}, (2, 2, 1, 1), (2, 2)],
        [{"n_signs": 6, "method": "lse", "lse_r": 1.0}, (1, 6, 16, 3), (1, 6)],
    ]
)


@pytest.mark.parametrize("kwargs, in_shape, out_shape", SHAPE_CASES)
def test_shape(kwargs: dict, in_shape: tuple, out_shape: tuple) -> None:
    assert MILPool(**kwargs)(torch.rand(in_shape) * 3).shape == out_shape


ILL_ARGS = [
    [{"n_signs": 4, "method": "median"}, "unknown MIL pooling 'median'"],
    [{"n_signs": 0}, "n_signs must be >= 1, got 0"],
    [{"n_signs": 4, "max_score": 0}, "max_score must be > 0, got 0"],
    [{"n_signs": 4, "slope": 0}, "slope and lse_r must be > 0, got slope=0,"],
    [{"n_signs": 4, "lse_r": -1}, "slope and lse_r must be > 0, got slope=10.0, lse_r=-1"],
    [{"n_signs": 4, "affected_threshold": 3.0}, "affected_threshold must lie in (0, max_score=3.0), got 3.0"],
]


@pytest.mark.parametrize("kwargs, message", ILL_ARGS)
def test_ill_args(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MILPool(**kwargs)


def test_bad_method_message_names_allowed() -> None:
    with pytest.raises(ValueError, match="mean, max, lse, noisy-and"):
        MILPool(4, method="median")


def test_bad_input_shapes() -> None:
    pool = MILPool(2)
    with pytest.raises(ValueError, match="maps have 3 sign channels, MILPool expects 2"):
        pool(torch.rand(2, 3, 4, 4))  # wrong number of signs
    with pytest.raises(ValueError, match=re.escape("maps must be (B, S, H, W), got shape (2, 4, 4)")):
        pool(torch.rand(2, 4, 4))  # not 4-D
    with pytest.raises(ValueError, match=re.escape("valid must be (B, 1, H, W) = (2, 1, 4, 4) to match maps, "
                                                   "got (2, 1, 3, 4)")):
        pool(torch.rand(2, 2, 4, 4), torch.ones(2, 1, 3, 4, dtype=torch.bool))
