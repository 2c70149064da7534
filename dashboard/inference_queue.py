"""One inference queue per server process: every session's photos go through one worker thread.

Why: each request running the model's thread pool at once on the same cores slowed ten
clinicians to 2.7x their back-to-back time (issue 20). One worker, with the model's threads
set once at load, runs the network for one job at a time, in arrival order.

    q = shared_queue()                       # the process-wide queue (started on first use)
    ticket = q.submit(session_id, "a.jpg", lambda: predictor.predict(data, ...))
    ticket = q.submit_forward(session_id, "a.jpg", predictor, prepared.x, age, sex)  # batchable
    ticket = q.submit_forward(session_id, "a.jpg", predictor, views, age, sex)  # TTA: (n, C, H, W)
    q.ahead(ticket)                           # photos queued before it (0 = running or next)
    ticket.result(timeout=...)                # the value, or the exception the job raised
    q.cancel_session(session_id)              # a closed tab: drop its queued photos

Batching (issue 20, item 1): forwards queued one behind the other on the same predictor with
the same working shape (Prepared.x.shape) run as one batched `forward_all`, each image with its
own photo's age and sex; each ticket gets its own rows. A forward is one photo's images: its
working tensor, or with TTA a batch of its views (`Predictor.tta_views`: turned by 0..3 quarter
turns; a photo that is not square has two batches, one per shape, queued as two forwards), so
photos with and without TTA share a batch.

The limit, `max_images` (default 8), counts images, not photos: what one forward costs in
time and memory is its images. The default holds 2 photos with TTA (the page's default) or
8 without, or a mix: on this 2-core CPU, 16 sessions sending a photo at once were all
scored in 1.36 s with TTA in batches of 8 images, 1.44 s one photo per forward and 1.58 s in
batches of 16; without TTA in 0.52 s in batches of 8, 0.54 s of 16, 0.75 s one per forward
(bench/bench_batching.py, docs/load.md). A photo's views are never split, and a photo larger
than the limit (max_images 1 and TTA) runs alone. The worker never waits for a batch to fill: it takes what
is waiting when it is free, so a lone photo is not delayed, and batches form exactly when
sessions are queueing behind each other. Only a run of consecutive forwards is batched (a
photo never overtakes an earlier one), so start order stays FIFO; the one exception is the
other half of a photo that is not square, stepped over so that the photos behind it can
join the batch with their own first half (their second halves then batch together next). If a batched forward raises,
its photos are run again one at a time, so one bad photo fails only its own ticket. `submit`
jobs (predictors without the split, unknown keywords) run alone.

Where the work runs: `QueuedPredictor` decodes, checks and pads a photo (`prepare`) on the
requesting session's thread, queues only the network forward, and summarises the result
(`from_output`) back on its own thread. So the worker runs nothing but the network, the queue
knows each photo's working shape when it arrives (what batching needs), and the next photo's
decode overlaps the current forward. The cost: a session's decode shares the cores with the
worker's forward (single-threaded decode, against the model's pool); bench/bench_batching.py
measures the result against the whole photo run in the worker ("before").

A job that raises fails only its own ticket; the worker keeps serving. At most `max_pending`
photos wait (each holds its upload's bytes or its working tensor, four views with TTA, which
for a photo that is not square are two jobs of two views), so memory stays bounded; beyond
that a submit raises `QueueFull` with a message for the page. Every count of the queue
(`ahead`, `pending`, the limit and its message) is of photos. No streamlit here: tested
without a browser.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.errors import DermsevError
from model.inference import check_age, check_header, check_sex

log = logging.getLogger(__name__)
MAX_PENDING = 64
MAX_IMAGES = 8  # one forward's images: 2 photos with TTA (4 views each), or 8 without
# QueuedPredictor queues only the forward for predictors with these stages (prepare ->
# forward_all -> from_output; with TTA also tta_views) called with these `predict` keywords
_SPLIT = ("prepare", "forward_all", "from_output")
_PREDICT_ARGS = {"age", "sex", "tta", "name", "white_balance", "neutral_box"}


class QueueFull(DermsevError):
    """Too many photos waiting: the page asks the clinician to try again shortly."""


class Cancelled(DermsevError):
    """The job was dropped before it ran (its session went away, or the queue closed)."""


@dataclass(frozen=True, eq=False)
class Forward:
    """One photo's network forward: x, its (C, H, W) float32 working tensor (`Prepared.x`) or
    (n, C, H, W) n images of it (TTA views); its patient's age and sex (None = unknown), the
    same for all its images; and the predictor whose `forward_all` runs it."""

    predictor: Any
    x: np.ndarray
    age: float | None = None
    sex: str | None = None

    @property
    def images(self) -> np.ndarray:
        """(n, C, H, W): what it adds to a batch (n = 1 for a working tensor)."""
        return self.x[None] if self.x.ndim == 3 else self.x

    def rows(self, out: np.ndarray) -> np.ndarray:
        """Its rows of forward_all, (n, K, H, W) -> its ticket's value: (K, H, W) for a working
        tensor, (n, K, H, W) for n images."""
        return out[0] if self.x.ndim == 3 else out

    def joins(self, other: Forward) -> bool:
        """Whether the two can share one batched forward: same model, same working shape."""
        same_input = self.x.shape[-3:] == other.x.shape[-3:] and self.x.dtype == other.x.dtype
        return self.predictor is other.predictor and same_input


class Ticket:
    """One queued photo: wait on it with `result`; `done` says whether it has finished."""

    def __init__(self, seq: int, session: str, name: str, fn: Callable[[], Any] | None = None,
                 forward: Forward | None = None, photo: int | None = None) -> None:  # fmt: skip
        self.seq, self.session, self.name, self.fn, self.forward = seq, session, name, fn, forward
        # the photo it is (part of): a photo's TTA views of two shapes are two forwards, one photo
        self.photo = seq if photo is None else photo
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error
        self.fn = self.forward = None  # drop the upload's bytes or the working tensor
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> Any:
        """The job's value; raises what the job raised, `Cancelled`, or TimeoutError."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"{self.name}: still waiting after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


