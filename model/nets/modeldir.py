"""MODEL_DIR: config.json + model.safetensors (+ MODEL_CARD.md, model.onnx), written atomically.

No pickle is ever loaded: weights are safetensors, settings are JSON.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.errors import DermsevError
from model.nets.unet import DermSevNet, NetConfig

FORMAT_VERSION = 1
DEMO_DIR = Path(__file__).parents[1] / "assets" / "demo"


def library_versions() -> dict[str, str]:
    import albumentations
    import segmentation_models_pytorch as smp

    import model

    return {
        "dermsev": model.__version__,
        "torch": torch.__version__,
        "segmentation_models_pytorch": smp.__version__,
        "albumentations": albumentations.__version__,
        "python": platform.python_version(),
    }


def save_model_dir(
    net: DermSevNet, config: dict, out: str | Path, card: str | None = None, half: bool = False
) -> Path:
    """Write MODEL_DIR atomically: a new directory is filled, then swapped into place.

    config: the full config.json content (network settings under "network").
    half: store floating weights as float16 (halves the file; loaded back as float32).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is as shareable as any folder
    try:
        state = {}
        for k, v in net.state_dict().items():
            v = v.detach().cpu().contiguous()
            state[k] = v.half() if half and v.is_floating_point() else v
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = {**config, "format_version": FORMAT_VERSION, "weights_dtype": "float16" if half else "float32"}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if card:
            (tmp / "MODEL_CARD.md").write_text(card)
        for f in tmp.iterdir():  # flush to disk before the swap
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            # The old directory goes whole: a previous model.onnx would not match the new weights.
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_config(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    path = model_dir / "config.json"
    if not model_dir.is_dir():
        raise DermsevError(f"{model_dir}: model directory not found")
    if not path.is_file():
        raise DermsevError(f"{model_dir}: config.json missing (not a dermsev model directory)")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DermsevError(f"{path}: config.json is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict) or "network" not in cfg:
        raise DermsevError(f"{path}: config.json has no 'network' section")
    version = cfg.get("format_version")
    if version != FORMAT_VERSION:
        raise DermsevError(f"{path}: format_version {version!r} not supported (this dermsev reads {FORMAT_VERSION})")
    return cfg


def load_network(model_dir: str | Path) -> tuple[DermSevNet, dict]:
    """Rebuild the network from config.json and load model.safetensors (strict, shapes checked)."""
    model_dir = Path(model_dir)
    cfg = read_config(model_dir)
    try:
        net_cfg = NetConfig.from_dict(cfg["network"])
    except (TypeError, ValueError) as exc:
        raise DermsevError(f"{model_dir}/config.json: invalid network settings ({exc})") from None
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise DermsevError(f"{model_dir}: model.safetensors missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DermsevError(f"{weights}: unreadable or truncated weights ({str(exc).splitlines()[0]})") from None
    try:
        net = DermSevNet(net_cfg)
    except Exception as exc:
        raise DermsevError(f"{model_dir}/config.json: cannot build the network ({exc})") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise DermsevError(
            f"{weights}: weights do not match config.json "
            f"({len(missing)} missing, {len(extra)} unexpected, e.g. {(missing or extra)[0]})"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise DermsevError(
                f"{weights}: tensor {k} has shape {tuple(v.shape)}, config.json implies {tuple(expected[k].shape)}"
            )
        if not torch.isfinite(v.float()).all():
            raise DermsevError(f"{weights}: tensor {k} contains NaN or infinite values")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    net.eval()
    return net, cfg
