"""docs/gallery.png: a few samples across skin types, each with its sign masks (`make docs`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import tifffile
import yaml
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from model.errors import DermsevError

TILE = 168
PAD = 6
HEAD = 24
# Severity colours 0..3 (0 is left transparent over the dimmed photo), and "not annotated".
LEVEL_RGB = np.array([[0, 0, 0], [250, 205, 120], [232, 96, 48], [140, 0, 24]], np.float32)
IGNORE_RGB = np.array([120, 120, 130], np.float32)
ROMAN = ["", "I", "II", "III", "IV", "V", "VI"]


def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8: PNG/JPEG as RGB; TIFF's first three channels (or gray repeated)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        arr = tifffile.imread(path)
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
        arr = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr[..., :1], 3, axis=2)
        if arr.dtype != np.uint8:
            arr = (255 * (arr - arr.min()) / max(1e-6, float(arr.max() - arr.min()))).astype(
                np.uint8
            )
        return arr
    return np.asarray(Image.open(path).convert("RGB"))


def _mask_tile(photo: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The mask in colour over a dimmed grey copy of the photo, (TILE, TILE, 3) uint8."""
    # Smoothed, coarsely quantised context: it only shows where, and keeps the PNG small.
    soft = np.asarray(Image.fromarray(photo).convert("L").filter(ImageFilter.GaussianBlur(1.2)))
    grey = ((soft.astype(np.float32) * 0.45) // 6 * 6)[..., None].repeat(3, axis=2)
    if mask is None:
        return grey.astype(np.uint8)
    out = grey.copy()
    for level in (1, 2, 3):
        out[mask == level] = 0.15 * grey[mask == level] + 0.85 * LEVEL_RGB[level]
    ignored = mask == 255
    hatch = (np.add.outer(np.arange(mask.shape[0]), np.arange(mask.shape[1])) // 4) % 2 == 0
    out[ignored] = IGNORE_RGB * np.where(hatch[ignored], 1.0, 0.7)[:, None]
    return out.astype(np.uint8)


def _pick(rows: list[dict[str, str]], signs: list[str], n: int) -> list[dict[str, str]]:
    """n rows spread over Fitzpatrick types, preferring images where many signs are present."""

    def richness(r: dict[str, str]) -> float:
        scores = [float(r.get(f"score_{s}") or 0) for s in signs]
        return sum(v > 0 for v in scores) + 0.1 * sum(scores)

    chosen: list[dict[str, str]] = []
    for target in np.linspace(1, 6, n):
        left = [r for r in rows if r not in chosen]
        if not left:
            break
        best = min(
            left,
            key=lambda r: (abs(int(r.get("fitzpatrick") or 3) - target), -richness(r), r["id"]),
        )
        chosen.append(best)
    return chosen


def render_gallery(dataset_dir: str | Path, out_png: str | Path, n: int = 4) -> Path:
    """Write a PNG grid: one row per sample (photo + one colour-coded mask per sign).

    Rows span Fitzpatrick types; labels give skin type, age, sex and each sign's score.
    """
    root = Path(dataset_dir)
    if not (root / "manifest.csv").is_file() or not (root / "dataset.yaml").is_file():
        raise DermsevError(
            f"{root} is not a dataset (needs dataset.yaml and manifest.csv); "
            "write one with `dermsev synth`"
        )
    meta = yaml.safe_load((root / "dataset.yaml").read_text(encoding="utf-8"))
    signs = list(meta["signs"])
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = _pick(list(csv.DictReader(f)), signs, max(1, n))
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    cols = 1 + len(signs)
    legend_h = 26
    width = PAD + cols * (TILE + PAD)
    height = HEAD + len(rows) * (TILE + PAD) + legend_h + PAD
    canvas = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(["photo"] + signs):
        draw.text((PAD + j * (TILE + PAD) + 4, 5), title, fill=(30, 30, 30), font=font)
    for i, r in enumerate(rows):
        y = HEAD + i * (TILE + PAD)
        photo = np.asarray(Image.fromarray(_read_rgb(root / r["image"])).resize((TILE, TILE)))
        canvas.paste(Image.fromarray(photo), (PAD, y))
        fitz = r.get("fitzpatrick") or ""
        label = f"type {ROMAN[int(fitz)] if fitz.isdigit() and 0 < int(fitz) < 7 else '?'}"
        label += f", {r.get('age') or '?'} y, {r.get('sex') or '?'}"
        draw.rectangle((PAD, y + TILE - 18, PAD + TILE, y + TILE), fill=(0, 0, 0))
        draw.text((PAD + 4, y + TILE - 16), label, fill=(255, 255, 255), font=small)
        for j, sign in enumerate(signs, start=1):
            mask = None
            if r.get(f"mask_{sign}"):
                m = Image.open(root / r[f"mask_{sign}"]).resize((TILE, TILE), Image.NEAREST)
                mask = np.asarray(m)
            x = PAD + j * (TILE + PAD)
            canvas.paste(Image.fromarray(_mask_tile(photo, mask)), (x, y))
            score = r.get(f"score_{sign}")
            text = f"score {float(score):.2f}" if score not in (None, "") else "no score"
            draw.text((x + 4, y + 3), text, fill=(255, 255, 255), font=small)
    y = height - legend_h
    x = PAD
    swatches = [
        ("none", (70, 70, 70)),
        ("mild", LEVEL_RGB[1]),
        ("moderate", LEVEL_RGB[2]),
        ("severe", LEVEL_RGB[3]),
        ("not annotated", IGNORE_RGB),
    ]
    for name, colour in swatches:
        draw.rectangle((x, y + 6, x + 14, y + 20), fill=tuple(int(c) for c in colour))
        draw.text((x + 19, y + 6), name, fill=(30, 30, 30), font=small)
        x += 28 + int(draw.textlength(name, font=small))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, optimize=True)
    return out