def _photos(tickets: Iterable[Ticket], but: int | None = None) -> int:
    """How many photos `tickets` are (a photo's two batches of views are two tickets), not counting `but`."""
    return len({t.photo for t in tickets} - {but})


class InferenceQueue:
    """A FIFO of scoring jobs served by one daemon worker thread (see the module docstring).

    max_pending: photos that may wait (beyond: QueueFull); max_images: images one batched
    forward may hold, a TTA batch counting its views (1: every photo on its own)."""

    def __init__(self, max_pending: int = MAX_PENDING, max_images: int = MAX_IMAGES) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if max_images < 1:
            raise ValueError(f"max_images must be at least 1, got {max_images}")
        self.max_pending, self.max_images = max_pending, max_images
        self._jobs: collections.deque[Ticket] = collections.deque()
        self._running: list[Ticket] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="dermsev-inference", daemon=True)
        self._worker.start()

    def submit(self, session: str, name: str, fn: Callable[[], Any]) -> Ticket:
        """Queue fn() (one photo's whole scoring) for `session`; returns its ticket at once.
        It runs alone: nothing is batched with it."""
        return self._put(session, name, [{"fn": fn}])[0]

    def submit_forward(self, session: str, name: str, predictor: Any, x: np.ndarray,
                       age: float | None = None, sex: str | None = None) -> Ticket:  # fmt: skip
        """Queue one photo's network forward: x (C, H, W) float32 (`Prepared.x`) or (n, C, H, W)
        n images of one photo (`Predictor.tta_views`' batch), age, sex (checked; None =
        unknown). The ticket's value is its rows of `predictor.forward_all`: (S [+ 1], H, W)
        float32, or (n, S [+ 1], H, W) for n images; it may share a batch with the forwards
        queued right before or after it."""
        return self.submit_forwards(session, name, predictor, [x], age, sex)[0]

    def submit_forwards(self, session: str, name: str, predictor: Any, xs: list[np.ndarray],
                        age: float | None = None, sex: str | None = None) -> list[Ticket]:  # fmt: skip
        """`submit_forward` for each of one photo's batches (the views of a photo that is not
        square come in two shapes), queued together or not at all; `ahead` counts them as one
        photo."""
        return self._put(session, name, [{"forward": Forward(predictor, x, age, sex)} for x in xs])

    def _put(self, session: str, name: str, jobs: list[dict]) -> list[Ticket]:
        with self._cond:
            if self._closed:
                raise Cancelled(f"{name}: the server is shutting down")
            if (waiting := _photos(self._jobs)) + 1 > self.max_pending:  # `jobs` are one photo's
                raise QueueFull(f"{name}: the server is busy ({waiting} photos waiting); "
                                "try again in a minute")  # fmt: skip
            tickets: list[Ticket] = []
            for job in jobs:
                tickets.append(Ticket(next(self._seq), session, name, **job, photo=tickets[0].seq if tickets else None))
            self._jobs.extend(tickets)
            self._cond.notify()
            return tickets

    def ahead(self, ticket: Ticket) -> int:
        """Photos that will be scored before this one: those running and those queued earlier
        (0 once it runs or has finished)."""
        with self._cond:
            if ticket.done() or ticket in self._running:
                return 0
            earlier = [t for t in self._jobs if t.seq < ticket.seq]
            return _photos([*earlier, *self._running], but=ticket.photo)

    def pending(self) -> int:
        """Photos waiting (not counting those running)."""
        with self._cond:
            return _photos(self._jobs)

    def cancel_session(self, session: str) -> int:
        """Drop a session's queued photos (their tickets raise Cancelled); returns how many.
        A photo already running finishes; nobody waits for it."""
        with self._cond:
            dropped = [t for t in self._jobs if t.session == session]
            self._jobs = collections.deque(t for t in self._jobs if t.session != session)
        for t in dropped:
            t._finish(error=Cancelled(f"{t.name}: cancelled (the page was closed)"))
        return len(dropped)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop taking jobs, cancel those waiting, and let the worker end."""
        with self._cond:
            self._closed = True
            dropped, self._jobs = list(self._jobs), collections.deque()
            self._cond.notify_all()
        for t in dropped:
            t._finish(error=Cancelled(f"{t.name}: the server is shutting down"))
        self._worker.join(timeout)

    def _take(self) -> list[Ticket]:
        """The next job, and (for a forward) the forwards right behind it that join its batch.
        The other half of a photo already in the batch (TTA views of the other shape) is
        stepped over, so that the next photos' first halves still join; it keeps its place at
        the head of the queue. Called with the lock held."""
        batch = [self._jobs.popleft()]
        head = batch[0].forward
        if head is None:
            return batch
        images, passed, photos = len(head.images), 0, {batch[0].photo}
        while passed < len(self._jobs) and (nxt := self._jobs[passed]).forward is not None:
            if not head.joins(nxt.forward):
                if nxt.photo not in photos:
                    break
                passed += 1  # a half of a photo in this batch: step over it
                continue
            images += len(nxt.forward.images)
            if images > self.max_images:
                break
            del self._jobs[passed]
            batch.append(nxt)
            photos.add(nxt.photo)
        return batch

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch = self._running = self._take()
            try:
                if batch[0].forward is None:
                    self._settle(batch[0], batch[0].fn)
                else:
                    self._forward(batch)
            finally:
                with self._cond:
                    self._running = []

    @staticmethod
    def _settle(ticket: Ticket, fn: Callable[[], Any]) -> None:
        """Run fn for one ticket: its value or the exception it raised becomes the ticket's result."""
        try:
            ticket._finish(value=fn())
        except BaseException as exc:  # noqa: BLE001 - one job's failure is its own
            if not isinstance(exc, DermsevError):
                log.exception("scoring %s failed in the inference worker", ticket.name)
            ticket._finish(error=exc)

    def _forward(self, batch: list[Ticket]) -> None:
        """One forward_all over the batch's images, each ticket getting its own rows."""
        jobs = [t.forward for t in batch]
        if len(batch) == 1:
            f = jobs[0]
            self._settle(batch[0], lambda: f.rows(f.predictor.forward_all(f.images, f.age, f.sex)))
            return
        x = np.concatenate([f.images for f in jobs])
        try:  # each image with its photo's patient
            out = jobs[0].predictor.forward_all(x, [f.age for f in jobs for _ in f.images],
                                                [f.sex for f in jobs for _ in f.images])  # fmt: skip
            if len(out) != len(x):
                raise RuntimeError(f"forward_all gave {len(out)} rows for {len(x)} images")
        except BaseException:  # noqa: BLE001 - then each photo alone: only a bad one fails
            log.warning("a batched forward of %d photos failed; running them one at a time", len(batch),
                        exc_info=True)  # fmt: skip
            for t in batch:
                self._forward([t])
            return
        start = 0
        for t, f in zip(batch, jobs, strict=True):
            n = len(f.images)
            t._finish(value=f.rows(out[start : start + n]))
            start += n


