"""Synthetic close-up skin photographs with per-sign EASI severity masks (`dermsev synth`).

Writes a dataset in the layout of SPEC.md: dataset.yaml, manifest.csv, images/, masks/.
Each image is generated from its own numpy Generator seeded by (seed, index), so the files
are byte-identical for a seed whatever the number of workers. numpy, cv2, tifffile, yaml
only: no torch here.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
import yaml

from model.errors import DermsevError
from model.synth.confounders import plan as plan_confounders
from model.synth.render import (
    Patient,
    channel_names,
    channel_signs,
    draw_params,
    draw_patient,
    render,
)
from model.synth.signs import SIGNS, image_score, mark_unannotated
from model.synth.skin import shade_patches

MAX_SCORE = 3
LABELS = ["none", "mild", "moderate", "severe"]
_PLAN_STREAM = 0x5EED  # seeds the patient plan, apart from the per-image streams
_SHADE_STREAM = 0x5AD3  # seeds the shade patches (relight), apart from the image's own stream


@dataclass(frozen=True)
class _Job:
    out: Path
    index: int
    image_id: str
    seed: int
    size: int
    channels: int
    write_masks: bool
    patient: Patient
    confounders: float = 0.0  # chance of healthy look-alikes in this image
    relight: float = 0.0  # chance of shade patches anywhere in the frame


def _check(
    out: Path,
    n: int,
    size: int,
    seed: int,
    channels: int,
    workers: int | None,
    confounders: float,
    relight: float = 0.0,
) -> None:
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(n) or n < 1:
        raise DermsevError(f"number of images must be a whole number of at least 1, got {n!r}")
    if not is_int(size) or not 32 <= size <= 8192:
        raise DermsevError(f"image size must be between 32 and 8192 pixels, got {size!r}")
    if not is_int(seed) or seed < 0:
        raise DermsevError(f"seed must be a whole number >= 0, got {seed!r}")
    if not is_int(channels) or not 1 <= channels <= 64:
        raise DermsevError(f"channels must be between 1 and 64, got {channels!r}")
    if workers is not None and (not is_int(workers) or workers < 1):
        raise DermsevError(f"workers must be at least 1, got {workers!r}")
    for name, chance in (("confounders", confounders), ("relight", relight)):
        real = isinstance(chance, (int, float, np.integer, np.floating))
        if not real or isinstance(chance, bool) or not 0 <= chance <= 1:  # NaN fails too
            raise DermsevError(f"{name} must be a chance between 0 and 1, got {chance!r}")
    if out.exists() and not out.is_dir():
        raise DermsevError(f"output {out} exists and is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise DermsevError(
            f"output folder {out} is not empty; give a new or empty folder "
            "so no existing data is overwritten"
        )


def plan_patients(seed: int, n: int) -> list[Patient]:
    """The patient of each of the n images: 2-5 consecutive images per patient."""
    rng = np.random.default_rng([seed, _PLAN_STREAM])
    width = max(4, len(str(n)))
    plan: list[Patient] = []
    while len(plan) < n:
        left = n - len(plan)
        k = min(int(rng.integers(2, 6)), left)
        if left - k == 1:  # no patient with a single image when avoidable
            k = k + 1 if k < 5 else k - 1
        number = int(plan[-1].patient_id[1:]) + 1 if plan else 1
        plan += [draw_patient(rng, f"p{number:0{width}d}")] * k
    return plan


def _make_one(job: _Job) -> dict[str, object]:
    """Render, write and describe one image (runs in a worker)."""
    rng = np.random.default_rng([job.seed, job.index])
    params = draw_params(rng, job.patient)
    extras = plan_confounders(job.seed, job.index, job.confounders)  # own stream, () at 0
    shade = None
    if job.relight > 0:  # own stream: the same picture and masks, only the light differs
        lit = np.random.default_rng([job.seed, job.index, _SHADE_STREAM])
        if lit.random() < job.relight:
            shade = shade_patches(lit, job.size, job.size, job.size / 256.0)
    image, masks, skin = render(rng, job.patient, params, job.size, job.channels, extras, shade)
    masks = mark_unannotated(rng, masks, job.size / 256.0)
    p = job.patient
    row: dict[str, object] = {
        "id": job.image_id,
        "patient_id": p.patient_id,
        "age": p.age,
        "sex": p.sex,
        "fitzpatrick": p.fitzpatrick,
    }
    if job.channels == 3:
        row["image"] = f"images/{job.image_id}.png"
        cv2.imwrite(str(job.out / row["image"]), image[..., ::-1])
    else:
        row["image"] = f"images/{job.image_id}.tif"
        contig = {"planarconfig": "contig"} if job.channels > 1 else {}
        tifffile.imwrite(
            job.out / row["image"],
            image,
            photometric="minisblack",
            compression="zlib",
            compressionargs={"level": 3},
            predictor=True,
            **contig,
        )
    if job.write_masks:  # where the photo shows skin (1) or not (0): trains and tests skin models
        row["skin_mask"] = f"masks/{job.image_id}_skin.png"
        cv2.imwrite(str(job.out / row["skin_mask"]), skin)
    for sign, mask in zip(SIGNS, masks, strict=True):
        if job.write_masks:
            row[f"mask_{sign}"] = f"masks/{job.image_id}_{sign}.png"
            cv2.imwrite(str(job.out / row[f"mask_{sign}"]), mask)
        row[f"score_{sign}"] = image_score(mask)
    return row


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def generate(
    out: str | Path,
    n: int = 200,
    size: int = 256,
    seed: int = 0,
    channels: int = 3,
    image_level_only: bool = False,
    workers: int | None = None,
    progress: bool = False,
    confounders: float = 0.0,
    relight: float = 0.0,
) -> Path:
    """Write a synthetic dataset of n close-up skin photos (size x size px) into `out`.

    channels: 3 writes RGB PNGs; any other count writes (H, W, C) uint8 TIFFs with the
    channels named in dataset.yaml (extra ones carry erythema, texture, or pure noise; see
    `channel_signs`). image_level_only: no masks, only image-level `score_<sign>` columns.
    workers: processes (default min(2, cpu count)); the output does not depend on it.
    confounders: chance (0..1) that an image also shows 1-2 healthy look-alikes a model must
    not score: a mouth (lips, teeth), nostrils, an eyebrow or hairline, a ruler or sticker
    (skin mask 0 on them) or moles and freckles (skin); every sign mask is 0 on them. They
    are drawn from their own random stream: at 0 (the default) the files are exactly those
    of earlier versions for a seed.
    relight: chance (0..1) that an image is also in soft shade somewhere in the frame (a hand,
    the phone, a fold of the body), not only toward its edge; from its own stream too, so the
    picture and masks are otherwise those drawn without it, and at 0 the files are unchanged.
    Raises DermsevError on bad arguments or a non-empty `out`. Returns the dataset path.
    """
    out = Path(out)
    _check(out, n, size, seed, channels, workers, confounders, relight)
    workers = workers or min(2, os.cpu_count() or 1)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if not image_level_only:
        (out / "masks").mkdir(exist_ok=True)
    width = max(4, len(str(n)))
    jobs = [
        _Job(
            out,
            i,
            f"img{i + 1:0{width}d}",
            int(seed),
            int(size),
            int(channels),
            not image_level_only,
            p,
            float(confounders),
            float(relight),
        )
        for i, p in enumerate(plan_patients(int(seed), int(n)))
    ]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="synth", unit="img", file=sys.stderr)
    rows: list[dict[str, object]] = []
    if workers == 1 or n < 4 * workers:
        for job in jobs:
            rows.append(_make_one(job))
            if bar is not None:
                bar.update()
    else:
        # spawn, not fork: a forked child can inherit a locked cv2/BLAS thread pool and hang.
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for row in pool.imap(_make_one, jobs, chunksize=max(1, min(16, n // (8 * workers)))):
                rows.append(row)
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
    _write_manifest(out / "manifest.csv", rows, image_level_only)
    _write_yaml(out / "dataset.yaml", channels)
    return out


def _write_manifest(path: Path, rows: list[dict[str, object]], image_level_only: bool) -> None:
    cols = ["id", "image", "patient_id", "age", "sex", "fitzpatrick"]
    if not image_level_only:
        cols += [f"mask_{s}" for s in SIGNS] + ["skin_mask"]
    cols += [f"score_{s}" for s in SIGNS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _write_yaml(path: Path, channels: int) -> None:
    meta: dict[str, object] = {
        "signs": list(SIGNS),
        "max_score": MAX_SCORE,
        "channels": channel_names(channels),
        "labels": LABELS,
        "synthetic": True,
    }
    if channels != 3:
        meta["channel_signs"] = channel_signs(channels)
    path.write_text(
        yaml.safe_dump(meta, sort_keys=False, default_flow_style=None), encoding="utf-8"
    )


def render_gallery(dataset_dir: str | Path, out_png: str | Path, n: int = 4) -> Path:
    """Picture of n samples across skin types with their sign masks (see synth_gallery)."""
    from model.synth.gallery import render_gallery as _render

    return _render(dataset_dir, out_png, n)
