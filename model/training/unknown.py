"""What the tabular branch does when age or sex is unknown, learned after training.

Hiding age and sex at random during training (TrainConfig.tabular_dropout) teaches the network
to cope with a blank field, but it costs the known case: on a task where the image alone is
ambiguous without both, 20 % (or even 5 %) dropout doubled the pixel error against none
(docs/recipe_ablation.md). So by default the network trains with both always given, and then
`calibrate_unknown` fits only the two "unknown" embeddings (age unknown, sex unknown) on the
training images with age, sex or both hidden, every other weight frozen: predictions with a
known age and sex do not change at all, and an unknown one gets the modulation that fits the
training set best (the hedge a clinician's blank field deserves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from model.nets.unet import DermSevNet


def hide(age: torch.Tensor, sex: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample loses its age, its sex or both (a third each): (age with NaN, sex with 0)."""
    which = torch.randint(0, 3, age.shape, generator=gen).to(age.device)
    age = torch.where(which != 1, torch.full_like(age, float("nan")), age)
    sex = torch.where(which != 0, torch.zeros_like(sex), sex)
    return age, sex


def calibrate_unknown(net: DermSevNet, loader: DataLoader, loss_fn: Callable[[DermSevNet, dict], tuple],
                      steps: int, autocast: Callable[[], object], seed: int = 0, lr: float = 1e-2) -> list[float]:
    """Fit net.tabular's unknown-age vector and unknown-sex embedding row for `steps` batches of
    `loader` (cycled) with inputs hidden by `hide`; everything else is frozen and BatchNorm keeps
    its statistics (eval mode). loss_fn(net, batch) -> (loss, parts), as compute_loss.
    Returns the loss of each step (empty when the network has no tabular branch)."""
    tab = net.tabular
    if tab is None or steps <= 0:
        return []
    device = next(net.parameters()).device
    emb = tab.sex_embed.weight
    known_rows = emb.detach()[1:].clone()
    frozen = [(p, p.requires_grad) for p in net.parameters() if p is not tab.age_unknown and p is not emb]
    was_training = net.training
    for p, _ in frozen:
        p.requires_grad_(False)
    net.eval()
    opt = torch.optim.Adam([tab.age_unknown, emb], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    try:
        for batch in _batches(loader, steps):
            batch = {k: v.to(device) for k, v in batch.items()}
            age, sex = hide(batch["age"].float(), batch["sex"], gen)
            with autocast():
                loss, _ = loss_fn(net, {**batch, "age": age, "sex": sex})
            opt.zero_grad(set_to_none=True)
            loss.backward()
            emb.grad[1:] = 0  # only the "unknown" row (index 0) learns
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        with torch.no_grad():
            emb[1:] = known_rows  # Adam's update is 0 where the gradient always was; exactly as trained
        for p, req in frozen:
            p.requires_grad_(req)
        net.train(was_training)
    return losses


def _batches(loader: DataLoader, steps: int) -> Iterator[dict]:
    """`steps` batches of loader, starting it again as often as needed (nothing kept in memory)."""
    done = 0
    while done < steps:
        for batch in loader:
            yield batch
            done += 1
            if done >= steps:
                return
        if done == 0:
            return  # an empty loader
