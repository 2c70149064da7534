"""Distributed training (torchrun, DistributedDataParallel, gloo on CPU): the data each rank
sees, the launcher's command line, a 2-process run against a 1-process one, a killed rank,
resuming across process counts, and the GPU paths (skipped without a GPU).

The multi-process tests start real torchrun jobs on 127.0.0.1 (a free port chosen at run
time), one thread per rank, with a short collective timeout and a subprocess timeout, so a
hung rank fails the test instead of hanging CI.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import model.training.fit as fit_module
from model.data import augment
from model.data.dataset import load_dataset
from model.data.trainset import CachedExamples, SeverityDataset
from model.errors import DermsevError
from model.nets.modeldir import load_network
from model.training import distributed, launch
from model.training.distributed import Dist
from model.training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[3]
TINY = {"image_size": 32, "batch_size": 4, "precision": "fp32", "encoder_depth": 3, "save_every_minutes": 0, "seed": 0}
JOB_TIMEOUT = 600  # seconds for a whole torchrun job: a backstop (start-up alone took 10 s to minutes on 2 busy cores)
COLLECTIVE_TIMEOUT = 60  # seconds a rank waits for a missing peer before it fails
NO_GPU = "no CUDA GPU on this machine: the fp16/bf16 autocast, grad scaler, channels_last, pinned-memory, " \
         "SyncBatchNorm and NCCL paths run only where torch.cuda.is_available()"


@pytest.fixture(scope="module")
def ddp_dataset(tmp_path_factory) -> Path:
    """12 synthetic 32-px images, one patient each: 8 train (2 global batches of 4), 4 val."""
    from model.synth.generator import generate

    root = generate(tmp_path_factory.mktemp("ddp") / "ds", n=12, size=32, seed=3, workers=1)
    rows = list(csv.DictReader((root / "manifest.csv").open()))
    for i, row in enumerate(rows):
        row["patient_id"], row["split"] = row["id"], "train" if i < 8 else "val"
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def cli_args(dataset: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return ["train", str(dataset), "--out", str(out), "--image-size", "32", "--batch-size", "4", "--epochs", str(epochs),
            "--precision", "fp32", "--seed", "0", "--quiet", *extra]


def start_job(args: list[str], tmp_path: Path, settings: str = "") -> subprocess.Popen:
    """`dermsev <args>` in a fresh process (which launches torchrun when args has --nproc);
    settings: more lines of its YAML config."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("encoder_depth: 3\nsave_every_minutes: 0\n" + settings)
    env = {**os.environ, "OMP_NUM_THREADS": "1", distributed.TIMEOUT_ENV: str(COLLECTIVE_TIMEOUT),
           "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.Popen([sys.executable, "-m", "model.cli", *args, "--config", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = JOB_TIMEOUT) -> tuple[int, str, str]:
    """The job's exit status, stdout and stderr; the test fails if it outlives `timeout`."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        pytest.fail(f"the torchrun job did not end within {timeout} s (a hung rank?)")
    return proc.returncode, out, err


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def kill_tree(pid: int) -> None:
    for p in [*descendants(pid), pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def worker_pid(launcher: int, rank: int) -> int | None:
    """The torchrun worker of `rank` below the launcher process (from its environment)."""
    for p in descendants(launcher):
        try:
            env = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"LOCAL_RANK=" + str(rank).encode() in env:
            return p
    return None


# -- pieces, in one process -----------------------------------------------------------------------
def test_ranks_together_see_the_single_process_batches(ddp_dataset: Path) -> None:
    """Step s of 2 ranks (batch 2 each) covers the same samples, with the same augmentation,
    as step s of 1 process (batch 4), in every epoch."""
    ds = load_dataset(ddp_dataset)
    cache = CachedExamples(ds.records, ds.spec, 32)

    def batches(world: int, rank: int, epoch: int) -> list[torch.Tensor]:
        items = SeverityDataset(cache, list(range(8)), augment.train_transform(32, "geometric", seed=0))
        loader = distributed.train_loader(items, 4, 0, Dist(rank=rank, world=world))
        distributed.set_epoch(loader, epoch)
        return [b["image"] for b in loader]

    for epoch in (0, 1):
        one = batches(1, 0, epoch)
        r0, r1 = batches(2, 0, epoch), batches(2, 1, epoch)
        assert len(one) == len(r0) == len(r1) == 2
        for whole, a, b in zip(one, r0, r1, strict=True):
            # the sampler deals samples round-robin: rank 0 has the even places, rank 1 the odd ones
            assert torch.equal(whole[0::2], a) and torch.equal(whole[1::2], b)
    assert not torch.equal(batches(1, 0, 0)[0], batches(1, 0, 1)[0])  # a new shuffle and augmentation per epoch


def test_validation_shards_cover_every_image_once() -> None:
    idx = list(range(11))
    parts = [distributed.shard(idx, Dist(rank=r, world=3)) for r in range(3)]
    assert sorted(i for p in parts for i in p) == idx


def test_launcher_command_line() -> None:
    one = launch.torchrun_args(["train", "ds", "--out", "m"], nproc=2)
    assert one[one.index("--master-addr") + 1] == "127.0.0.1"
    assert 0 < int(one[one.index("--master-port") + 1]) < 65536
    assert one[one.index("--nproc-per-node") + 1] == "2"
    assert one[-5:] == ["-m", "model.cli", "train", "ds", "--out", "m"][-5:]
    many = launch.torchrun_args(["train"], nproc=4, nnodes=2, endpoint="node0:29400", run_id="job7")
    assert many[many.index("--rdzv-endpoint") + 1] == "node0:29400" and "--master-port" not in many
    assert many[many.index("--rdzv-id") + 1] == "job7" and many[many.index("--nnodes") + 1] == "2"


@pytest.mark.parametrize("kwargs, match", [
    ({"nproc": 2, "nnodes": 2}, "needs --rdzv-endpoint HOST:PORT"),
    ({"nproc": 2, "nnodes": 2, "endpoint": "node0"}, "needs --rdzv-endpoint HOST:PORT"),
    ({"nproc": 0}, "must be at least 1"),
])
def test_launcher_ill_args(kwargs: dict, match: str) -> None:
    with pytest.raises(DermsevError, match=match):
        launch.torchrun_args(["train"], **kwargs)


def test_global_batch_must_split_evenly() -> None:
    with pytest.raises(DermsevError, match="multiple of the 4 processes"):
        distributed.check_batch(6, Dist(world=4))
    distributed.check_batch(8, Dist(world=4))


def test_failure_messages_name_the_ranks_and_the_way_on() -> None:
    killed = launch.failure_message({0: 1, 1: -signal.SIGKILL}, "runs/m")
    assert killed.startswith("training stopped: rank 1 was killed by SIGKILL, rank 0 failed (exit status 1);")
    assert "runs/m: the best model written so far is intact" in killed and "--resume" in killed
    assert launch.failure_message({0: 2, 1: 2}, "m") == \
        "training stopped: rank 0 reported the error above, rank 1 reported the error above"


def test_a_lost_peer_is_one_line_naming_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "45")
    with pytest.raises(DermsevError, match=r"rank 1 lost the other training processes \(DistBackendError: Timed out.*45 s"):
        with distributed.peers_lost_as_error(Dist(rank=1, world=2)):
            raise torch.distributed.DistBackendError("Timed out waiting 45000ms for recv\nmore detail")
    with pytest.raises(DermsevError, match=r"rank 0 lost .*\(RuntimeError: Application timeout caused pair closure\)"):
        with distributed.peers_lost_as_error(Dist(rank=0, world=2)):
            raise RuntimeError("Application timeout caused pair closure")  # what gloo raises
    with pytest.raises(RuntimeError, match="a bug"):  # not about the peers: the traceback stays
        with distributed.peers_lost_as_error(Dist(rank=0, world=2)):
            raise RuntimeError("a bug")
    with pytest.raises(torch.distributed.DistBackendError, match="alone"):  # one process: nothing to translate
        with distributed.peers_lost_as_error(None):
            raise torch.distributed.DistBackendError("alone")


def test_worker_command_line_drops_the_launcher_flags() -> None:
    from model.cli import _parser
    from model.cli.train import worker_args

    args = _parser().parse_args(["train", "ds", "--out", "m", "--nproc", "2", "--epochs", "3", "--half-weights",
                                 "--resume", "--rdzv-id", "x"])
    assert worker_args(args) == ["train", "ds", "--out", "m", "--epochs", "3", "--half-weights", "--resume"]


def test_sync_batchnorm_and_fp16_need_cuda() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(DermsevError, match="sync_batchnorm needs CUDA"):
        distributed.wrap(net, lambda n, b: n(b), Dist(), sync_batchnorm=True)
    if not torch.cuda.is_available():
        from model.training.train import pick_precision

        with pytest.raises(DermsevError, match="fp16 needs a CUDA GPU"):
            pick_precision("fp16")


class DieAfterCheckpoint:
    """Stands in for fit._save_checkpoint: writes the (epoch-1) checkpoint, then ends the run as a kill would."""

    def __init__(self, save):
        self.save = save

    def __call__(self, path: Path, state: dict) -> None:
        self.save(path, state)
        raise KeyboardInterrupt(f"killed after epoch {state['epoch']}")


def test_resume_crosses_between_the_single_process_and_the_distributed_recipe(
        tmp_path: Path, ddp_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint of a plain run resumes under the distributed recipe (world 1, rank 0's code)
    and the reverse: one checkpoint format."""
    cfg = TrainConfig(epochs=3, **TINY)
    for first, then in [(None, distributed.single()), (distributed.single(), None)]:
        out = tmp_path / f"m-{first is None}"
        with monkeypatch.context() as m:
            m.setattr(fit_module, "_save_checkpoint", DieAfterCheckpoint(fit_module._save_checkpoint))
            with pytest.raises(KeyboardInterrupt, match="killed after epoch 1"):
                train(ddp_dataset, out, cfg, progress=False, dist=first)
        summary = train(ddp_dataset, out, cfg, resume=True, progress=False, dist=then)
        assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]
        assert not Path(str(out) + ".partial").exists()


