"""What every command shares: the demo model's name, and turning files and folders into images."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from model.errors import DermsevError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".dcm"}


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given; folders expanded to their image files (sorted, recursive)."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
        else:
            paths.append(p)
    if not paths:
        raise DermsevError("no images found in " + ", ".join(items))
    return paths


def resolve_model(path: str | None) -> str | Path:
    """MODEL_DIR as given; None or 'demo' is the bundled demo model."""
    from model.nets.modeldir import DEMO_DIR

    return DEMO_DIR if path in (None, "demo") else path


def output_stems(paths: list[Path]) -> list[str]:
    """A distinct file-name stem per input, for files written next to each other (--maps).

    The image's stem where that is unique; for same-named images from different folders, the
    path below their common folder ('a/photo.jpg', 'b/photo.jpg' -> 'a_photo', 'b_photo'); the
    suffix is added where only it differs ('photo.jpg', 'photo.png' -> 'photo_jpg', 'photo_png').
    """
    stems = [p.stem for p in paths]
    clash = {s for s, n in Counter(stems).items() if n > 1}
    if not clash:
        return stems
    out = list(stems)
    for s in clash:
        idx = [i for i, v in enumerate(stems) if v == s]
        group = [Path(os.path.abspath(paths[i])) for i in idx]
        root = Path(os.path.commonpath([g.parent for g in group]))
        for i, g in zip(idx, group, strict=True):
            rel = g.relative_to(root).with_suffix("")
            out[i] = "_".join(rel.parts)
        if len({out[i] for i in idx}) < len(idx):  # same folder and stem: only the suffix differs
            for i, g in zip(idx, group, strict=True):
                out[i] = f"{out[i]}_{g.suffix.lstrip('.').lower()}"
    seen: Counter = Counter()
    for i, s in enumerate(out):  # the same file given twice: number the repeats
        seen[s] += 1
        if seen[s] > 1:
            out[i] = f"{s}_{seen[s]}"
    return out
