"""The models a browser may choose: only those the administrator installed on the server.

Installed models (the page never takes a path typed into it):
- the bundled demo model ("" below), always;
- $DERMSEV_MODEL, the default when set;
- $DERMSEV_MODELS: a folder whose sub-folders holding a config.json are models (`models/
  eczema-v2/`, ...), or several folders or model directories separated by os.pathsep.
An administrator installs a model by copying its MODEL_DIR into that folder; the page offers it
at the next rerun.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from dashboard.scoring import MODEL_ENV, default_model_dir
from model.inference.onnx import file_sha256

MODELS_ENV = "DERMSEV_MODELS"
WEIGHTS = "model.safetensors"


def installed_models() -> dict[str, str]:
    """{model directory: label} the page offers, demo first; "" is the bundled demo."""
    out = {"": "bundled demo model"}
    default = default_model_dir()
    if default:
        out[default] = f"{Path(default).name} ({MODEL_ENV})"
    for entry in os.environ.get(MODELS_ENV, "").split(os.pathsep):
        entry = entry.strip()
        if not entry:
            continue
        folder = Path(entry).expanduser()
        if (folder / "config.json").exists():  # a model directory itself
            out.setdefault(str(folder), folder.name)
        elif folder.is_dir():
            for sub in sorted(p for p in folder.iterdir() if (p / "config.json").exists()):
                out.setdefault(str(sub), sub.name)
    return out


def default_choice(models: dict[str, str]) -> str:
    """$DERMSEV_MODEL when set, else the demo."""
    default = default_model_dir()
    return default if default in models else ""


def check_installed(model_dir: str) -> str:
    """`model_dir` when the administrator installed it; ValueError otherwise (a forged widget
    value or a model removed since the page was drawn)."""
    if model_dir not in installed_models():
        raise ValueError(f"{model_dir!r} is not an installed model; ask an administrator to install it")
    return model_dir


def weights_sha256(model_dir: str | os.PathLike | None) -> str | None:
    """sha256 of MODEL_DIR/model.safetensors (None without one); cached per file version."""
    if not model_dir:
        return None
    path = Path(model_dir) / WEIGHTS
    try:
        stat = path.stat()
    except OSError:
        return None
    return _sha256(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, _mtime_ns: int, _size: int) -> str:
    return file_sha256(Path(path))


def model_record(info: dict) -> dict:
    """What a saved visit records about its model: predictor.info plus the weights' sha256."""
    return {**info, "weights_sha256": weights_sha256(info.get("model_dir"))}
