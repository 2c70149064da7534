"""Compose one synthetic close-up skin photo and its sign masks.

Randomness that defines a sample is drawn in `draw_params` (albumentations style); `render`
then builds the picture from those parameters plus noise fields from the same generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model.synth import confounders as cf
from model.synth import signs as sg
from model.synth import skin as sk

RGB_SIGNS = list(sg.SIGNS)
# What may fill the part of a photo that is not skin: clothing, a table, or skin covered by
# hair (scalp, beard): not skin to score, and the skin model must learn to leave it out.
BACKGROUNDS = ("fabric", "table", "hair")


@dataclass(frozen=True)
class Patient:
    """Per-patient attributes shared by all of a patient's images."""

    patient_id: str
    age: int  # years, 1..90
    sex: str  # "F" or "M"
    fitzpatrick: int  # 1..6
    tone: tuple[float, float, float]  # per-channel multiplier of the type's base tone
    hair_shade: float  # 0 = black .. 1 = light brown/blond


@dataclass(frozen=True)
class SampleParams:
    """What one image shows, drawn once by `draw_params`."""

    severities: tuple[int, int, int, int]  # peak level 0..3 per sign in `SIGNS` order
    background: str | None  # None, "fabric" (clothing), "table" or "hair" (a hair-covered region)
    hair_count: int
    hair_direction: float  # radians
    line_angles: tuple[float, ...]  # orientations of the skin-line families, radians


def channel_names(channels: int) -> list[str]:
    """Names of the `channels` image channels, in file order."""
    if channels == 1:
        return ["gray"]
    if channels == 2:
        return ["gray", "cross_polarised"]
    names = ["red", "green", "blue", "cross_polarised", "uv"][:channels]
    return names + [f"noise_{i}" for i in range(1, channels - len(names) + 1)]


def channel_signs(channels: int) -> dict[str, list[str]]:
    """Ground truth: which signs each channel carries information about."""
    carries = {
        "gray": RGB_SIGNS,
        "red": RGB_SIGNS,
        "green": RGB_SIGNS,
        "blue": RGB_SIGNS,
        "cross_polarised": ["erythema"],
        "uv": ["excoriation", "lichenification"],
    }
    return {name: list(carries.get(name, [])) for name in channel_names(channels)}


def draw_patient(rng: np.random.Generator, patient_id: str) -> Patient:
    """A patient: eczema is common in children, so ~40% are under 18."""
    age = int(rng.integers(1, 18)) if rng.random() < 0.4 else int(rng.integers(18, 91))
    fitz = int(rng.choice(6, p=[0.13, 0.2, 0.2, 0.18, 0.15, 0.14])) + 1
    # Individual tone: a little more or less melanin and blood than the type's average.
    od = rng.normal(0, 0.12) * sk.MELANIN + rng.normal(0, 0.08) * sk.HAEMOGLOBIN
    tone = tuple(float(v) for v in np.exp(-od) * rng.normal(1.0, 0.04))
    hair_shade = float(
        rng.uniform(0.3, 0.9) if fitz <= 2 and rng.random() < 0.5 else rng.uniform(0, 0.25)
    )
    return Patient(patient_id, age, str(rng.choice(["F", "M"])), fitz, tone, hair_shade)


def draw_params(rng: np.random.Generator, patient: Patient) -> SampleParams:
    """Severity of each sign independently (0..3, any combination), background, hair."""
    sev = tuple(int(v) for v in rng.choice(4, size=4, p=[0.28, 0.24, 0.24, 0.24]))
    background = None if rng.random() < 0.65 else str(rng.choice(BACKGROUNDS))
    # Terminal hair: dense on men, sparse and fine on women, little before puberty.
    mean = 55.0 if patient.sex == "M" else 8.0
    if patient.age < 13:
        mean *= 0.25
    theta = rng.uniform(0, np.pi)
    angles = (theta, theta + rng.uniform(0.7, 1.4), theta + rng.uniform(0.3, 2.8))
    return SampleParams(
        sev,
        background,
        int(rng.poisson(mean)),
        float(rng.uniform(0, 2 * np.pi)),
        tuple(float(a) for a in angles),
    )


def line_depth(age: float) -> float:
    """Depth (px at 256 px) of the natural skin lines: they deepen with age."""
    return 0.12 + 0.5 * (age / 90.0) ** 1.5


