"""MODEL_DIR/model.onnx at run time: an onnxruntime session, refused when stale.

The graph (written by `model.inference.export`) has three inputs and one output, every one
with a dynamic batch dimension:

    image  (B, C, H, W) float32 on 0..1 (normalised inside the graph); H, W dynamic
    age    (B,)         float32 years, NaN = unknown
    sex    (B,)         int64 0 unknown, 1 F, 2 M
    maps   (B, S, H, W) float32 on 0..max_score

Its metadata records the SHA-256 of model.safetensors and of the network settings in
config.json; `onnx_session` refuses a model.onnx whose hashes no longer match (a retrained
or edited model), or one older than the weights when the hashes are missing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from model.errors import DermsevError
from model.hardware import cpu_count
from model.nets.modeldir import read_config

ONNX_NAME = "model.onnx"
INPUT_NAMES = ("image", "age", "sex")
OUTPUT_NAME = "maps"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_sha256(config: dict) -> str:
    """Hash of what shapes the graph: the network settings (thresholds and names do not)."""
    text = json.dumps(config.get("network", {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def session_from(model: bytes | str, threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or cpu_count()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _stale_reason(model_dir: Path, meta: dict[str, str]) -> str | None:
    path, weights = model_dir / ONNX_NAME, model_dir / "model.safetensors"
    w_hash, c_hash = meta.get("weights_sha256"), meta.get("config_sha256")
    if w_hash is None or c_hash is None:  # an export without hashes: fall back to file times
        if weights.is_file() and path.stat().st_mtime < weights.stat().st_mtime:
            return f"{path} is older than model.safetensors (stale; re-run `dermsev export {model_dir}`)"
        return None
    if weights.is_file() and w_hash != file_sha256(weights):
        return f"{path} was exported from other weights than model.safetensors (stale; re-run `dermsev export {model_dir}`)"
    if c_hash != config_sha256(read_config(model_dir)):
        return f"{path} was exported with other network settings than config.json (stale; re-run `dermsev export {model_dir}`)"
    return None


def onnx_session(model_dir: str | Path, threads: int | None = None):
    """An onnxruntime CPU session on MODEL_DIR/model.onnx (threads = cores).

    DermsevError if model.onnx is missing, unreadable, or stale: exported from other weights
    or network settings than the current model.safetensors / config.json (hashes recorded at
    export), or, for an export without hashes, older than model.safetensors.
    """
    model_dir = Path(model_dir)
    path = model_dir / ONNX_NAME
    if not path.is_file():
        raise DermsevError(f"{path} not found (run `dermsev export {model_dir}`)")
    try:
        sess = session_from(str(path), threads)
    except Exception as exc:
        raise DermsevError(f"{path}: cannot load ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    problem = _stale_reason(model_dir, dict(sess.get_modelmeta().custom_metadata_map))
    if problem:
        raise DermsevError(problem)
    names = [i.name for i in sess.get_inputs()]
    if names != list(INPUT_NAMES):
        raise DermsevError(f"{path}: inputs {names}, expected {list(INPUT_NAMES)} (re-run `dermsev export {model_dir}`)")
    return sess
