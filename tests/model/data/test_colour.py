"""White balance (model/data/colour.py): hand-computed gains, casts removed, odd inputs, ill args."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import colour
from model.data.colour import (
    GreyWorld,
    apply_gains,
    balance,
    chromaticity,
    patch_gains,
    planckian_gains,
    reference_from_config,
    rgb_indices,
    to_linear,
    to_srgb,
    training_reference,
)


def u8(linear: np.ndarray) -> np.ndarray:
    return (to_srgb(np.asarray(linear, np.float32)) * 255 + 0.5).astype(np.uint8)


def skin_photo(seed: int = 0, h: int = 48, w: int = 64) -> np.ndarray:
    """(h, w, 3) uint8: a skin tone with texture and a red patch, in linear light first."""
    rng = np.random.default_rng(seed)
    lin = np.float32([0.55, 0.32, 0.24]) * rng.uniform(0.7, 1.1, (h, w, 1)).astype(np.float32)
    lin[h // 4: h // 2, w // 4: w // 2] *= np.float32([1.1, 0.6, 0.6])
    return u8(lin)


def relight(img: np.ndarray, gains) -> np.ndarray:
    return u8(to_linear(img / 255.0) * np.float32(gains))


def test_transfer_curve_known_values_and_round_trip() -> None:
    assert to_linear(np.float32(0.5)) == pytest.approx(0.2140, abs=1e-4)
    assert to_srgb(np.float32(0.2140)) == pytest.approx(0.5, abs=1e-4)
    x = np.linspace(0, 1, 101, dtype=np.float32)
    assert np.allclose(to_srgb(to_linear(x)), x, atol=1e-5)


def test_planckian_gains_warm_below_and_cool_above_the_reference() -> None:
    assert np.allclose(planckian_gains(6500), 1, atol=1e-6)
    warm, cool = planckian_gains(3000), planckian_gains(7500)
    assert warm[0] > 1 > warm[1] > warm[2]  # tungsten: red up, blue down
    assert cool[2] > 1 > cool[0]


def test_grey_world_hand_computed_on_a_uniform_photo() -> None:
    """Linear colour c = (0.5, 0.25, 0.125) towards a neutral reference: gains Y(c) / c with
    Y(c) = 0.2126 * 0.5 + 0.7152 * 0.25 + 0.0722 * 0.125 = 0.294125; the photo comes out grey."""
    c = np.float32([0.5, 0.25, 0.125])
    photo = np.broadcast_to(to_srgb(c), (4, 4, 3)).astype(np.float32)  # float photos are sRGB on 0..1
    gains = colour.grey_world_gains(photo, chromaticity(np.ones(3)), GreyWorld(axis="chroma"))
    assert gains == pytest.approx(0.294125 / c, rel=1e-3)
    out = apply_gains(photo, gains)
    assert out.dtype == np.float32 and np.ptp(out[0, 0]) < 1e-3
    assert to_linear(out[0, 0]) == pytest.approx([0.294125] * 3, rel=2e-3)


@pytest.mark.parametrize("axis", ["planckian", "chroma"])
@pytest.mark.parametrize("kelvin", [3000, 4000, 5000, 7500])
def test_grey_world_removes_a_colour_temperature_cast(axis: str, kelvin: float) -> None:
    photo = skin_photo()
    cfg = GreyWorld(axis=axis)
    ref = chromaticity(colour.photo_statistic(photo, cfg))  # the photo itself is the reference
    cast = relight(photo, planckian_gains(kelvin))
    gains = colour.grey_world_gains(cast, ref, cfg)
    net = gains * planckian_gains(kelvin)  # what is left of the cast: a change of brightness only
    assert net / net.mean() == pytest.approx([1, 1, 1], rel=0.04)
    back = balance(cast, "grey-world", ref, cfg=cfg)[0]
    assert np.abs(back.astype(int) - relight(photo, net.mean())).mean() < 2.5  # 0..255 units


def same_colour(out: np.ndarray, photo: np.ndarray) -> bool:
    """out is photo up to a brightness factor (the balance keeps the cast photo's brightness)."""
    lin, ref = to_linear(out / 255.0), to_linear(photo / 255.0)
    k = float(lin.mean() / ref.mean())
    return np.abs(out.astype(int) - relight(photo, k)).mean() < 2.5


def test_the_planckian_axis_keeps_redness_that_is_not_lighting() -> None:
    """A magenta tint (red and blue up, green down) is off the locus: chroma removes it, the
    default leaves most of it (erythema lives on the red-green axis)."""
    photo = skin_photo()
    tint = np.float32([1.25, 0.8, 1.25])
    tinted = relight(photo, tint)
    for axis, kept in (("chroma", False), ("planckian", True)):
        cfg = GreyWorld(axis=axis)
        ref = chromaticity(colour.photo_statistic(photo, cfg))
        g = colour.grey_world_gains(tinted, ref, cfg)
        green_vs_red = (g[1] / g[0]) / (tint[0] / tint[1])  # 1 = the tint fully undone
        assert (green_vs_red < 0.8) == kept, (axis, g)


def test_grey_world_keeps_brightness() -> None:
    photo = skin_photo()
    out, _ = balance(relight(photo, planckian_gains(3500)), "grey-world", chromaticity(np.ones(3)))
    y = lambda im: float((to_linear(im / 255.0) @ colour.LUMA).mean())  # noqa: E731
    assert y(out) == pytest.approx(y(relight(photo, planckian_gains(3500))), rel=0.06)


@pytest.mark.parametrize("stops", [-1.0, -0.5, 0.5])
@pytest.mark.parametrize("method", ["grey-world", "patch"])
def test_exposure_normalisation_undoes_a_change_of_exposure(stops: float, method: str) -> None:
    photo = skin_photo()
    ref, box = chromaticity(colour.photo_statistic(photo)), (0, 0, 16, 12)
    target = float(colour.LUMA @ colour.photo_statistic(photo))
    shifted = relight(photo, 2.0**stops)
    kept = balance(shifted, method, ref, box)[0].astype(int)
    normalised, gains = balance(shifted, method, ref, box, luminance=target)
    back = balance(photo, method, ref, box, luminance=target)[0].astype(int)
    assert np.abs(kept - back).mean() > 8  # without a target the exposure stays: the check below can fail
    assert np.abs(normalised.astype(int) - back).mean() < 1.5  # only rounding of the 8-bit photo is left
    assert gains == pytest.approx(balance(photo, method, ref, box, luminance=target)[1] * 2.0**-stops, rel=0.05)


def test_exposure_normalisation_is_bounded_and_only_for_models_trained_with_it() -> None:
    photo = skin_photo()
    target = float(colour.LUMA @ colour.photo_statistic(photo))
    dark = relight(photo, 2.0**-4)
    gain = colour.exposure_gain(dark, np.ones(3), target)
    assert gain == pytest.approx(2.0**colour.EXPOSURE_STOPS)  # 4 stops under: brought up by 2 at most
    assert colour.exposure_gain(np.full((8, 8), 99, np.uint8), np.ones(3), target) == 1.0  # no colour planes
    ref = training_reference([photo, relight(photo, 0.5), relight(photo, 2.0)])
    assert ref["luminance"] == pytest.approx(target, rel=0.03)  # the median photo's
    assert colour.exposure_target({"input": {"white_reference": ref}}) is None  # trained without it
    assert colour.exposure_target({"input": {"white_reference": ref, "normalise_exposure": True}}) == ref["luminance"]
    old = {k: v for k, v in ref.items() if k != "luminance"}  # a reference stored before the luminance
    assert colour.exposure_target({"input": {"white_reference": old, "normalise_exposure": True}}) is None


def test_neutral_patch_gives_equal_channels() -> None:
    photo = skin_photo(h=60, w=80)
    photo[5:25, 50:75] = u8(np.float32([0.42, 0.30, 0.15]))  # a grey card under warm light
    gains = patch_gains(photo, (50, 5, 75, 25))
    assert gains == pytest.approx(float(colour.LUMA @ np.float32([0.42, 0.30, 0.15])) / np.float32([0.42, 0.30, 0.15]),
                                  rel=0.02)
    out = apply_gains(photo, gains)
    card = out[5:25, 50:75].reshape(-1, 3).astype(int)
    assert np.abs(card - card.mean(1, keepdims=True)).max() <= 2


def test_patch_box_is_clipped_to_the_photo_and_given_any_corner_order() -> None:
    photo = skin_photo()
    assert patch_gains(photo, (70, 60, -10, 40)) == pytest.approx(patch_gains(photo, (0, 40, 64, 48)))


@pytest.mark.parametrize("image", [
    np.full((1, 1, 3), (200, 150, 120), np.uint8),  # 1x1
    np.full((8, 8), 128, np.uint8),  # grey, 2-D
    np.full((8, 8, 1), 0.5, np.float32),  # grey, one channel
    np.zeros((8, 8, 3), np.uint8),  # black
    np.full((8, 8, 3), 255, np.uint8),  # white
    np.full((8, 8, 3), np.nan, np.float32),  # NaN
])
@pytest.mark.parametrize("method", ["none", "grey-world"])
def test_odd_images_never_crash_and_keep_shape_and_dtype(image: np.ndarray, method: str) -> None:
    out, gains = balance(image, method, chromaticity(np.float32([1.8, 0.8, 0.5])))
    assert out.shape == image.shape and out.dtype == image.dtype
    assert gains.shape == (3,) and np.all(np.isfinite(gains)) and np.all(gains > 0)


def test_uint16_and_float_are_balanced_in_their_own_dtype() -> None:
    photo = skin_photo()
    ref = chromaticity(colour.photo_statistic(photo))
    warm = relight(photo, planckian_gains(3500))
    assert not same_colour(warm, photo)  # the check below can fail
    for img in (warm.astype(np.uint16) * 257, warm.astype(np.float32) / 255):
        out, _ = balance(img, "grey-world", ref)
        assert out.dtype == img.dtype
        scale = 65535.0 if img.dtype == np.uint16 else 1.0
        assert same_colour((out / scale * 255 + 0.5).astype(np.uint8), photo)


def test_six_channels_balance_only_the_colour_planes() -> None:
    photo = skin_photo()
    extra = np.random.default_rng(1).integers(0, 256, photo.shape, dtype=np.uint8)
    six = np.concatenate([extra, relight(photo, planckian_gains(3500))], axis=2)  # R, G, B are planes 3..5
    ref = chromaticity(colour.photo_statistic(photo))
    out, _ = balance(six, "grey-world", ref, rgb=(3, 4, 5))
    assert np.array_equal(out[:, :, :3], extra)
    assert same_colour(out[:, :, 3:], photo)
    assert np.array_equal(balance(six, "grey-world", ref, rgb=None)[0], six)  # no colour planes: unchanged


def test_training_reference_and_config_fallbacks() -> None:
    photos = [skin_photo(seed) for seed in range(5)]
    ref = training_reference(photos)
    assert ref["statistic"] == GreyWorld().statistic and ref["n"] == 5
    assert float(colour.LUMA @ np.array(ref["rgb"])) == pytest.approx(1, abs=1e-4)
    stored = reference_from_config({"input": {"white_reference": ref}})
    assert stored == pytest.approx(ref["rgb"], rel=1e-5)
    other = {"input": {"white_reference": {**ref, "statistic": "linear-p6"}, "mean": [0.5, 0.5, 0.5]}}
    assert reference_from_config(other) == pytest.approx([1, 1, 1])  # another statistic: the mean colour
    assert reference_from_config({}) == pytest.approx([1, 1, 1])
    assert colour.reference_for_channels(photos, ["uv", "ir"]) is None


def test_rgb_indices_by_name() -> None:
    assert rgb_indices(["Blue", "green", "red", "uv"]) == (2, 1, 0)
    assert rgb_indices(["gray"]) is None


@pytest.mark.parametrize(("call", "match"), [
    (lambda: balance(skin_photo(), "grey"), "white balance must be one of"),
    (lambda: balance(skin_photo(), "patch"), "needs a neutral box"),
    (lambda: GreyWorld(p=0.5), "p must be a number >= 1"),
    (lambda: GreyWorld(axis="diagonal"), "axis must be one of"),
    (lambda: balance(np.zeros((0, 4, 3), np.uint8), "grey-world"), "at least one pixel"),
    (lambda: balance(np.zeros((2, 2, 2, 3), np.uint8), "grey-world"), "expected an"),
    (lambda: balance(skin_photo(), "grey-world", rgb=(0, 1, 7)), "rgb must be 3 distinct"),
    (lambda: apply_gains(skin_photo(), np.float32([1, -1, 1])), "gains must be 3 positive"),
    (lambda: patch_gains(skin_photo(), (500, 500, 600, 600)), "holds no pixel"),
    (lambda: patch_gains(skin_photo(), (1, 2, 3)), "must be 4 numbers"),
    (lambda: patch_gains(np.zeros((8, 8, 3), np.uint8), (0, 0, 4, 4)), "black"),
    (lambda: training_reference([np.zeros((4, 4), np.uint8)]), "no photo with red, green and blue"),
])
def test_ill_args(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
