"""The process-wide inference queue, without a browser: order, positions, errors, cancellation."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.inference_queue import (
    Cancelled,
    InferenceQueue,
    QueuedPredictor,
    QueueFull,
    shared_queue,
)
from model.errors import DermsevError


@pytest.fixture
def q():
    queue = InferenceQueue(max_pending=8)
    yield queue
    queue.close()


def _gate():
    """A job that blocks the worker until released: lets a test look at a full queue."""
    release, started = threading.Event(), threading.Event()

    def job():
        started.set()
        release.wait(10)
        return "gate"

    return job, release, started


def test_fifo_order_and_positions(q):
    gate, release, started = _gate()
    order = []
    first = q.submit("s1", "gate.jpg", gate)
    assert started.wait(10)
    tickets = [q.submit(f"s{i % 3}", f"{i}.jpg", lambda i=i: order.append(i) or i) for i in range(5)]
    assert q.ahead(first) == 0  # running
    assert [q.ahead(t) for t in tickets] == [1, 2, 3, 4, 5]  # the running photo counts
    assert q.pending() == 5
    release.set()
    assert [t.result(10) for t in tickets] == [0, 1, 2, 3, 4]
    assert order == [0, 1, 2, 3, 4] and first.result(10) == "gate"
    assert q.ahead(tickets[-1]) == 0 and q.pending() == 0


def test_a_failing_job_fails_only_its_own_ticket(q):
    def boom():
        raise RuntimeError("model exploded")

    bad = q.submit("s1", "bad.jpg", boom)
    corrupt = q.submit("s2", "x.jpg", lambda: (_ for _ in ()).throw(DermsevError("x.jpg: not an image")))
    good = q.submit("s3", "ok.jpg", lambda: 42)
    with pytest.raises(RuntimeError, match="model exploded"):
        bad.result(10)
    with pytest.raises(DermsevError, match="not an image"):
        corrupt.result(10)
    assert good.result(10) == 42
    assert q.submit("s1", "again.jpg", lambda: "still serving").result(10) == "still serving"


def test_cancel_session_drops_only_its_queued_work(q):
    gate, release, started = _gate()
    ran = []
    q.submit("other", "gate.jpg", gate)
    assert started.wait(10)
    gone = [q.submit("closed-tab", f"{i}.jpg", lambda i=i: ran.append(("gone", i))) for i in range(3)]
    kept = q.submit("kept", "k.jpg", lambda: ran.append("kept") or "k")
    assert q.ahead(kept) == 4
    assert q.cancel_session("closed-tab") == 3
    assert q.ahead(kept) == 1  # the three cancelled photos no longer count
    release.set()
    assert kept.result(10) == "k"
    for t in gone:
        with pytest.raises(Cancelled, match="cancelled"):
            t.result(1)
    assert ran == ["kept"]  # none of the closed tab's photos was scored
    assert q.cancel_session("closed-tab") == 0


def test_memory_is_bounded(q):
    gate, release, started = _gate()
    q.submit("s", "gate.jpg", gate)
    assert started.wait(10)
    waiting = [q.submit("s", f"{i}.jpg", lambda: b"x" * 10) for i in range(q.max_pending)]
    with pytest.raises(QueueFull, match="the server is busy \\(8 photos waiting\\)"):
        q.submit("s", "one-too-many.jpg", lambda: None)
    release.set()
    assert all(t.result(10) == b"x" * 10 for t in waiting)
    assert all(t.fn is None for t in waiting)  # a finished job lets go of its upload


def test_one_photo_at_a_time_from_many_threads(q):
    """Eight sessions submit from their own threads at once: every job runs alone, and each
    session gets its own results back."""
    busy, overlap, lock = [0], [False], threading.Lock()
    results: dict[str, list] = {}

    def job(session, i):
        with lock:
            busy[0] += 1
            overlap[0] |= busy[0] > 1
        time.sleep(0.002)
        with lock:
            busy[0] -= 1
        return (session, i)

    def session(name):
        tickets = [q.submit(name, f"{i}.jpg", lambda i=i: job(name, i)) for i in range(4)]
        results[name] = [t.result(30) for t in tickets]

    q.max_pending = 64
    threads = [threading.Thread(target=session, args=(f"s{k}",)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not overlap[0]
    assert results == {f"s{k}": [(f"s{k}", i) for i in range(4)] for k in range(8)}


def test_closed_queue_refuses_and_cancels(q):
    gate, release, started = _gate()
    q.submit("s", "gate.jpg", gate)
    assert started.wait(10)
    waiting = q.submit("s", "w.jpg", lambda: 1)
    q.close(timeout=0)  # while the gate still runs: the waiting photo is dropped
    with pytest.raises(Cancelled, match="shutting down"):
        waiting.result(1)
    with pytest.raises(Cancelled, match="shutting down"):
        q.submit("s", "late.jpg", lambda: 1)
    release.set()


def test_shared_queue_is_one_per_process():
    assert shared_queue() is shared_queue()


def test_ill_args():
    with pytest.raises(ValueError, match="max_pending must be at least 1"):
        InferenceQueue(max_pending=0)


class _Slow:
    signs = ["erythema"]

    def __init__(self):
        self.calls = []

    def predict(self, image, **kwargs):
        self.calls.append(kwargs["name"])
        time.sleep(0.05)
        return f"scored {kwargs['name']}"


def test_queued_predictor_reports_its_place_and_refuses_corrupt_files_at_once(q):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    gate, release, started = _gate()
    q.submit("other", "gate.jpg", gate)
    assert started.wait(10)
    model, seen = _Slow(), []
    queued = QueuedPredictor(model, q, "me", on_wait=lambda ahead: seen.append(ahead), poll=0.01)
    assert queued.signs == ["erythema"]  # everything but predict passes through
    t0 = time.perf_counter()
    with pytest.raises(DermsevError, match="bad.jpg: not an image"):
        queued.predict(b"this is not a jpeg", name="bad.jpg")
    with pytest.raises(DermsevError, match="empty.png: file is empty"):
        queued.predict(b"", name="empty.png")
    assert time.perf_counter() - t0 < 1 and q.pending() == 0  # at once, never queued
    threading.Timer(0.2, release.set).start()
    assert queued.predict(buf.getvalue(), name="ok.png") == "scored ok.png"
    assert seen[0] == 1 and model.calls == ["ok.png"]  # "1 photo ahead of yours" while the gate ran


def test_a_closed_session_drops_its_queued_photos(q):
    gate, release, started = _gate()
    q.submit("other", "gate.jpg", gate)
    assert started.wait(10)
    model = _Slow()
    mine = q.submit("closing", "earlier.jpg", lambda: model.predict(None, name="earlier.jpg"))

    def page_gone(ahead):  # streamlit raises in a stopped session's next element call
        raise RuntimeError("session stopped")

    queued = QueuedPredictor(model, q, "closing", on_wait=page_gone, poll=0.01)
    with pytest.raises(RuntimeError, match="session stopped"):
        queued.predict(None, name="later.jpg")
    release.set()
    with pytest.raises(Cancelled, match="cancelled"):
        mine.result(5)
    assert q.pending() == 0 and model.calls == []


@pytest.mark.parametrize("side", [12_000, 40_000])  # Pillow warns past 100 MP, refuses past 200 MP
def test_a_decompression_bomb_gets_the_readers_message_at_once(q, side):
    """A PNG declaring 144 MP or 1.6 GP is refused before it queues, in the words the model's
    reader uses when it is scored directly (not "could not be scored (DecompressionBombError)")."""
    from dashboard.scoring import score_files
    from model.data.io import read_image
    from tests.model.data.test_io import png_claiming

    bomb = png_claiming(side, side)
    with pytest.raises(DermsevError) as direct:
        read_image(bomb, "bomb.png")
    assert "too many pixels (possible decompression bomb; limit 100 MP)" in str(direct.value)
    model = _Slow()
    batch = score_files(QueuedPredictor(model, q, "me", poll=0.01), [("bomb.png", bomb)], age=None,
                        sex=None, region="trunk")  # fmt: skip
    assert batch.errors == [str(direct.value)] and not batch.photos
    assert model.calls == [] and q.pending() == 0  # refused before it queued
