"""Shared fixtures: tiny datasets written file by file, a synthetic set, a tiny model directory.

Everything is small (32-64 px, a tiny decoder, one thread) so the suite runs on 2 busy cores.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

# Before any test module imports albumentations or segmentation-models-pytorch.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
torch.set_num_threads(1)
# One OpenCV thread too: a process whose OpenCV thread pool has started hangs when it forks
# worker processes (as `model.synth.generator.generate` does); tests would hang in whatever runs next.
cv2.setNumThreads(1)

SIGNS = ("erythema", "papulation", "excoriation", "lichenification")
RGB = ("red", "green", "blue")
TINY_DECODER = (16, 8, 8, 8, 8)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Machine-level caches (the measured inference backend) go to a temp dir, not ~/.cache."""
    old = os.environ.get("DERMSEV_CACHE_DIR")
    os.environ["DERMSEV_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("DERMSEV_CACHE_DIR", None)
    else:
        os.environ["DERMSEV_CACHE_DIR"] = old


class DatasetWriter:
    """Writes DATASET/ (SPEC layout) file by file, so each test can break exactly one thing.

    add() makes a valid row (random image, a valid mask per sign); tests then edit the row,
    overwrite a file, or pass different dataset.yaml settings to write().
    """

    def __init__(self, root: Path, signs=SIGNS, channels=RGB, max_score: int = 3, seed: int = 0):
        self.root, self.signs, self.channels, self.max_score = root, tuple(signs), tuple(channels), max_score
        self.rows: list[dict[str, str]] = []
        self.rng = np.random.default_rng(seed)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)

    def image(self, name: str, arr: np.ndarray) -> str:
        """Write images/<name> (PNG/JPEG via Pillow, TIFF via tifffile); return its relative path."""
        path = self.root / "images" / name
        if path.suffix.lower() in (".tif", ".tiff"):
            extra = {"planarconfig": "contig"} if arr.ndim == 3 else {}
            tifffile.imwrite(path, arr, photometric="minisblack", **extra)
        else:
            Image.fromarray(arr).save(path)
        return f"images/{name}"

    def mask(self, name: str, arr: np.ndarray) -> str:
        Image.fromarray(np.asarray(arr, np.uint8)).save(self.root / "masks" / name)
        return f"masks/{name}"

    def random_mask(self, h: int, w: int) -> np.ndarray:
        levels = np.array([*range(self.max_score + 1), 255], np.uint8)
        return self.rng.choice(levels, size=(h, w))

    def add(self, rid: str, size: tuple[int, int] = (40, 48), masks: bool = True, **cols) -> dict[str, str]:
        """A valid row: an (h, w) image with the declared channels and, if masks, one mask per sign."""
        h, w = size
        c = len(self.channels)
        pixels = self.rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        if c == 3:
            image = self.image(f"{rid}.png", pixels)
        elif c == 1:
            image = self.image(f"{rid}.png", pixels[:, :, 0])
        else:
            image = self.image(f"{rid}.tif", pixels)
        row = {"id": rid, "image": image, "patient_id": f"pt-{rid}", "age": "40", "sex": "F"}
        if masks:
            for sign in self.signs:
                row[f"mask_{sign}"] = self.mask(f"{rid}_{sign}.png", self.random_mask(h, w))
        row.update({k: str(v) for k, v in cols.items()})
        self.rows.append(row)
        return row

    def write(self, columns: list[str] | None = None, **yaml_overrides) -> Path:
        """Write dataset.yaml and manifest.csv (header = `columns` or every key in the rows)."""
        meta = {"signs": list(self.signs), "max_score": self.max_score, "channels": list(self.channels)}
        meta.update(yaml_overrides)
        (self.root / "dataset.yaml").write_text(yaml.safe_dump(meta))
        if columns is None:
            columns = []
            for row in self.rows:
                columns += [k for k in row if k not in columns]
        with (self.root / "manifest.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        return self.root


@pytest.fixture
def dataset_writer(tmp_path: Path):
    """Factory: dataset_writer(signs=..., channels=..., max_score=...) -> DatasetWriter in tmp."""
    made = []

    def make(**kwargs) -> DatasetWriter:
        writer = DatasetWriter(tmp_path / f"ds{len(made)}", **kwargs)
        made.append(writer)
        return writer

    return make


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """16 synthetic 64-px images (4 signs, RGB, masks, fitzpatrick column), made once."""
    from model.synth.generator import generate

    return generate(tmp_path_factory.mktemp("synth") / "ds", n=16, size=64, seed=11, workers=1)


def tiny_config(**overrides):
    from model.nets.unet import NetConfig

    return NetConfig(**{"decoder_channels": TINY_DECODER, **overrides})


def write_tiny_model(out: Path, gain: float = 20.0, seed: int = 0, **net_overrides) -> Path:
    """A random-init tiny network saved as a MODEL_DIR through the same code as `dermsev train`.

    gain: scales the (linear, clamped) head and its bias centres the maps at max_score / 2,
    so the untrained maps spread over 0..max_score instead of clustering at 0.
    """
    from model.data.dataset import Dataset, DatasetSpec
    from model.nets.modeldir import save_model_dir
    from model.nets.unet import DermSevNet
    from model.training.train import TrainConfig, model_config

    torch.manual_seed(seed)
    ncfg = tiny_config(**net_overrides)
    net = DermSevNet(ncfg)
    with torch.no_grad():
        net.head[0].weight.mul_(gain)
        net.head[0].bias.fill_(ncfg.max_score / 2)
    spec = DatasetSpec(signs=ncfg.signs, channels=ncfg.channels)
    ds = Dataset(root=Path("tiny"), spec=spec, records=[], extra={"synthetic": True})
    config = model_config(ds, TrainConfig(image_size=64), ncfg, {"note": "random init for tests"})
    return save_model_dir(net, config, out)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A MODEL_DIR with a random-init tiny U-Net (4 signs, RGB, working size 64)."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(name="write_tiny_model")
def _write_tiny_model_fixture():
    return write_tiny_model
