"""Batching in the inference queue: photos of different sessions that share a working shape run
as one forward, with or without TTA, each session getting its own maps (issue 20, item 1)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dashboard.inference_queue import Cancelled, InferenceQueue, QueuedPredictor, QueueFull
from model.inference.tta import VIEWS

DEMO = Path(__file__).resolve().parents[2] / "model" / "assets" / "demo" / "config.json"


class FakeNet:
    """A predictor with the real one's stages. Its "network" returns each photo's working
    tensor plus its patient's age, so a mix-up between sessions shows; it records the batch
    size (images) of every forward, and chokes on a photo full of NaN (one bad photo)."""

    signs = ["erythema"]

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.unblock = threading.Event()
        self.unblock.set()

    def prepare(self, image, name=None, white_balance=None, neutral_box=None):
        return SimpleNamespace(x=np.asarray(image, np.float32), name=name)

    def forward_all(self, x, age=None, sex=None):
        self.batches.append(len(x))
        self.unblock.wait(10)
        if np.isnan(x).any():
            raise RuntimeError("the network choked")
        ages = list(age) if isinstance(age, list) else [age] * len(x)
        return x + np.array([a or 0.0 for a in ages], np.float32)[:, None, None, None]

    def from_output(self, prepared, out):
        return prepared.name, out

    def predict(self, image, **kwargs):  # the whole photo as one job
        return "whole", kwargs


def views3(x: np.ndarray) -> np.ndarray:
    """A fake photo's batch of TTA views: the photo plus 0, 100 and 200, so a view landing in
    the wrong row shows."""
    return np.stack([x, x + 100, x + 200])


class TtaNet(FakeNet):
    """FakeNet with TTA: one batch of three views (views3)."""

    @staticmethod
    def tta_views(x):
        return [views3(x)]

    def from_output(self, prepared, out):
        return prepared.name, np.concatenate(out) if isinstance(out, list) else out


class OblongTtaNet(TtaNet):
    """TTA views in two batches of two shapes, as a photo that is not square has (the second
    batch's views are transposed)."""

    @staticmethod
    def tta_views(x):
        return [np.stack([x, x + 200]), np.stack([x + 100, x + 300]).swapaxes(-1, -2)]

    def from_output(self, prepared, out):
        return prepared.name, [v for batch in out for v in batch]


def photo(h: int = 4, w: int = 4, value: float = 0.0) -> np.ndarray:
    """A (C, H, W) working tensor."""
    return np.full((3, h, w), value, np.float32)


@pytest.fixture
def q():
    queue = InferenceQueue(max_pending=16, max_images=4)
    yield queue
    queue.close()


def hold(q: InferenceQueue) -> threading.Event:
    """Keep the worker busy until the returned event is set, so a test can fill the queue."""
    release, started = threading.Event(), threading.Event()
    q.submit("other", "gate.jpg", lambda: started.set() or release.wait(10))
    assert started.wait(10)
    return release


def wait_pending(q: InferenceQueue, n: int) -> None:
    for _ in range(1000):
        if q.pending() == n:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{q.pending()} photos pending, expected {n}")


def test_concurrent_sessions_share_forwards_and_get_their_own_results(q):
    net, n = FakeNet(), 6
    release = hold(q)

    def session(k: int):
        queued = QueuedPredictor(net, q, f"s{k}", poll=0.01)
        return queued.predict(photo(value=k), name=f"{k}.jpg", age=10.0 * k, sex="F")

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(session, k) for k in range(n)]
        wait_pending(q, n)
        release.set()
        results = [f.result(10) for f in futures]
    assert net.batches == [4, 2]  # 6 photos in 2 forwards (max_images 4)
    for k, (name, out) in enumerate(results):
        assert name == f"{k}.jpg" and out.shape == (3, 4, 4)
        np.testing.assert_array_equal(out, k + 10.0 * k)  # its own photo and its own age


