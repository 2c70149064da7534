"""Training on several processes: torch DistributedDataParallel, launched by torchrun.

One process per CPU socket share or per GPU; gloo on CPU, NCCL on CUDA. `torchrun` (or
`dermsev train --nproc N`, which runs torchrun's own launcher: model/training/launch.py) sets RANK,
WORLD_SIZE and LOCAL_RANK; `setup()` reads them. Every rank then runs the same `train()`:

- the split is rank 0's, broadcast (`same_splits`), so folds and early stopping see one split;
- --batch-size is the global batch: each rank takes batch_size / world of it, and a
  DistributedSampler (seeded, set_epoch every epoch) deals the shuffled epoch out, so one
  step of N processes sees the samples of one step of a single process;
- each sample's augmentation is seeded by (seed, epoch, sample), not by a per-process stream,
  so it is the same whatever the number of processes (`SeededItems`);
- validation is split over the ranks and its sums gathered (`merge_metrics`): the metrics are
  those of the whole validation set;
- the clock (--max-minutes) is rank 0's (`from_rank0`): every rank stops at the same step;
- only rank 0 writes the checkpoint, the MODEL_DIR and the progress lines.

BatchNorm stays per process on CPU (SyncBatchNorm has no CPU kernels); on CUDA,
sync_batchnorm: true pools its statistics over the ranks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.data import Dataset as TorchDataset

from model.errors import DermsevError
from model.scoring.metrics import SignAccumulator, SkinDice

TIMEOUT_ENV = "DERMSEV_DIST_TIMEOUT"  # seconds a rank waits for the others (collectives, rendezvous)
DEFAULT_TIMEOUT = 1800


@dataclass(frozen=True)
class Dist:
    """This process's place in the job. world 1 (`single()`) runs the distributed recipe
    (sampler, seeded augmentation) in one process, without a process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def single(device: torch.device | None = None) -> Dist:
    return Dist(device=device or torch.device("cpu"))


def launched() -> bool:
    """True inside a process started by torchrun (which sets these variables)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
    try:
        value = float(raw)
    except ValueError:
        raise DermsevError(f"{TIMEOUT_ENV}={raw!r}: must be a number of seconds") from None
    if value <= 0:
        raise DermsevError(f"{TIMEOUT_ENV}={raw!r}: must be positive")
    return value


def setup() -> Dist:
    """Join the job torchrun started: NCCL and one GPU per local rank on CUDA, gloo on CPU."""
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise DermsevError(f"local rank {local} but only {torch.cuda.device_count()} GPU(s): use --nproc <= GPUs per node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    ctx = Dist(rank=rank, world=world, local_rank=local, device=device)
    if ctx.active and not tdist.is_initialized():
        tdist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds()),
                                 device_id=device if device.type == "cuda" else None)
    return ctx


_PEER_LOST = ("pair closure", "Connection closed", "Connection reset", "Timed out", "timed out")


@contextmanager
def peers_lost_as_error(ctx: Dist | None):
    """A collective that fails (a peer died, or stayed silent past DERMSEV_DIST_TIMEOUT) ends
    this rank with one line saying so, instead of a backend traceback."""
    try:
        yield
    except RuntimeError as exc:
        # gloo reports a vanished or silent peer as a plain RuntimeError ("Application timeout
        # caused pair closure", "Connection closed by peer"); NCCL and the store as DistError
        lost = isinstance(exc, tdist.DistError) or any(w in str(exc) for w in _PEER_LOST)
        if ctx is None or not ctx.active or not lost:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DermsevError(f"rank {ctx.rank} lost the other training processes ({type(exc).__name__}: {first}): "
                           f"one died, or hung for more than {timeout_seconds():.0f} s ({TIMEOUT_ENV})") from None


def teardown(ctx: Dist | None) -> None:
    if ctx is not None and ctx.active and tdist.is_initialized():
        tdist.destroy_process_group()


# -- data -----------------------------------------------------------------------------------
def same_splits(records: list, ctx: Dist) -> None:
    """Give every rank rank 0's split (records in manifest order); refuse different datasets."""
    if not ctx.active:
        return
    mine = [(r.id, r.split) for r in records]
    box = [mine]
    tdist.broadcast_object_list(box, src=0)
    theirs = box[0]
    if [i for i, _ in theirs] != [i for i, _ in mine]:
        raise DermsevError(f"rank {ctx.rank} reads a different manifest than rank 0: every node needs the same dataset")
    for r, (_, split) in zip(records, theirs, strict=True):
        r.split = split


class SeededItems(TorchDataset):
    """Wraps a SeverityDataset: item i of epoch e is augmented with a seed drawn from
    (seed, e, i), so the augmentation does not depend on which rank draws it."""

    def __init__(self, items, seed: int):
        self.items, self.seed, self.epoch = items, seed, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        sample_seed = int(np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0])
        self.items.transform.set_random_seed(sample_seed)
        return self.items[i]


def check_batch(batch_size: int, ctx: Dist) -> None:
    if batch_size % ctx.world:
        raise DermsevError(f"--batch-size {batch_size} is the global batch: it must be a multiple of the "
                           f"{ctx.world} processes (each takes an equal share)")


def train_loader(items, batch_size: int, seed: int, ctx: Dist) -> DataLoader:
    """This rank's share of each global batch of `batch_size`; call `set_epoch` every epoch."""
    check_batch(batch_size, ctx)
    drop = len(items) > batch_size  # as the single-process loader: no ragged last step
    seeded = SeededItems(items, seed)
    sampler = DistributedSampler(seeded, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed, drop_last=drop)
    return DataLoader(seeded, batch_size=batch_size // ctx.world, sampler=sampler, drop_last=drop, num_workers=0,
                      pin_memory=ctx.device.type == "cuda")