# -- real torchrun jobs ----------------------------------------------------------------------------
# Same seed, global batch 4, 8 epochs: 1 process (the distributed recipe in this process) against
# 2 gloo processes. They differ only by BatchNorm, which on CPU normalises each process's half
# batch (and rank 0's running statistics are kept): measured here, train loss within 2.9 % per
# epoch, final val pixel MAE 0.564 vs 0.568 and accuracy 0.702 vs 0.698 (with BatchNorm replaced by
# a plain affine layer the curves agree within 0.4 %; docs/distributed.md). The tolerances leave
# room for other CPUs' arithmetic and recipe changes.
# Measured with the cosine schedule, pinned here: under the default wsd the rate stays at its top
# until 3 of these 16 steps from the end, and the last epoch's 4-image validation then followed
# each process's half-batch BatchNorm statistics (val pixel MAE 0.773 vs 0.978, while the train
# losses still agreed within the tolerance); the comparison is of the processes, not the schedule.
# Likewise the skin channel's loss weight is pinned at the 0.5 it was measured with: at the new
# default 0.1 the sign MAE dominates the loss, and the third epoch (the steepest) differed by 6.4 %.
LOSS_RTOL = 0.06
PIXEL_ATOL = 0.03


def test_two_processes_match_one(tmp_path: Path, ddp_dataset: Path) -> None:
    epochs = 8
    job = start_job(cli_args(ddp_dataset, tmp_path / "two", epochs, "--nproc", "2", "--lr-schedule", "cosine"), tmp_path,
                    "skin_loss_weight: 0.5\n")
    one = train(ddp_dataset, tmp_path / "one", TrainConfig(epochs=epochs, lr_schedule="cosine", skin_loss_weight=0.5, **TINY),
                progress=False, dist=distributed.single())
    code, _, err = finish(job)
    assert code == 0, err[-2000:]
    two = json.loads((tmp_path / "two" / "config.json").read_text())["training"]
    loss1 = np.array([h["train_loss"] for h in one["history"]])
    loss2 = np.array([h["train_loss"] for h in two["history"]])
    assert len(loss1) == len(loss2) == epochs
    np.testing.assert_allclose(loss2, loss1, rtol=LOSS_RTOL)
    assert loss2[-1] < 0.75 * loss2[0]  # both learned: a match of two flat curves would prove nothing
    final1, final2 = one["history"][-1]["val"], two["history"][-1]["val"]
    for key in ("pixel_mae", "pixel_accuracy"):
        assert final2[key] == pytest.approx(final1[key], abs=PIXEL_ATOL), key
    assert two["n_images"] == one["n_images"] == {"train": 8, "val": 4, "test": 0}
    print(f"\n1 process : loss {np.round(loss1, 4).tolist()} val {final1}"
          f"\n2 processes: loss {np.round(loss2, 4).tolist()} val {final2}")


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_and_resume_continues(tmp_path: Path, ddp_dataset: Path) -> None:
    out, epochs = tmp_path / "model", 6
    ckpt = Path(str(out) + ".partial") / "checkpoint.pt"
    job = start_job(cli_args(ddp_dataset, out, epochs, "--nproc", "2"), tmp_path)
    deadline = time.monotonic() + JOB_TIMEOUT
    while not ckpt.is_file() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = worker_pid(job.pid, rank=1)
    assert victim is not None and ckpt.is_file(), "no checkpoint, or no rank 1, while the job ran"
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    code, _, err = finish(job, timeout=COLLECTIVE_TIMEOUT + 30)
    assert code != 0, err[-2000:]
    assert time.monotonic() - killed_at < COLLECTIVE_TIMEOUT, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "rank 1 was killed by SIGKILL" in last and "--resume" in last, last
    # the best model so far is whole and loadable (written just before its epoch's checkpoint,
    # so it may be one epoch ahead of it); the checkpoint waits
    net, config = load_network(out)
    done = torch.load(ckpt, weights_only=True)["history"]
    assert 1 <= len(done) < epochs
    assert 1 <= config["training"]["best_epoch"] <= len(done) + 1

    code, log, err = finish(start_job(cli_args(ddp_dataset, out, epochs, "--nproc", "2", "--resume"), tmp_path))
    assert code == 0, err[-2000:]
    assert log.count(f"resuming after epoch {len(done)}") == 1, log  # rank 0 alone reports
    summary = json.loads((out / "config.json").read_text())["training"]
    assert [h["epoch"] for h in summary["history"]] == list(range(1, epochs + 1))
    assert summary["history"][: len(done)] == done
    assert not ckpt.parent.exists()


