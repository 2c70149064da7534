"""`dermsev train --nproc N`: torchrun's own launcher (torch.distributed.run), run in this process.

Each worker is `python -m model.cli train ...` with torchrun's RANK/WORLD_SIZE/LOCAL_RANK; a
worker that fails or is killed stops the whole job (torchrun ends the others, no restarts),
and that ends here as one line naming the rank and the way on (--resume).
"""

from __future__ import annotations

import os
import signal
import socket

from model.errors import DermsevError
from model.training.distributed import DEFAULT_TIMEOUT, TIMEOUT_ENV


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def torchrun_args(worker_args: list[str], nproc: int, nnodes: int = 1, endpoint: str | None = None,
                  run_id: str = "dermsev") -> list[str]:
    """torchrun's command line for `python -m model.cli <worker_args>` on this node.

    One node: a static rendezvous on 127.0.0.1 at a free port. Several nodes: the c10d
    rendezvous at `endpoint` (HOST:PORT of any one node, the same on every node).
    """
    if nproc < 1 or nnodes < 1:
        raise DermsevError("--nproc and --nnodes must be at least 1")
    if nnodes == 1 and endpoint is None:
        rdzv = ["--nnodes", "1", "--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    elif endpoint is None or ":" not in endpoint:
        raise DermsevError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT, the same on every node")
    else:
        rdzv = ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id]
    return [*rdzv, "--nproc-per-node", str(nproc), "--max-restarts", "0", "--monitor-interval", "0.5",
            "-m", "model.cli", *worker_args]


def launch(worker_args: list[str], nproc: int, nnodes: int = 1, endpoint: str | None = None,
           run_id: str = "dermsev", out: str | None = None) -> None:
    """Run torchrun's launcher here: `nproc` workers on this node, each `dermsev <worker_args>`.

    A worker that fails or is killed stops the whole job (torchrun ends the other workers);
    that ends here as one DermsevError naming the rank.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from model import hardware

    # one share of the cores per worker on this node (torchrun's own default is 1 thread)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, hardware.cpu_count() // nproc)))
    os.environ.setdefault(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
    args = get_args_parser().parse_args(torchrun_args(worker_args, nproc, nnodes, endpoint, run_id))
    try:
        run(args)
    except ChildFailedError as exc:
        raise DermsevError(failure_message({r: f.exitcode for r, f in exc.failures.items()}, out)) from None


def _how(exitcode: int) -> str:
    if exitcode == 2:  # a DermsevError, already printed by the rank (bad input, or a lost peer)
        return "reported the error above"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"failed (exit status {exitcode})"


def failure_message(exitcodes: dict[int, int], out: str | None) -> str:
    """One line for the failed ranks ({rank: exit code, negative = signal}): killed ranks first
    (a killed rank's peers fail after it, in a collective), then the rest by rank."""
    order = sorted(exitcodes, key=lambda r: (not (exitcodes[r] < 0 and -exitcodes[r] != signal.SIGTERM), r))
    what = ", ".join(f"rank {r} {_how(exitcodes[r])}" for r in order)
    if all(code == 2 for code in exitcodes.values()):  # every rank refused the input: nothing to resume
        return f"training stopped: {what}"
    where = f"{out}: the best model written so far is intact; " if out else ""
    return (f"training stopped: {what}; the whole job was ended. "
            f"{where}run the same command with --resume to continue from the last checkpoint")


__all__ = ["launch", "torchrun_args", "failure_message"]