def test_different_shapes_and_models_are_not_batched_and_order_is_kept(q):
    net, other = FakeNet(), FakeNet()
    release = hold(q)
    jobs = [(net, photo(4, 4)), (net, photo(4, 4)), (net, photo(4, 8)), (other, photo(4, 4)),
            (net, photo(4, 4))]  # fmt: skip
    tickets = [q.submit_forward(f"s{k}", f"{k}.jpg", p, x, age=k) for k, (p, x) in enumerate(jobs)]
    release.set()
    outs = [t.result(10) for t in tickets]
    assert net.batches == [2, 1, 1] and other.batches == [1]  # a photo never overtakes another
    assert [o.shape for o in outs] == [x.shape for _, x in jobs]
    assert [float(o.max()) for o in outs] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_failing_photo_does_not_fail_the_others_in_its_batch(q):
    net = FakeNet()
    release = hold(q)
    good1 = q.submit_forward("s1", "a.jpg", net, photo(value=1), age=5)
    bad = q.submit_forward("s2", "bad.jpg", net, photo(value=np.nan))
    good2 = q.submit_forward("s3", "c.jpg", net, photo(value=2), age=7)
    release.set()
    np.testing.assert_array_equal(good1.result(10), 6.0)
    np.testing.assert_array_equal(good2.result(10), 9.0)
    with pytest.raises(RuntimeError, match="choked"):
        bad.result(10)
    assert net.batches == [3, 1, 1, 1]  # the batch failed, then each photo alone
    assert q.submit_forward("s2", "again.jpg", net, photo(), age=1).result(10).max() == 1.0


def test_cancel_removes_only_that_sessions_photos_from_a_pending_batch(q):
    net = FakeNet()
    release = hold(q)
    mine = [q.submit_forward(s, f"{k}.jpg", net, photo(value=k), age=k)
            for k, s in enumerate(["s1", "closed", "s1", "s3", "closed"])]  # fmt: skip
    assert q.ahead(mine[3]) == 4  # the gate and three photos queued earlier
    assert q.cancel_session("closed") == 2
    assert q.ahead(mine[3]) == 3
    release.set()
    assert [float(mine[k].result(10).max()) for k in (0, 2, 3)] == [0.0, 4.0, 6.0]
    for k in (1, 4):
        with pytest.raises(Cancelled, match="cancelled"):
            mine[k].result(1)
    assert net.batches == [3]


def test_photos_behind_a_running_batch_count_all_of_it(q):
    net = FakeNet()
    net.unblock.clear()
    release = hold(q)
    batch = [q.submit_forward(f"s{k}", f"{k}.jpg", net, photo()) for k in range(3)]
    behind = q.submit_forward("s9", "late.jpg", net, photo(8, 8))
    release.set()
    for _ in range(1000):  # until the batch of three runs (blocked in forward_all)
        if net.batches:
            break
        threading.Event().wait(0.01)
    assert net.batches == [3] and q.ahead(behind) == 3 and q.ahead(batch[0]) == 0
    net.unblock.set()
    assert behind.result(10).shape == (3, 8, 8) and net.batches == [3, 1]


def test_tta_and_plain_photos_share_a_forward_and_get_their_own_results():
    """Sessions with TTA on and off, the same working shape: one forward of all their images
    (3 views a TTA photo), each session getting its own rows back."""
    q = InferenceQueue(max_images=16)  # room for all 11 images
    try:
        net, tta = TtaNet(), [True, False, True, False, True]  # 3 + 1 + 3 + 1 + 3 = 11 images
        release = hold(q)

        def session(k: int):
            queued = QueuedPredictor(net, q, f"s{k}", poll=0.01)
            return queued.predict(photo(value=k), name=f"{k}.jpg", age=10.0 * k, tta=tta[k])

        with ThreadPoolExecutor(len(tta)) as pool:
            futures = [pool.submit(session, k) for k in range(len(tta))]
            wait_pending(q, len(tta))
            release.set()
            results = [f.result(10) for f in futures]
    finally:
        q.close()
    assert net.batches == [11]
    for k, (name, out) in enumerate(results):
        assert name == f"{k}.jpg"
        if tta[k]:  # its three views, in order, each with its own age
            assert out.shape == (3, 3, 4, 4)
            assert [float(v.max()) for v in out] == [11.0 * k + d for d in (0, 100, 200)]
        else:
            assert out.shape == (3, 4, 4)
            np.testing.assert_array_equal(out, 11.0 * k)