# -- GPU ---------------------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)


@gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_training_on_cuda(tmp_path: Path, ddp_dataset: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    summary = train(ddp_dataset, tmp_path / "m", TrainConfig(epochs=2, **{**TINY, "precision": precision}), progress=False)
    assert summary["precision"] == precision
    assert all(np.isfinite(h["train_loss"]) for h in summary["history"])
    net, _ = load_network(tmp_path / "m")
    assert all(torch.isfinite(p).all() for p in net.parameters())


@gpu
def test_cuda_loader_pins_memory_and_the_network_runs_channels_last(ddp_dataset: Path) -> None:
    ds = load_dataset(ddp_dataset)
    cache = CachedExamples(ds.records, ds.spec, 32)
    items = SeverityDataset(cache, list(range(8)), augment.train_transform(32, "none"))
    loader = distributed.train_loader(items, 4, 0, Dist(device=torch.device("cuda", 0)))
    assert loader.pin_memory
    assert next(iter(loader))["image"].is_pinned()


@gpu
def test_sync_batchnorm_on_cuda(ddp_dataset: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).cuda()
    step = distributed.wrap(net, lambda n, b: n(b), Dist(device=torch.device("cuda", 0)), sync_batchnorm=True)
    assert isinstance(step.net[1], torch.nn.SyncBatchNorm)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs for a 2-process NCCL job; " + NO_GPU)
def test_two_gpu_processes_train_with_nccl(tmp_path: Path, ddp_dataset: Path) -> None:
    code, _, err = finish(start_job(cli_args(ddp_dataset, tmp_path / "m", 2, "--nproc", "2"), tmp_path))
    assert code == 0, err[-2000:]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"]["epochs_run"] == 2