_SHARED: InferenceQueue | None = None
_SHARED_LOCK = threading.Lock()


def shared_queue() -> InferenceQueue:
    """The process-wide queue every session of this server uses (created on first call)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = InferenceQueue()
        return _SHARED


def quick_check(name: str, data: bytes) -> None:
    """Refuse an empty, non-image or decompression-bomb upload at once, before it waits in the
    queue, with the model's reader's message (`check_header`: a header read only; TIFF and
    DICOM files are left to the model's reader)."""
    check_header(data, name)


class QueuedPredictor:
    """A predictor whose `predict` goes through the shared queue; everything else passes through.

    A predictor with `prepare`, `forward_all` and `from_output` (model.inference.Predictor), and
    `tta_views` for TTA, has its photos prepared and summarised on the calling thread and only
    the forward (with TTA, of the photo's views) queued, where it may be batched with other
    sessions' photos (module docstring); a predictor without those, or a `predict` keyword not
    known here, makes the whole `predict` one job, as before.

    on_wait(ahead) is called while the photo waits (ahead: photos to be scored before it), so the
    page can say "2 photos ahead of yours". If on_wait or the wait raises (streamlit stops a
    closed session's script at its next element call), the session's queued photos are dropped.
    """

    def __init__(self, predictor: Any, queue: InferenceQueue, session: str,
                 on_wait: Callable[[int], None] | None = None, poll: float = 0.25) -> None:  # fmt: skip
        self._predictor, self._queue, self._session = predictor, queue, session
        self._on_wait, self._poll = on_wait, poll

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)

    def predict(self, image: Any, **kwargs: Any) -> Any:
        name = str(kwargs.get("name") or "photo")
        if isinstance(image, (bytes, bytearray)):
            quick_check(name, bytes(image))
        p, q, tta = self._predictor, self._queue, bool(kwargs.get("tta"))
        stages = (*_SPLIT, "tta_views") if tta else _SPLIT
        if not all(hasattr(p, m) for m in stages) or not set(kwargs) <= _PREDICT_ARGS:
            return self._wait(q.submit(self._session, name, lambda: p.predict(image, **kwargs)))
        age, sex = check_age(kwargs.get("age")), check_sex(kwargs.get("sex"))  # before decoding
        wb, box = kwargs.get("white_balance"), kwargs.get("neutral_box")
        prepared = p.prepare(image, kwargs.get("name"), wb, box)
        if not tta:
            return p.from_output(prepared, self._wait(q.submit_forward(self._session, name, p, prepared.x, age, sex)))
        # the views' batches (two for a photo that is not square: one per shape), queued together
        tickets = q.submit_forwards(self._session, name, p, p.tta_views(prepared.x), age, sex)
        return p.from_output(prepared, [self._wait(t) for t in tickets])

    def _wait(self, ticket: Ticket) -> Any:
        try:
            while not ticket.done():
                if self._on_wait is not None:
                    self._on_wait(self._queue.ahead(ticket))
                ticket._event.wait(self._poll)
        except BaseException:
            self._queue.cancel_session(self._session)
            raise
        return ticket.result()