def test_the_limit_counts_images_and_never_splits_a_photo(q):
    """max_images 4: a TTA photo is 3 images, a plain one 1; a batch stops before the limit."""
    net = TtaNet()
    release = hold(q)
    views = [True, True, False, False, False, True]
    tickets = [q.submit_forward(f"s{k}", f"{k}.jpg", net, views3(photo(value=k)) if v else photo(value=k),
                                age=k) for k, v in enumerate(views)]  # fmt: skip
    release.set()
    outs = [t.result(10) for t in tickets]
    assert net.batches == [3, 4, 2, 3]  # TTA | TTA + plain | plain + plain | TTA
    assert [o.shape for o in outs] == [(3, 3, 4, 4) if v else (3, 4, 4) for v in views]
    assert [float(o.min()) for o in outs] == [2.0 * k for k in range(len(views))]


def test_a_failing_tta_photo_does_not_fail_the_others_in_its_batch():
    q = InferenceQueue()
    try:
        net = TtaNet()
        release = hold(q)
        good = q.submit_forward("s1", "a.jpg", net, views3(photo(value=1)), age=5)
        bad = q.submit_forward("s2", "bad.jpg", net, views3(photo(value=np.nan)))
        plain = q.submit_forward("s3", "c.jpg", net, photo(value=2), age=7)
        release.set()
        assert [float(v.max()) for v in good.result(10)] == [6.0, 106.0, 206.0]
        np.testing.assert_array_equal(plain.result(10), 9.0)
        with pytest.raises(RuntimeError, match="choked"):
            bad.result(10)
        assert net.batches == [7, 3, 3, 1]  # the batch failed, then each photo alone
    finally:
        q.close()


def test_unknown_keywords_and_tta_without_views_run_the_whole_predict_alone(q):
    net, bare = TtaNet(), FakeNet()
    assert QueuedPredictor(net, q, "s", poll=0.01).predict(photo(), region="arm")[0] == "whole"
    queued = QueuedPredictor(bare, q, "s", poll=0.01)
    assert queued.predict(photo(), name="t.jpg", tta=True) == ("whole", {"name": "t.jpg", "tta": True})
    assert net.batches == [] and bare.batches == []
    assert queued.predict(photo(value=1), name="b.jpg", age=2)[1].max() == 3.0
    assert bare.batches == [1]


def test_max_images_one_runs_every_photo_alone():
    q = InferenceQueue(max_images=1)
    try:
        net = TtaNet()
        release = hold(q)
        xs = [photo(), views3(photo()), photo()]
        tickets = [q.submit_forward(f"s{k}", "p.jpg", net, x) for k, x in enumerate(xs)]
        release.set()
        [t.result(10) for t in tickets]
        assert net.batches == [1, 3, 1]  # a TTA photo's views stay together, over the limit
    finally:
        q.close()


def test_a_photos_two_batches_of_views_are_queued_together_and_counted_as_one_photo():
    q = InferenceQueue(max_pending=2)  # photos, not batches: three batches of two photos fit
    try:
        net = OblongTtaNet()
        release = hold(q)
        mine = q.submit_forwards("s1", "a.jpg", net, net.tta_views(photo(value=1)), age=5)
        later = q.submit_forward("s2", "b.jpg", net, photo(value=2))
        assert [q.ahead(t) for t in mine] == [1, 1]  # the held job; not its own other half
        assert q.ahead(later) == 2  # the held job and one photo, not three
        with pytest.raises(QueueFull, match="2 photos waiting"):  # both batches or neither
            q.submit_forwards("s3", "c.jpg", net, net.tta_views(photo(value=3)))
        assert q.pending() == 2 and len(q._jobs) == 3
        release.set()
        assert [float(t.result(10).max()) for t in mine] == [206.0, 306.0]
        assert later.result(10).max() == 2.0
    finally:
        q.close()


