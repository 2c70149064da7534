"""`dermsev explain MODEL_DIR [IMAGE...] [--json OUT] [--maps DIR] [--method gradient|jacobian]
[--dataset DATASET]`: channel importance and per-channel saliency maps.

Channel importance (model/explain/importance.py): the learned mixing weights, else with --dataset
the ablation study on its val split, else with images the gradient x input estimate over
them, else uniform. ``--probe`` (with --dataset) adds what each channel carries on its own
(model/explain/probe.py: one small network per channel, trained on the dataset's training split). With images: for each image and
sign, the saliency of the sign's image score per input channel (model/explain/saliency.py), summarised
as each channel's share of the saliency mass, and PNGs written to --maps (default: a folder
``<json stem>_maps`` next to the JSON, else ``./explain_maps``):

- ``<image>_<sign>_saliency.png``: the projected saliency, colour-mapped (inferno) and laid
  over the photo (at the model's working size); transparent where the saliency is 0.
- ``<image>_<sign>_ch-<channel>.png``: one grayscale map per input channel. All channels of
  one sign share one scale (the 99th percentile over the channels), so brightness compares
  across channels: a dark channel did not drive the score.

The JSON (SPEC): ``{"channel_importance": {channel: w}, "importance_method", ...,
"images": [{"image", "size", "method", "signs": {sign: {"score", "top_channel",
"channel_share": {channel: share}, "channel_mean": {channel: mean saliency},
"overlay_png", "channel_pngs": {channel: path}}}}]}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from model.cli.common import expand_inputs, output_stems, resolve_model
from model.errors import DermsevError

DEFAULT_MAPS = "explain_maps"


def _safe(name: str) -> str:
    """A file-name-safe version of a sign, channel or image name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"


