"""`dermsev export`: MODEL_DIR/model.onnx, checked against the torch model.

The graph's inputs and outputs, and the loader that refuses a stale file, are in
`model.inference.onnx`.

It is written with torch's legacy TorchScript exporter (`dynamo=False`, opset 17): the
dynamo exporter needs onnxscript and wants H, W as multiples of 32. The FiLM branch's
`torch.isfinite` / `torch.where` export as IsNaN/IsInf/Where, so NaN age needs no special
encoding. Before anything is written the graph is run in onnxruntime at two input sizes,
with known and unknown age and all three sex codes, and compared with torch fp32: a
difference above 1e-3 is an error and leaves no file.

The ONNX metadata records the SHA-256 of model.safetensors and of the network settings in
config.json; `onnx_session` refuses a model.onnx whose hashes no longer match (a retrained
or edited model), or one older than the weights when the hashes are missing.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from model.data.padding import MULTIPLE, padded
from model.errors import DermsevError
from model.inference.onnx import (
    INPUT_NAMES,
    ONNX_NAME,
    OUTPUT_NAME,
    config_sha256,
    file_sha256,
    session_from,
)
from model.nets.modeldir import load_network

OPSET = 17
TOLERANCE = 1e-3


class _Exportable(torch.nn.Module):
    """Fixes the argument order and names of the exported graph: (image, age, sex) -> maps."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, age: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        return self.net(image, age, sex)


def _check_cases(n_channels: int, size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Two input sizes (square working size, and a non-square one) x known/unknown age x sex codes."""
    rng = np.random.default_rng(0)
    other = (max(MULTIPLE, size - 2 * MULTIPLE), size + MULTIPLE)  # another H and W, both padded sizes
    cases = []
    for (h, w), ages, sexes in [((size, size), [np.nan, 45.0, 8.0], [0, 1, 2]), (other, [70.0, np.nan], [2, 0])]:
        b = len(ages)
        x = rng.random((b, n_channels, h, w), dtype=np.float32)
        cases.append((x, np.asarray(ages, np.float32), np.asarray(sexes, np.int64)))
    return cases


def verify_onnx(net: torch.nn.Module, session, n_channels: int, size: int) -> dict:
    """Max |onnx - torch fp32| over the check cases, per case and overall."""
    per_case = {}
    worst = 0.0
    for x, age, sex in _check_cases(n_channels, size):
        with torch.inference_mode():
            ref = net(torch.from_numpy(x), torch.from_numpy(age), torch.from_numpy(sex)).float().numpy()
        got = session.run(None, {"image": x, "age": age, "sex": sex})[0]
        if got.shape != ref.shape or not np.isfinite(got).all():
            raise DermsevError(f"ONNX check failed at {x.shape[2]}x{x.shape[3]}: output shape {got.shape} "
                               f"or non-finite values (torch gives {ref.shape})")
        d = float(np.abs(got - ref).max())
        per_case[f"{x.shape[2]}x{x.shape[3]}"] = d
        worst = max(worst, d)
    return {"max_abs_diff": worst, "per_size": per_case}


def export_onnx(model_dir: str | Path, out: str | Path | None = None, quiet: bool = False) -> Path:
    """Write MODEL_DIR/model.onnx (or `out`), after checking it against torch fp32 (<= 1e-3)."""
    import onnx

    model_dir = Path(model_dir)
    net, config = load_network(model_dir)
    net = net.float().eval()
    n_ch = len(config["channels"])
    size = int(config["input"]["size"])
    size = max(2 * MULTIPLE, padded(size))
    example = (torch.rand(1, n_ch, size, size), torch.tensor([float("nan")]), torch.zeros(1, dtype=torch.long))
    dyn = {"image": {0: "batch", 2: "height", 3: "width"}, "age": {0: "batch"}, "sex": {0: "batch"},
           OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        try:
            torch.onnx.export(_Exportable(net).eval(), example, buf, dynamo=False, opset_version=OPSET,
                              input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], dynamic_axes=dyn,
                              do_constant_folding=True)
        except Exception as exc:  # an operator the exporter does not know: say which model and why
            raise DermsevError(f"{model_dir}: ONNX export failed ({exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    data = buf.getvalue()
    check = verify_onnx(net, session_from(data), n_ch, size)
    if check["max_abs_diff"] > TOLERANCE:
        raise DermsevError(f"{model_dir}: ONNX output differs from torch fp32 by {check['max_abs_diff']:.2e} "
                           f"(> {TOLERANCE:g}); model.onnx not written")
    proto = onnx.load_from_string(data)
    import model as pkg

    meta = {
        "dermsev_version": pkg.__version__,
        "weights_sha256": file_sha256(model_dir / "model.safetensors"),
        "config_sha256": config_sha256(config),
        "signs": json.dumps(list(config["signs"])),
        "max_score": str(config["max_score"]),
        "working_size": str(config["input"]["size"]),
        "torch_version": torch.__version__,
        "checked_max_abs_diff": json.dumps(check),
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        p = proto.metadata_props.add()
        p.key, p.value = k, v
    target = Path(out) if out else model_dir / ONNX_NAME
    fd, tmp = tempfile.mkstemp(prefix=".model.onnx.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(proto.SerializeToString())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not quiet:
        sizes = ", ".join(f"{k} {v:.1e}" for k, v in check["per_size"].items())
        print(f"checked against torch fp32: max abs diff {check['max_abs_diff']:.1e} ({sizes})", file=sys.stderr)
    return target


