"""One inference queue per server process: every session's photos go through one worker thread.

Why: each request running the model's thread pool at once on the same cores slowed ten
clinicians to 2.7x their back-to-back time (issue 20). One worker, with the model's threads
set once at load (`load_model(threads=...)`), runs one photo at a time, in arrival order.

    q = shared_queue()                       # the process-wide queue (started on first use)
    ticket = q.submit(session_id, "a.jpg", lambda: predictor.predict(data, ...))
    q.ahead(ticket)                           # photos queued before it (0 = running or next)
    ticket.result(timeout=...)                # the value, or the exception the job raised
    q.cancel_session(session_id)              # a closed tab: drop its queued photos

A job that raises fails only its own ticket; the worker keeps serving. At most `max_pending`
photos wait (each holds its upload's bytes), so memory stays bounded; beyond that `submit`
raises `QueueFull` with a message for the page. No streamlit here: tested without a browser.
"""

from __future__ import annotations

import collections
import io
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from model.errors import DermsevError
from model.inference import is_dicom

log = logging.getLogger(__name__)
MAX_PENDING = 64


class QueueFull(DermsevError):
    """Too many photos waiting: the page asks the clinician to try again shortly."""


class Cancelled(DermsevError):
    """The job was dropped before it ran (its session went away, or the queue closed)."""


class Ticket:
    """One queued photo: wait on it with `result`; `done` says whether it has finished."""

    def __init__(self, seq: int, session: str, name: str, fn: Callable[[], Any]) -> None:
        self.seq, self.session, self.name, self.fn = seq, session, name, fn
        self._event = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value, self._error, self.fn = value, error, None  # drop the upload's bytes
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


class InferenceQueue:
    """A FIFO of scoring jobs served by one daemon worker thread (see the module docstring)."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.max_pending = max_pending
        self._jobs: collections.deque[Ticket] = collections.deque()
        self._running: Ticket | None = None
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="dermsev-inference", daemon=True)
        self._worker.start()

    def submit(self, session: str, name: str, fn: Callable[[], Any]) -> Ticket:
        """Queue fn() (one photo's scoring) for `session`; returns its ticket at once."""
        with self._cond:
            if self._closed:
                raise Cancelled(f"{name}: the server is shutting down")
            if len(self._jobs) >= self.max_pending:
                raise QueueFull(f"{name}: the server is busy ({len(self._jobs)} photos waiting); "
                                "try again in a minute")  # fmt: skip
            ticket = Ticket(next(self._seq), session, name, fn)
            self._jobs.append(ticket)
            self._cond.notify()
            return ticket

    def ahead(self, ticket: Ticket) -> int:
        """Photos that will be scored before this one: the running one and those queued earlier
        (0 once it runs or has finished)."""
        with self._cond:
            if ticket.done() or ticket is self._running:
                return 0
            earlier = sum(1 for t in self._jobs if t.seq < ticket.seq)
            return earlier + (self._running is not None)

    def pending(self) -> int:
        """Photos waiting (not counting the one running)."""
        with self._cond:
            return len(self._jobs)

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

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._running = self._jobs.popleft()
            try:
                job._finish(value=job.fn())
            except BaseException as exc:  # noqa: BLE001 - one job's failure is its own
                if not isinstance(exc, DermsevError):
                    log.exception("scoring %s failed in the inference worker", job.name)
                job._finish(error=exc)
            finally:
                with self._cond:
                    self._running = None


_SHARED: InferenceQueue | None = None
_SHARED_LOCK = threading.Lock()


def shared_queue() -> InferenceQueue:
    """The process-wide queue every session of this server uses (created on first call)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = InferenceQueue()
        return _SHARED


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def quick_check(name: str, data: bytes) -> None:
    """Refuse an empty or non-image upload at once, before it waits in the queue (a header
    read only; TIFFs, which Pillow may not open, and DICOM files are left to the model's reader)."""
    if not data:
        raise DermsevError(f"{name}: file is empty")
    if data[:4] in _TIFF_MAGIC or is_dicom(data):
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)):
            pass
    except (UnidentifiedImageError, OSError):
        raise DermsevError(f"{name}: not an image (or a format that cannot be read)") from None


class QueuedPredictor:
    """A predictor whose `predict` goes through the shared queue; everything else passes through.

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
        ticket = self._queue.submit(self._session, name, lambda: self._predictor.predict(image, **kwargs))
        try:
            while not ticket.done():
                if self._on_wait is not None:
                    self._on_wait(self._queue.ahead(ticket))
                ticket._event.wait(self._poll)
        except BaseException:
            self._queue.cancel_session(self._session)
            raise
        return ticket.result()