def overlay(rgb: np.ndarray, projected: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """(h, w, 3) uint8 photo + (h, w) map on 0..1 -> (h, w, 3) uint8, inferno colours.

    The colour's opacity grows with the map (alpha * sqrt(value): saliency is sparse, the
    square root keeps its mid values visible), so zero saliency leaves the photo as it is
    and the strongest pixels are mostly colour.
    """
    p = np.clip(np.nan_to_num(projected.astype(np.float32)), 0.0, 1.0)
    heat = cv2.applyColorMap((p * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]
    a = (alpha * np.sqrt(p))[:, :, None]
    return np.clip((1 - a) * rgb.astype(np.float32) + a * heat.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


def channel_images(sal: np.ndarray, percentile: float = 99.0) -> list[np.ndarray]:
    """(C, h, w) saliency >= 0 -> C grayscale uint8 maps on one shared scale."""
    sal = np.nan_to_num(np.asarray(sal, np.float32))
    scale = float(np.percentile(sal, percentile)) if sal.size else 0.0
    if scale <= 0:
        scale = float(sal.max()) if sal.size else 0.0
    if scale <= 0:
        return [np.zeros(sal.shape[1:], np.uint8) for _ in range(sal.shape[0])]
    return [(np.clip(c / scale, 0, 1) * 255 + 0.5).astype(np.uint8) for c in sal]


def _maps_dir(maps: str | None, json_out: str | None) -> Path:
    if maps:
        return Path(maps)
    if json_out:
        j = Path(json_out)
        return j.parent / f"{j.stem}_maps"
    return Path(DEFAULT_MAPS)


def _check_images(images: list[str]) -> list[Path]:
    paths = expand_inputs([str(i) for i in images])
    for p in paths:
        if not p.exists():
            raise DermsevError(f"{p}: image not found")
        if not p.is_file():
            raise DermsevError(f"{p}: not a file")
    return paths


def explain_one(predictor: Any, path: Path, stem: str, folder: Path, method: str = "gradient",
                age: float | None = None, sex: str | None = None) -> dict:
    """Saliency of every sign of one image; writes its PNGs into `folder`; returns its JSON entry."""
    from model.explain.saliency import explain_image

    try:
        ex = explain_image(predictor, path, age=age, sex=sex, method=method)
    except DermsevError:
        raise
    except ValueError as exc:  # bad age/method: user input
        raise DermsevError(f"{path}: {exc}") from None
    folder.mkdir(parents=True, exist_ok=True)
    channels = ex["channels"]
    entry: dict = {"image": str(path), "size": list(ex["size"]), "method": ex["method"], "signs": {}}
    for sign in ex["signs"]:
        sal = ex["saliency"][sign]
        share = ex["channel_share"][sign]
        over = folder / f"{stem}_{_safe(sign)}_saliency.png"
        Image.fromarray(overlay(ex["image"], ex["projected"][sign])).save(over)
        pngs = {}
        for ch, img in zip(channels, channel_images(sal), strict=True):
            p = folder / f"{stem}_{_safe(sign)}_ch-{_safe(ch)}.png"
            Image.fromarray(img).save(p)
            pngs[ch] = str(p)
        top = max(channels, key=lambda c: share[c]) if any(v > 0 for v in share.values()) else None
        entry["signs"][sign] = {
            "score": round(float(ex["scores"][sign]), 4),
            "top_channel": top,
            "channel_share": {c: round(float(v), 4) for c, v in share.items()},
            "channel_mean": {c: float(sal[i].mean()) for i, c in enumerate(channels)},
            "overlay_png": str(over),
            "channel_pngs": pngs,
        }
    return entry


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _fmt_importance(imp: dict[str, float]) -> str:
    return ", ".join(f"{c} {w:.2f}" for c, w in sorted(imp.items(), key=lambda kv: -kv[1]))


def explain_cli(model_dir: str | Path, images: list[str] | None, json_out: str | None = None,
                maps: str | None = None, method: str = "gradient", dataset: str | None = None,
                age: float | None = None, sex: str | None = None, quiet: bool = False, probe: bool = False,
                probe_steps: int = 300) -> dict:
    """Run `dermsev explain`; returns the JSON dict (also written to `json_out` if given)."""
    from model.explain.importance import channel_importance
    from model.inference.predictor import load_model

    if method not in ("gradient", "jacobian"):
        raise DermsevError(f"--method must be gradient or jacobian, got {method!r}")
    paths = _check_images(list(images)) if images else []
    if dataset is not None and not Path(dataset).is_dir():
        raise DermsevError(f"{dataset}: dataset folder not found")
    if probe and dataset is None:
        raise DermsevError("--probe needs --dataset (the probes train on its training split)")
    if isinstance(probe_steps, bool) or not isinstance(probe_steps, int) or probe_steps < 1:
        raise DermsevError(f"--probe-steps must be a whole number >= 1, got {probe_steps!r}")
    predictor = load_model(model_dir)
    # Headline importance: the mixing layer, else the dataset ablation, else the gradient
    # estimate over the given images, else uniform (model/explain/importance.py).
    try:
        imp = channel_importance(predictor, dataset_dir=dataset, images=paths or None, probe=probe,
                                 probe_steps=probe_steps)
    except ValueError as exc:
        raise DermsevError(f"channel importance: {exc}") from None
    result: dict = {"model": str(model_dir), "channel_importance": imp["channel_importance"],
                    "importance_method": imp.get("method"),
                    **{k: v for k, v in imp.items() if k not in ("channel_importance", "method")}}
    lines = [f"channel importance ({result['importance_method']}): {_fmt_importance(result['channel_importance'])}"]
    if result.get("probe") is not None:
        lines.append(f"what each channel carries on its own (probe): {_fmt_importance(result['probe'])}")
    if paths:
        folder = _maps_dir(maps, json_out)
        result["method"] = method
        result["maps_dir"] = str(folder)
        result["images"] = []
        for path, stem in zip(paths, [_safe(s) for s in output_stems(paths)], strict=True):
            entry = explain_one(predictor, path, stem, folder, method=method, age=age, sex=sex)
            result["images"].append(entry)
            tops = [f"{s}: {e['top_channel'] or '-'}"
                    + (f" ({e['channel_share'][e['top_channel']]:.0%})" if e["top_channel"] else "")
                    for s, e in entry["signs"].items()]
            lines.append(f"{path.name}: top channel per sign ({method}) " + "; ".join(tops))
        n_png = sum(1 + len(e["channel_pngs"]) for im in result["images"] for e in im["signs"].values())
        lines.append(f"wrote {n_png} PNG maps to {folder}")
    result = _jsonable(result)
    if json_out:
        out = Path(json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        lines.append(f"wrote {out}")
    if not quiet:
        print("\n".join(lines))
    return result


__all__ = ["explain_cli", "explain_one", "overlay", "channel_images"]


def add_parser(sub) -> None:
    x = sub.add_parser("explain", help="channel importance and saliency maps")
    x.add_argument("model_dir")
    x.add_argument("images", nargs="*")
    x.add_argument("--json", dest="json_out")
    x.add_argument("--maps", help="folder for saliency PNGs")
    x.add_argument("--method", default="gradient", choices=["gradient", "jacobian"])
    x.add_argument("--dataset", help="a dataset for the ablation importance (its val split)")
    x.add_argument("--probe", action="store_true",
                   help="with --dataset: also what each channel carries on its own (trains a small probe per channel)")
    x.add_argument("--probe-steps", type=int, default=300, help="training steps per probe (default 300)")


def run(args) -> None:
    explain_cli(resolve_model(args.model_dir), args.images, json_out=args.json_out, maps=args.maps,
                method=args.method, dataset=args.dataset, probe=args.probe, probe_steps=args.probe_steps)
