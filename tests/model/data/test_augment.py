"""Augmentation: image and masks move together; masks keep their values and pad with 255."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model.data.augment import (
    AUGMENT_MODES,
    Exposure,
    Jpeg,
    LowResolution,
    Renormalised,
    RGBJitter,
    apply,
    eval_transform,
    jitter_rgb,
    train_transform,
)
from model.errors import DermsevError

IGNORE = 255
SEEDS = range(40)


def square_scene(h: int = 48, w: int = 80, channels: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """A dim image with a bright off-centre square; two masks marking the same square."""
    img = np.full((h, w, channels), 0.3, np.float32)
    sl = np.s_[8:32, 44:68]
    img[sl] = 0.95
    sign_a = np.zeros((h, w), np.uint8)
    sign_a[sl] = 3
    sign_b = np.full((h, w), IGNORE, np.uint8)  # annotated only on the square
    sign_b[sl] = 1
    return img, [sign_a, sign_b]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("mode", ["full", "geometric", "flips"])
@pytest.mark.parametrize("channels", [3, 5])
def test_drawn_shape_lands_on_the_same_pixels(mode: str, channels: int) -> None:
    img, masks = square_scene(channels=channels)
    moved = 0
    for seed in SEEDS:
        out, (a, b), valid = apply(train_transform(64, mode, seed=seed), img, masks)
        assert out.shape == (64, 64, channels) and a.shape == b.shape == valid.shape == (64, 64)
        bright = out[..., 0] > 0.62  # between the jittered dim (<= 0.4) and bright (>= 0.8) levels
        assert iou(bright, a == 3) > 0.9, f"seed {seed}"
        assert iou(a == 3, b == 1) == 1.0  # every mask moves the same way
        moved += not (a == 3)[6:20, 35:55].all()
    assert moved > 0  # the transform really moved the square for some seeds


@pytest.mark.parametrize("mode", AUGMENT_MODES)
def test_masks_keep_only_their_values_and_pad_with_255(mode: str) -> None:
    rng = np.random.default_rng(0)
    img = rng.random((40, 80, 3), dtype=np.float32)
    mask = rng.choice(np.array([0, 1, 2, 3, IGNORE], np.uint8), size=(40, 80))
    blocky = np.kron(rng.integers(0, 4, (5, 10)), np.ones((8, 8))).astype(np.uint8)
    for seed in SEEDS:
        out, (m, blk), valid = apply(train_transform(64, mode, seed=seed), img, [mask, blocky])
        assert set(np.unique(m)) <= {0, 1, 2, 3, IGNORE}
        assert set(np.unique(blk)) <= {0, 1, 2, 3, IGNORE}  # nearest: no in-between values
        assert (~valid).any()  # a 40x80 photo in a 64x64 frame always has padding
        assert (m[~valid] == IGNORE).all() and (blk[~valid] == IGNORE).all()
        assert (blk[valid] != IGNORE).all()  # inside the photo the mask is never invented away
        if mode == "none":
            assert (out[~valid] == 0).all()


def test_none_places_the_photo_top_left_without_change() -> None:
    img = np.random.default_rng(1).random((32, 64, 3), dtype=np.float32)
    mask = np.ones((32, 64), np.uint8)
    out, (m,), valid = apply(train_transform(64, "none"), img, [mask])
    assert valid.sum() == 32 * 64
    rows = np.flatnonzero(valid.any(1))
    np.testing.assert_allclose(out[rows[0] : rows[-1] + 1], img, rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_geometric_never_changes_intensities(channels: int) -> None:
    colour = np.array([0.2, 0.55, 0.7, 0.9, 0.05][:channels], np.float32)
    img = np.broadcast_to(colour, (48, 80, channels)).copy()
    changed_by_full = 0
    for seed in SEEDS:
        out, _, valid = apply(train_transform(64, "geometric", seed=seed), img, [])
        inner = ndimage.binary_erosion(valid, iterations=2)  # away from the blended photo border
        assert inner.sum() > 500
        np.testing.assert_allclose(out[inner], np.broadcast_to(colour, out[inner].shape), atol=1e-5)
        out_full, _, valid_full = apply(train_transform(64, "full", seed=seed), img, [])
        inner_full = ndimage.binary_erosion(valid_full, iterations=2)
        changed_by_full += not np.allclose(out_full[inner_full], colour, atol=1e-3)
        if channels > 3:  # jitter never touches the extra channels
            np.testing.assert_allclose(out_full[inner_full][:, 3:], np.broadcast_to(colour[3:], (inner_full.sum(), channels - 3)), atol=1e-5)
    assert changed_by_full > 0  # `full` does jitter, so the check above can fail


@pytest.mark.parametrize("channels", [1, 3, 4, 6])
def test_rgb_jitter_touches_the_first_three_channels_only(channels: int) -> None:
    img = np.random.default_rng(2).random((16, 16, channels), dtype=np.float32) * 0.8 + 0.1
    out = RGBJitter(p=1.0).apply(img, brightness=1.1, contrast=0.9, saturation=1.2)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert not np.allclose(out[..., : min(3, channels)], img[..., : min(3, channels)])
    np.testing.assert_array_equal(out[..., 3:], img[..., 3:])
    assert out.min() >= 0 and out.max() <= 1


def test_jitter_identity_and_brightness() -> None:
    img = np.random.default_rng(3).random((8, 8, 3), dtype=np.float32) * 0.5
    np.testing.assert_allclose(jitter_rgb(img, 1.0, 1.0, 1.0), img, atol=1e-6)
    np.testing.assert_allclose(jitter_rgb(img, 1.5, 1.0, 1.0), img * 1.5, atol=1e-6)


@pytest.mark.parametrize("h, w", [(48, 80), (100, 37), (64, 64), (300, 200), (20, 50)])
@pytest.mark.parametrize("size", [64, 96])
def test_eval_transform_keeps_aspect_ratio_and_pads_to_32(h: int, w: int, size: int) -> None:
    img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    mask = np.zeros((h, w), np.uint8)
    out, (m,), valid = apply(eval_transform(size), img, [mask])
    oh, ow = out.shape[:2]
    assert oh % 32 == 0 and ow % 32 == 0
    assert m.shape == valid.shape == (oh, ow)
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    nh, nw = len(rows), len(cols)
    assert rows[0] == 0 and cols[0] == 0  # padding goes bottom/right
    assert valid.sum() == nh * nw  # the photo is one rectangle
    assert max(nh, nw) == size
    assert nh / nw == pytest.approx(h / w, rel=0.05, abs=1.5 / min(nh, nw))
    assert oh - nh < 32 and ow - nw < 32  # no more padding than needed
    assert (m[~valid] == IGNORE).all() and (m[valid] == 0).all()


@pytest.mark.parametrize("mode", AUGMENT_MODES)
@pytest.mark.parametrize("channels", [5, 8])
def test_many_channels_downscaled(mode: str, channels: int) -> None:
    img = np.random.default_rng(0).random((96, 160, channels), dtype=np.float32)
    out, (m,), valid = apply(train_transform(64, mode, seed=1), img, [np.zeros((96, 160), np.uint8)])
    assert out.shape == (64, 64, channels) and m.shape == (64, 64)
    out, _, _ = apply(eval_transform(64), img, [])
    assert out.shape == (64, 64, channels)


def test_same_seed_same_augmentation() -> None:
    img, masks = square_scene()
    a = apply(train_transform(64, "full", seed=5), img, masks)
    b = apply(train_transform(64, "full", seed=5), img, masks)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1][0], b[1][0])


def test_bad_mode_names_the_allowed_ones() -> None:
    with pytest.raises(DermsevError, match="geometric"):
        train_transform(64, "heavy")


def test_pipeline_serialises() -> None:
    import albumentations as A

    d = A.to_dict(train_transform(64, "full"))
    names = [t["__class_fullname__"] for t in d["transform"]["transforms"]]
    assert any("Affine" in n for n in names) and any("RGBJitter" in n for n in names)
    assert not any("RGBJitter" in t["__class_fullname__"] for t in A.to_dict(train_transform(64, "geometric"))["transform"]["transforms"])


def test_exposure_works_in_linear_light_on_rgb_only() -> None:
    img = np.full((8, 8, 4), 0.5, np.float32)
    brighter = Exposure(1.0).apply(img, gain=2.0)
    darker = Exposure(1.0).apply(img, gain=0.5)
    # sRGB 0.5 is linear 0.214: one stop up is linear 0.428 = sRGB 0.686, one down sRGB 0.361
    np.testing.assert_allclose(brighter[..., :3], 0.686, atol=0.002)
    np.testing.assert_allclose(darker[..., :3], 0.361, atol=0.002)
    assert (brighter[..., 3] == 0.5).all() and (darker[..., 3] == 0.5).all()  # an extra channel keeps its meaning
    assert Exposure(1.0).apply(np.ones((4, 4, 3), np.float32), gain=2.0).max() <= 1.0  # clipped like a sensor


def test_renormalised_overexposure_keeps_the_exposure_and_loses_only_clipped_colour() -> None:
    from model.data import colour

    rng = np.random.default_rng(0)
    lin = np.float32([0.30, 0.12, 0.08]) * rng.uniform(0.6, 1.0, (32, 32, 1)).astype(np.float32)  # reddish skin
    photo = colour.to_srgb(lin)
    ref = colour.chromaticity(colour.photo_statistic(photo))
    target = float(colour.LUMA @ colour.photo_statistic(photo))
    aug = Renormalised({"reference": ref, "luminance": target, "rgb": (0, 1, 2)})
    mild = aug.apply(photo, gains=np.full(3, 2.0, np.float32))  # red at most 0.6 linear: nothing clips
    np.testing.assert_allclose(mild, photo, atol=2e-3)  # the normalisation undoes the gain
    harsh = aug.apply(photo, gains=np.full(3, 4.0, np.float32))  # red clips on the brighter pixels
    # back near the target exposure (not 4x it); not exactly: the statistic skips clipped pixels
    assert 0.8 < float(colour.LUMA @ colour.photo_statistic(harsh)) / target < 1.25
    assert np.abs(harsh - photo).max() > 0.02  # the clipped colour is lost, not scaled back
    assert Renormalised({"reference": ref, "luminance": target, "rgb": None}).apply(photo, gains=np.full(3, 4.0, np.float32)) is photo
    steps = train_transform(64, "geometric", renormalise=({"reference": ref, "luminance": target, "rgb": (0, 1, 2)}, 0.3))
    assert any(isinstance(t, Renormalised) for t in steps.transforms)
    assert not any(isinstance(t, Renormalised) for t in train_transform(64, "geometric").transforms)


def test_overexposure_needs_normalised_exposure() -> None:
    from model.training.train import TrainConfig

    with pytest.raises(DermsevError, match="overexposure must be a chance 0..1, and needs normalise_exposure"):
        TrainConfig(overexposure=0.3)
    with pytest.raises(DermsevError, match="overexposure must be a chance"):
        TrainConfig(white_balance="grey-world", normalise_exposure=True, overexposure=1.5)


def test_low_resolution_blurs_detail_of_any_channel_count() -> None:
    img = np.zeros((32, 32, 6), np.float32)
    img[::2] = 1.0  # one-pixel stripes in every channel
    out = LowResolution().apply(img, factor=0.5)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.std() < 0.1 * img.std()  # stripes finer than the lower resolution are gone
    np.testing.assert_allclose(out.mean(), img.mean(), atol=0.02)


def test_jpeg_round_trip_loses_detail_on_rgb_only() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 4), dtype=np.float32)
    low, high = Jpeg().apply(img, q=40), Jpeg().apply(img, q=95)
    err = {q: float(np.abs(out[..., :3] - img[..., :3]).mean()) for q, out in ((40, low), (95, high))}
    assert err[40] > err[95] > 0  # lower quality loses more of the noise texture
    assert (low[..., 3] == img[..., 3]).all()
    assert low.dtype == np.float32 and low.min() >= 0 and low.max() <= 1


def test_photo_mode_degrades_some_samples_and_keeps_masks() -> None:
    import albumentations as A

    def steps(mode: str) -> list[str]:
        return [t["__class_fullname__"] for t in A.to_dict(train_transform(64, mode))["transform"]["transforms"]]

    names = steps("photo")
    for part in ("RandomRotate90", "LowResolution", "GaussianBlur", "Exposure", "Jpeg"):
        assert any(part in n for n in names), part
    assert set(steps("full")) < set(names)  # what "full" does (the affine, the flip, the jitter) and more
    img, masks = square_scene(64, 64)
    geo = [apply(train_transform(64, "geometric", seed=s), img, masks) for s in SEEDS]
    photo = [apply(train_transform(64, "photo", seed=s), img, masks) for s in SEEDS]
    # quarter turns put the square in every corner; flips alone, in two
    corners = {tuple(np.argwhere(p[1][0] == 3).mean(0) > 32) for p in photo}
    assert len(corners) == 4 and len({tuple(np.argwhere(g[1][0] == 3).mean(0) > 32) for g in geo}) == 2
    for _, (a, _), _ in photo:
        assert set(np.unique(a)) <= {0, 3, IGNORE}


def test_flips_move_pixels_without_blending_and_reach_all_eight_symmetries() -> None:
    rng = np.random.default_rng(3)
    img = rng.random((64, 64, 3), dtype=np.float32)
    labels = rng.integers(0, 4, (64, 64)).astype(np.uint8)
    d4 = [np.rot90(f, k) for f in (labels, labels[:, ::-1]) for k in range(4)]
    seen = set()
    for seed in SEEDS:
        out, (m,), valid = apply(train_transform(64, "flips", seed=seed), img, [labels])
        assert valid.all()
        # every output pixel is an input pixel, with its own label: nothing interpolated
        match = [k for k, ref in enumerate(d4) if np.array_equal(m, ref)]
        assert len(match) == 1, f"seed {seed}: the mask is not one symmetry of the input"
        k = match[0]
        src = img if k < 4 else img[:, ::-1]
        np.testing.assert_array_equal(out, np.rot90(src, k % 4))
        seen.add(k)
    assert seen == set(range(8))


def test_photo_mode_leaves_plain_exposure_out_for_exposure_normalised_photos() -> None:
    # `predict` divides a normalised model's photo exposure out, so "photo" must not teach it
    # exposure shifts it never sees; only the overexposure that clips (Renormalised) is left.
    normalise = {"reference": np.float32([0.4, 0.33, 0.27]), "luminance": 0.2, "rgb": (0, 1, 2)}

    def kinds(**kw) -> set[type]:
        return {type(t) for t in train_transform(64, "photo", **kw).transforms}

    assert Exposure in kinds()
    assert Exposure not in kinds(renormalise=(normalise, 0.3)) and Renormalised in kinds(renormalise=(normalise, 0.3))
    assert not {Exposure, Renormalised} & kinds(renormalise=(normalise, 0.0))  # normalised, no overexposure asked


def _crop_origins(transform, h: int = 64, w: int = 96, n: int = 400) -> list[tuple[int, int]]:
    """Where each of n crops of an (h, w) image whose pixels hold their own coordinates starts."""
    yy, xx = np.mgrid[:h, :w]
    img = np.dstack([yy, xx, np.zeros_like(yy)]).astype(np.float32)
    out = []
    for _ in range(n):
        c = transform(image=img, mask=yy.astype(np.uint8))
        assert (c["mask"] == c["image"][..., 0]).all()  # the mask is cut where the image is
        out.append((int(c["image"][0, 0, 0]), int(c["image"][0, 0, 1])))
    return out


def test_edge_crops_lie_against_the_photo_edge_as_often_as_asked() -> None:
    import albumentations as A

    from model.data.augment import EdgeCrop

    plain = _crop_origins(A.Compose([A.RandomCrop(32, 32)], seed=1))
    half = _crop_origins(A.Compose([EdgeCrop(32, 32, edge=0.5)], seed=1))
    always = _crop_origins(A.Compose([EdgeCrop(32, 32, edge=1.0)], seed=1))

    def at_edge(origins: list[tuple[int, int]], axis: int, last: int) -> float:
        return float(np.mean([o[axis] in (0, last) for o in origins]))

    for axis, last in ((0, 64 - 32), (1, 96 - 32)):
        assert at_edge(plain, axis, last) < 0.15  # 2 of 33 (65) positions
        assert 0.4 < at_edge(half, axis, last) < 0.65  # half snapped, plus the plain share of the rest
        assert at_edge(always, axis, last) == 1.0
    firsts = np.mean([o[0] == 0 for o in always])
    assert 0.35 < firsts < 0.65  # either side alike
    assert len(set(half)) > 50  # still anywhere along the other axis
    with pytest.raises(ValueError, match="edge must be a chance 0..1"):
        EdgeCrop(32, 32, edge=1.5)


def test_train_transform_crops_at_edges_only_when_asked() -> None:
    from model.data.augment import EdgeCrop
    from model.training.train import TrainConfig

    kinds = [type(t).__name__ for t in train_transform(64, "full", crop=32, edge_crops=0.5).transforms]
    assert "EdgeCrop" in kinds
    assert not any(isinstance(t, EdgeCrop) for t in train_transform(64, "full", crop=32).transforms)
    img, masks = square_scene(64, 64)
    out, out_masks, _ = apply(train_transform(64, "full", seed=3, crop=32, edge_crops=1.0), img, masks)
    assert out.shape[:2] == (32, 32) and all(m.shape == (32, 32) for m in out_masks)
    with pytest.raises(DermsevError, match="edge_crops must be a chance 0..1"):
        TrainConfig(edge_crops=2.0)
    assert TrainConfig(edge_crops=0.5).edge_crops == 0.5