def render(
    rng: np.random.Generator,
    patient: Patient,
    params: SampleParams,
    size: int,
    channels: int = 3,
    confounders: tuple[cf.Confounder, ...] = (),
    shade: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sample: image (H, W, C) uint8, masks (signs, H, W) uint8 on 0..3 (no 255 yet) and
    the skin mask (H, W) uint8, 1 = skin, 0 = background, clothing, hair-covered or hidden.

    confounders: healthy look-alikes drawn before the camera (see `confounders.paint`); they
    use no draw of `rng`, so the rest of the picture is the same with or without them.
    shade: (H, W) factor on the illumination (`skin.shade_patches`), drawn from another
    stream by the caller, so the picture and its masks are otherwise the same."""
    h = w = size
    s = size / 256.0
    if params.background:
        dist = sk.skin_edge(rng, h, w, s)  # px to the skin border, > 0 on skin
    else:
        dist = np.full((h, w), 1e4, np.float32)
    masks = sg.lesion_masks(rng, params.severities, dist > 0, s)
    ie, ip, _, il = (
        sg.intensity(m, sig * s) for m, sig in zip(masks, (3.0, 1.2, 1.0, 2.0), strict=True)
    )

    # Relief (px): fine texture, pores, age-dependent lines; lichenification coarsens them.
    lines = sk.line_field(rng, h, w, list(params.line_angles), 10.5 * s, 0.9 * s, s)
    coarse = sk.line_field(rng, h, w, list(params.line_angles[:2]), 16 * s, 3.0 * s, s, 1.4, 0.7)
    depth = line_depth(patient.age) * (1 - 0.25 * ip / 3) + 0.12 * il
    cavity = lines * depth + coarse * 0.28 * il + sk.pores(rng, h, w, s) * 0.3 * (1 - il / 6)
    bumps, swelling = sg.papules(rng, ip, s)
    ero, crust, masks[2] = sg.excoriation(rng, masks[2], s)
    height = (
        0.09 * sk.fractal(rng, h, w, 3 * s, 2)
        - cavity
        + bumps
        + swelling
        + 0.45 * (il / 3) * sk.fractal(rng, h, w, 7 * s, 2)
        + crust * (0.8 + 0.2 * sk.noise(rng, h, w, 1.0))
    )

    # Colour through chromophores: melanin (mottling, lichen hyperpigmentation), haemoglobin.
    mel = (
        0.08 * sk.fractal(rng, h, w, 60 * s, 3)
        + 0.03 * sk.noise(rng, h, w, 6 * s)
        + (0.06 + 0.03 * patient.fitzpatrick) * il / 3
    )
    halo = cv2.GaussianBlur(ero, (0, 0), max(0.3, 2.0 * s))
    hb = (
        0.05
        + 0.035 * sk.fractal(rng, h, w, 35 * s, 2)
        + 0.21 * ie * (1 + 0.15 * sk.noise(rng, h, w, 12 * s))
        + 0.05 * bumps
        + 0.05 * ip
        + 0.2 * halo
    )
    base = sk.SKIN_TONES[patient.fitzpatrick - 1] * np.array(patient.tone, np.float32)
    rgb = base * np.exp(-(mel[..., None] * sk.MELANIN + hb[..., None] * sk.HAEMOGLOBIN))
    grey = rgb.mean(axis=2, keepdims=True)
    rgb += (grey - rgb) * (0.12 * il / 3)[..., None]  # thickened skin looks dull and greyish
    ero_col = 0.5 * rgb * np.array([1.0, 0.55, 0.55], np.float32) + np.array(
        [0.3, 0.1, 0.09], np.float32
    )
    rgb += (ero_col - rgb) * ero[..., None]
    crust_col = np.float32([0.4, 0.13, 0.09]) * rng.uniform(0.8, 1.1)
    rgb += (crust_col - rgb) * np.clip(crust, 0, 1)[..., None]

    # Shading: the light comes from the bright side of the illumination gradient.
    light, phi = sk.lighting(rng, h, w)
    if shade is not None:
        light = light * shade
    sheen = rng.uniform(0.15, 0.45) * (1 + 0.25 * sk.noise(rng, h, w, 30 * s)) + 0.15 * ip / 3
    diffuse, spec = sk.shade(height, phi, rng.uniform(0.85, 1.25), sheen, rng.uniform(18, 35))
    rgb *= (diffuse * (1 - 0.18 * np.clip(cavity, 0, 2)))[..., None]
    rgb += spec[..., None] * 0.8

    hair_a = sk.hair(rng, h, w, params.hair_count, s, params.hair_direction)
    if patient.sex == "F":
        hair_a *= 0.6  # finer vellus hair
    shadow = sk.shadow(hair_a, phi, 2.0 * s, 1.2 * s)
    hair_col = np.float32([0.07, 0.05, 0.04]) + patient.hair_shade * np.float32([0.5, 0.38, 0.24])
    rgb *= (1 - 0.3 * shadow)[..., None]
    rgb += (hair_col * (0.8 + 0.4 * diffuse[..., None]) - rgb) * hair_a[..., None]

    if params.background:
        near = np.exp(-np.clip(dist, 0, None) / (14 * s))  # the limb curves away at its edge
        rgb *= (1 - 0.45 * near)[..., None]
        if params.background == "hair":  # the same skin under a dense mat of hair
            bg = sk.hair_mat(rng, rgb, s, params.hair_direction, hair_col)
        else:
            bg = sk.background(rng, h, w, s, params.background)
        bg *= (1 - 0.4 * np.exp(-np.clip(-dist, 0, None) / (8 * s)))[..., None]  # cast shadow
        alpha = np.clip(dist / max(0.6, 1.3 * s) + 0.5, 0, 1)[..., None]
        rgb = rgb * alpha + bg * (1 - alpha)

    hidden = None
    if confounders:  # under the same lighting, blur and noise as the skin; no lesion under them
        before = rgb.mean(axis=2)
        rgb, hidden, cover = cf.paint(confounders, rgb, dist > 0, s, base, hair_col, phi)
        masks[:, cover] = 0
        dim = np.clip(rgb.mean(axis=2) / np.maximum(before, 1e-3), 0, 3)  # for the extra channels

    balance = 1 + np.array([1, 0, -1], np.float32) * rng.normal(0, 0.025)
    rgb *= light[..., None] * balance
    if rng.random() < 0.5:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.3, 0.7) * max(s, 0.5))
    rgb += 0.008 * rng.standard_normal(rgb.shape, dtype=np.float32)
    rgb8 = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    skin = (dist > 0).astype(np.uint8)  # alpha >= 0.5: where the photo shows skin
    if hidden is not None:
        skin[hidden] = 0
    if channels == 3:
        return rgb8, masks, skin

    # Extra channels, drawn last so the RGB picture is the same for any channel count.
    lum = rgb8.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255
    vis = np.sqrt(np.clip(light, 0.3, 2))
    extra = {
        "gray": lum,
        # Cross-polarised: glare and texture removed; haemoglobin (erythema) stands out.
        "cross_polarised": vis * (0.28 + 0.2 * ie + 0.03 * sk.fractal(rng, h, w, 40 * s, 2))
        + 0.012 * sk.noise(rng, h, w, 1.0),
        # UV: surface texture (lichenified lines) and scratches/crusts show dark.
        "uv": vis
        * (
            0.62
            - 0.35 * np.clip(lines * depth / 2 + coarse * il / 4, 0, 1)
            - 0.35 * ero
            - 0.45 * np.clip(crust, 0, 1)
            - 0.05 * il
        )
        + 0.015 * sk.noise(rng, h, w, 1.0),
    }
    if hidden is not None:  # the look-alikes are as dark or bright there as in the picture
        extra["cross_polarised"] = extra["cross_polarised"] * dim
        extra["uv"] = extra["uv"] * dim
    planes = []
    for name in channel_names(channels):
        if name in ("red", "green", "blue"):
            planes.append(rgb8[..., "rgb".index(name[0])])
            continue
        if name not in extra:  # noise_k: structured noise unrelated to any sign
            cell = rng.uniform(3, 60) * s
            extra[name] = (
                0.5 + 0.12 * sk.fractal(rng, h, w, cell, 3) + 0.03 * sk.noise(rng, h, w, 1.0)
            )
        planes.append(np.clip(extra[name] * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.stack(planes, axis=-1), masks, skin
