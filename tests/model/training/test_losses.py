"""Training losses on tiny hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from model.training.losses import image_mae, masked_mae

NAN = math.nan


def test_masked_mae_ignores_255() -> None:
    pred = torch.tensor([[[[0.5, 1.0], [2.0, 3.0]]]], requires_grad=True)  # (1, 1, 2, 2)
    target = torch.tensor([[[[0, 255], [1, 255]]]], dtype=torch.uint8)
    loss, n = masked_mae(pred, target)
    assert n.item() == 2
    assert loss.item() == pytest.approx((0.5 + 1.0) / 2)
    loss.backward()
    # d loss / d pred: sign(pred - target) / n on annotated pixels, 0 on ignored ones
    torch.testing.assert_close(pred.grad, torch.tensor([[[[0.5, 0.0], [0.5, 0.0]]]]))


def test_masked_mae_over_signs_and_batch() -> None:
    pred = torch.zeros(2, 3, 1, 2)
    pred[1, 2] = 3.0
    target = torch.full((2, 3, 1, 2), 255, dtype=torch.uint8)
    target[0, 0, 0, 0] = 2  # |0 - 2| = 2
    target[1, 2, 0, 1] = 1  # |3 - 1| = 2
    target[1, 1, 0, 0] = 0  # |0 - 0| = 0
    loss, n = masked_mae(pred, target)
    assert n.item() == 3
    assert loss.item() == pytest.approx(4 / 3)


def test_masked_mae_all_ignored_is_zero_with_a_graph() -> None:
    pred = torch.full((1, 2, 4, 4), 1.7, requires_grad=True)
    loss, n = masked_mae(pred, torch.full((1, 2, 4, 4), 255, dtype=torch.uint8))
    assert n.item() == 0 and loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and (pred.grad == 0).all()


def test_image_mae_ignores_nan_scores() -> None:
    pooled = torch.tensor([[1.0, 2.0], [0.5, 3.0]], requires_grad=True)
    scores = torch.tensor([[1.5, NAN], [0.0, 2.0]])
    use = torch.ones(2, 2, dtype=torch.bool)
    loss, n = image_mae(pooled, scores, use)
    assert n.item() == 3
    assert loss.item() == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    loss.backward()
    assert torch.isfinite(pooled.grad).all()
    assert pooled.grad[0, 1] == 0


def test_image_mae_respects_use() -> None:
    pooled = torch.tensor([[1.0, 2.0], [0.5, 3.0]])
    scores = torch.tensor([[1.5, 0.0], [0.0, 2.0]])
    use = torch.tensor([[False, True], [False, True]])
    loss, n = image_mae(pooled, scores, use)
    assert n.item() == 2
    assert loss.item() == pytest.approx((2.0 + 1.0) / 2)


def test_image_mae_nothing_to_use() -> None:
    loss, n = image_mae(torch.ones(2, 1), torch.tensor([[NAN], [NAN]]), torch.ones(2, 1, dtype=torch.bool))
    assert n.item() == 0 and loss.item() == 0.0



def test_sign_weights_give_a_weighted_mean_over_signs() -> None:
    pred = torch.zeros(1, 2, 1, 2, requires_grad=True)
    target = torch.tensor([[[[1, 255]], [[3, 2]]]], dtype=torch.uint8)  # errors 1 | 3, 2
    loss, n = masked_mae(pred, target, torch.tensor([1.0, 3.0]))
    assert n.item() == 3
    assert loss.item() == pytest.approx((1 * 1 + 3 * (3 + 2)) / (1 + 3 * 2))
    loss.backward()
    torch.testing.assert_close(pred.grad, -torch.tensor([[[[1.0, 0.0]], [[3.0, 3.0]]]]) / 7)
    # equal weights are the plain mean; a zero weight drops the sign
    assert masked_mae(pred, target, torch.tensor([2.0, 2.0]))[0].item() == pytest.approx(6 / 3)
    assert masked_mae(pred, target, torch.tensor([0.0, 1.0]))[0].item() == pytest.approx(5 / 2)


def test_image_mae_sign_weights() -> None:
    pooled = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    scores = torch.tensor([[0.0, 2.0], [NAN, 1.0]])
    use = torch.ones(2, 2, dtype=torch.bool)
    loss, n = image_mae(pooled, scores, use, torch.tensor([1.0, 0.5]))
    assert n.item() == 3
    assert loss.item() == pytest.approx((1 + 0.5 * 2 + 0.5 * 1) / (1 + 0.5 + 0.5))


def test_masked_mae_bounds_make_overshoot_at_the_ends_free() -> None:
    # truths 0, 0, 3, 3, 1 and predictions below 0, above 0, above 3, below 3, below 0
    target = torch.tensor([0, 0, 3, 3, 1], dtype=torch.uint8).view(1, 1, 1, 5)
    pred = torch.tensor([-0.5, 0.25, 3.5, 2.5, -1.0], requires_grad=True).view(1, 1, 1, 5)
    plain, _ = masked_mae(pred, target)
    bounded, _ = masked_mae(pred, target, max_score=3.0)
    assert plain.item() == pytest.approx((0.5 + 0.25 + 0.5 + 0.5 + 2.0) / 5)
    # only -0.5 for a 0 and 3.5 for a 3 are free; undershooting a 1 still costs its full 2.0
    assert bounded.item() == pytest.approx((0.25 + 0.5 + 2.0) / 5)
    (grad,) = torch.autograd.grad(bounded, pred)
    assert grad.flatten().tolist() == pytest.approx([0.0, 0.2, 0.0, -0.2, -0.2])