def test_a_queued_tta_photo_in_two_batches_gets_all_four_views_back(q):
    net = OblongTtaNet()
    name, out = QueuedPredictor(net, q, "s", poll=0.01).predict(photo(4, 6, value=1), name="p.jpg", age=2, tta=True)
    assert name == "p.jpg" and [float(v.max()) for v in out] == [3.0, 203.0, 103.0, 303.0]
    assert net.batches == [2, 2]


def test_ill_args():
    with pytest.raises(ValueError, match="max_images must be at least 1"):
        InferenceQueue(max_images=0)


@pytest.fixture(scope="module")
def demo():
    if not DEMO.is_file():
        pytest.skip("the bundled demo model is not built yet")
    from model.inference import load_model

    return load_model(backend="torch-fp32")


@pytest.mark.parametrize(("tta", "shape", "forwards", "batches_run"), [
    ((False, False), (96, 128), 2, [2]),
    ((True, True), (128, 128), 2, [2 * VIEWS]),  # a square photo's views: one batch of its shape
    ((True, True), (96, 128), 4, [VIEWS, VIEWS]),  # not square: each shape's views of both photos
    ((True, False), (96, 128), 3, [VIEWS // 2, VIEWS // 2 + 1]),  # the upright half joins the plain photo
])  # fmt: skip
def test_demo_model_batched_forward_equals_single_forwards(demo, tta, shape, forwards, batches_run):
    """Two sessions' photos of different patients, with TTA on or off, batched through the
    queue, get the maps and uncertainty each would get from `predict` alone."""
    q = InferenceQueue()
    rng = np.random.default_rng(0)
    photos = [np.clip(rng.normal((200, 150, 130), 25, (*shape, 3)), 0, 255).astype(np.uint8)
              for _ in range(2)]  # fmt: skip
    patients = [(20.0, "F"), (75.0, "M")]
    alone = [demo.predict(p, age=a, sex=s, tta=t) for p, (a, s), t in zip(photos, patients, tta, strict=True)]
    other_age = demo.predict(photos[0], age=75.0, sex="M")
    assert np.abs(other_age.work_maps - alone[0].work_maps).max() > 1e-3  # the patient matters

    batches = []
    forward_all = demo.forward_all
    demo.forward_all = lambda x, age=None, sex=None: (
        batches.append(len(x)) or forward_all(x, age, sex)
    )
    try:
        release = hold(q)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(QueuedPredictor(demo, q, f"s{k}", poll=0.01).predict, p, age=a, sex=s, tta=t)
                       for k, (p, (a, s), t) in enumerate(zip(photos, patients, tta, strict=True))]  # fmt: skip
            wait_pending(q, len(photos))  # both halves of a photo are queued at once
            assert len(q._jobs) == forwards
            release.set()
            batched = [f.result(60) for f in futures]
    finally:
        del demo.forward_all
        q.close()
    assert sorted(batches) == sorted(batches_run)  # the two sessions' order in the queue is a race
    for b, a, t in zip(batched, alone, tta, strict=True):
        assert np.abs(b.work_maps - a.work_maps).max() < 1e-5
        assert b.scores == pytest.approx(a.scores, abs=1e-5)
        assert (b.uncertainty is None) == (not t)
        if t:
            assert b.uncertainty.keys() == a.uncertainty.keys()
            for sign, (lo, hi) in a.uncertainty.items():
                assert b.uncertainty[sign] == pytest.approx((lo, hi), abs=1e-5)