def set_epoch(loader: DataLoader, epoch: int) -> None:
    loader.sampler.set_epoch(epoch)
    loader.dataset.epoch = epoch


def shard(indices: list[int], ctx: Dist) -> list[int]:
    """This rank's part of an evaluation set (every index on exactly one rank)."""
    return list(indices[ctx.rank :: ctx.world])


# -- the network ------------------------------------------------------------------------------
class LossStep(nn.Module):
    """The network and its loss as one module, so DDP sees every parameter the loss uses
    (MIL pooling and channel mixing are called outside the network's forward)."""

    def __init__(self, net: nn.Module, loss: Callable[[nn.Module, dict], Any]):
        super().__init__()
        self.net, self.loss = net, loss

    def forward(self, batch: dict):
        return self.loss(self.net, batch)


def wrap(net: nn.Module, loss: Callable[[nn.Module, dict], Any], ctx: Dist | None, sync_batchnorm: bool = False) -> nn.Module:
    """A module whose forward(batch) returns compute_loss's (loss, parts): DDP across ranks
    (gradients averaged in backward), or the plain step in one process."""
    step = LossStep(net, loss)
    if sync_batchnorm:
        if ctx is None or ctx.device.type != "cuda":
            raise DermsevError("sync_batchnorm needs CUDA GPUs (SyncBatchNorm has no CPU kernels); "
                               "leave it off for per-process BatchNorm")
        # the same Parameter objects move into the new modules, so an existing optimizer still holds them
        step = nn.SyncBatchNorm.convert_sync_batchnorm(step)
    if ctx is None or not ctx.active:
        return step
    from torch.nn.parallel import DistributedDataParallel

    # Learned MIL pooling (noisy-and) gets no gradient in a step without image-level loss; DDP
    # must then look for unused parameters (an extra graph walk per step, so only then).
    pool = getattr(net, "pool", None)
    unused = pool is not None and any(p.requires_grad for p in pool.parameters())
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=ids, find_unused_parameters=unused)


def sync_buffers(net: nn.Module, ctx: Dist | None) -> None:
    """Rank 0's BatchNorm running statistics on every rank (each rank updated its own copy
    in the last step), so all ranks validate, and rank 0 saves, the same model."""
    if ctx is None or not ctx.active:
        return
    for buf in net.buffers():
        tdist.broadcast(buf, src=0)


# -- agreeing across ranks --------------------------------------------------------------------
def from_rank0(fn: Callable[[], Any], ctx: Dist | None) -> Callable[[], Any]:
    """`fn` evaluated on rank 0, its value on every rank (the clock of a --max-minutes run, so
    every rank has the same learning rate and stops at the same step). Every rank must call
    the returned function equally often."""
    if ctx is None or not ctx.active:
        return fn

    def agreed():
        box = [fn() if ctx.is_main else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    return agreed


def share(obj: Any, ctx: Dist | None) -> Any:
    """Rank 0's object (tensors, numbers, lists, dicts) on every rank (a checkpoint read by rank 0)."""
    if ctx is None or not ctx.active:
        return obj
    box = [obj if ctx.is_main else None]
    tdist.broadcast_object_list(box, src=0, weights_only=True)
    return box[0]


def epoch_stats(loss_sum: float, steps: int, seen: int, busy: float, ctx: Dist | None) -> tuple[float | None, float | None]:
    """The epoch's mean training loss over all ranks' steps and the job's images/s (all images
    over the slowest rank's busy time)."""
    if ctx is not None and ctx.active:
        sums = torch.tensor([loss_sum, steps, seen], dtype=torch.float64)
        tdist.all_reduce(sums)
        slowest = torch.tensor([busy], dtype=torch.float64)
        tdist.all_reduce(slowest, op=tdist.ReduceOp.MAX)
        loss_sum, steps, seen, busy = float(sums[0]), int(sums[1]), int(sums[2]), float(slowest[0])
    return (loss_sum / steps if steps else None), (seen / busy if busy else None)


_SUMS = ("abs_err", "n_pix", "n_correct", "inter", "pred_pos", "true_pos")  # SignAccumulator's running sums


def merge_metrics(acc: dict[str, SignAccumulator], skin: SkinDice, ctx: Dist | None) -> None:
    """Every rank's validation sums and image scores added into `acc` and `skin`, in place,
    on every rank (then each computes the metrics of the whole validation set)."""
    if ctx is None or not ctx.active:
        return
    mine = {"acc": {s: {**{k: getattr(a, k) for k in _SUMS}, "pred": a.pred_scores, "true": a.true_scores}
                    for s, a in acc.items()},
            "skin": [skin.overlap, skin.total, skin.n_images]}
    every: list = [None] * ctx.world
    tdist.all_gather_object(every, mine)
    for s, a in acc.items():
        for k in _SUMS:
            setattr(a, k, sum(r["acc"][s][k] for r in every))
        a.pred_scores = [v for r in every for v in r["acc"][s]["pred"]]
        a.true_scores = [v for r in every for v in r["acc"][s]["true"]]
    skin.overlap, skin.total, skin.n_images = (sum(r["skin"][i] for r in every) for i in range(3))


__all__ = ["Dist", "setup", "teardown", "launched", "single", "train_loader", "set_epoch", "wrap"]
