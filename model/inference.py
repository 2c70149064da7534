"""The one prediction path behind evaluate, `dermsev predict`, explain and the dashboard.

    from model.inference import load_model
    predictor = load_model()                    # the bundled demo model
    result = predictor.predict("photo.jpg", age=40, sex="F")
    result.scores, result.labels, result.affected_area, result.maps
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import torch

from model.errors import DermsevError
from model.io import ImageSource, read_image, to_float, to_uint8_rgb
from model.modeldir import DEMO_DIR, load_network
from model.summary import affected_fraction, easi_scores, label_for
from model.tabular import encode_tabular
from model.train import pick_precision

BACKENDS = ("auto", "torch-fp32", "torch-bf16", "onnx")


def _resize(arr: np.ndarray, w: int, h: int, interp: int) -> np.ndarray:
    out = cv2.resize(arr, (w, h), interpolation=interp)
    return out[:, :, None] if out.ndim == 2 else out


def match_channels(img: np.ndarray, n: int, label: str = "image") -> np.ndarray:
    """Adapt a decoded (H, W, C) image to a model's channel count where it is unambiguous."""
    c = img.shape[2]
    if c == n:
        return img
    if c == 1 and n == 3:
        return np.repeat(img, 3, axis=2)
    if c == 3 and n == 1:
        return (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None].astype(img.dtype)
    if c == 4 and n == 3:
        return img[:, :, :3]
    raise DermsevError(f"{label}: has {c} channel(s), the model expects {n}")


@dataclass
class Prediction:
    """One scored image. maps are at the image's full size, computed on first access."""

    signs: list[str]
    max_score: float
    thresholds: list[float]
    label_names: list[str]
    image: np.ndarray  # (H, W, C) as decoded
    work_maps: np.ndarray  # (S, h, w) float32 at the working size, padding removed
    scores: dict[str, float]
    labels: dict[str, str]
    affected_area: dict[str, float]
    uncertainty: dict[str, tuple[float, float]] | None = None
    extras: dict = field(default_factory=dict)

    @cached_property
    def maps(self) -> np.ndarray:
        """(S, H, W) float16 on 0..max_score at the input image's full resolution."""
        h, w = self.image.shape[:2]
        return np.stack([_resize(m, w, h, cv2.INTER_LINEAR)[:, :, 0] for m in self.work_maps]).astype(np.float16)

    def preview(self, max_side: int = 768) -> tuple[np.ndarray, np.ndarray]:
        """Display-size (h, w, 3) uint8 RGB image and (S, h, w) float32 maps."""
        h, w = self.image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        ph, pw = max(1, round(h * scale)), max(1, round(w * scale))
        rgb = to_uint8_rgb(self.image)
        rgb = _resize(rgb, pw, ph, cv2.INTER_AREA) if (ph, pw) != (h, w) else rgb
        maps = np.stack([_resize(m, pw, ph, cv2.INTER_LINEAR)[:, :, 0] for m in self.work_maps])
        return rgb, maps.astype(np.float32)

    def as_dict(self) -> dict:
        out = {"scores": self.scores, "labels": self.labels, "affected_area": self.affected_area}
        if self.uncertainty is not None:
            out["uncertainty"] = {k: list(v) for k, v in self.uncertainty.items()}
        return out


class Predictor:
    """A loaded model: preprocessing, the network forward, and the summary of its maps."""

    def __init__(self, model_dir: str | Path, backend: str = "auto", threads: int | None = None):
        if backend not in BACKENDS:
            raise DermsevError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.model_dir = Path(model_dir)
        self.net, self.config = load_network(self.model_dir)
        if threads:
            torch.set_num_threads(threads)
        c = self.config
        self.signs: list[str] = list(c["signs"])
        self.max_score: float = float(c["max_score"])
        self.thresholds: list[float] = list(c["thresholds"])
        self.label_names: list[str] = list(c["labels"])
        self.channels: list[str] = list(c["channels"])
        self.size: int = int(c["input"]["size"])
        self.backend = self._choose_backend(backend)
        if self.backend == "torch-bf16":
            self.net = self.net.to(memory_format=torch.channels_last)
        self._onnx = None
        if self.backend == "onnx":
            from model.export import onnx_session

            self._onnx = onnx_session(self.model_dir)

    def _choose_backend(self, backend: str) -> str:
        if backend != "auto":
            return backend
        return "torch-bf16" if pick_precision("auto") == "bf16" else "torch-fp32"

    @property
    def info(self) -> dict:
        c = self.config
        return {
            "name": c.get("name", self.model_dir.name),
            "version": c.get("versions", {}).get("dermsev", "?"),
            "synthetic": bool(c.get("synthetic", False)),
            "description": f"U-Net ({c['architecture']['encoder']}), {len(self.signs)} signs, "
            f"{len(self.channels)} channels, input {self.size} px",
            "model_dir": str(self.model_dir),
            "backend": self.backend,
        }

    # -- preprocessing --------------------------------------------------------------------
    def prepare(self, source: ImageSource, name: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Decode -> (full image (H, W, C), working tensor (C, h32, w32) float32, (h, w) unpadded)."""
        img = read_image(source, name=name, draft_size=(self.size, self.size))
        img = match_channels(img, len(self.channels), name or "image")
        x = to_float(img)
        h, w = x.shape[:2]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if (nh, nw) != (h, w):
            x = _resize(x, nw, nh, cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        ph, pw = math.ceil(nh / 32) * 32, math.ceil(nw / 32) * 32
        padded = np.zeros((ph, pw, x.shape[2]), np.float32)
        padded[:nh, :nw] = x
        return img, np.ascontiguousarray(padded.transpose(2, 0, 1)), (nh, nw)

    # -- the model ------------------------------------------------------------------------
    def forward(self, x: np.ndarray, age: float | None = None, sex: str | None = None) -> np.ndarray:
        """x: (B, C, H, W) float32 on 0..1, H, W multiples of 32 -> maps (B, S, H, W) float32."""
        a, s = encode_tabular(age, sex)
        b = x.shape[0]
        if self._onnx is not None:
            feeds = {"image": x.astype(np.float32), "age": np.full((b,), a, np.float32), "sex": np.full((b,), s, np.int64)}
            return self._onnx.run(None, feeds)[0]
        t = torch.from_numpy(x)
        age_t, sex_t = torch.full((b,), a), torch.full((b,), s, dtype=torch.long)
        with torch.inference_mode():
            if self.backend == "torch-bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = self.net(t.contiguous(memory_format=torch.channels_last), age_t, sex_t)
            else:
                out = self.net(t, age_t, sex_t)
        return out.float().numpy()

    def predict(self, image: ImageSource, age: float | None = None, sex: str | None = None,
                tta: bool = False, name: str | None = None) -> Prediction:
        """Score one image (a path, PIL image, bytes or (H, W, C) array)."""
        return self.predict_prepared(self.prepare(image, name), age, sex, tta)

    def predict_prepared(self, prepared: tuple, age: float | None = None, sex: str | None = None,
                         tta: bool = False) -> Prediction:
        """Score the output of `prepare` (lets callers decode in parallel threads)."""
        img, x, (h, w) = prepared
        if age is not None and not (0 <= float(age) <= 130):
            raise DermsevError(f"age {age} is out of range (0..130 years)")
        if sex not in (None, "F", "M"):
            raise DermsevError(f"sex must be F, M or blank, got {sex!r}")
        batch = x[None]
        if tta:  # original, horizontal flip, vertical flip: the spread shows how stable a score is
            batch = np.concatenate([batch, batch[:, :, :, ::-1], batch[:, :, ::-1, :]])
        out = self.forward(np.ascontiguousarray(batch), age, sex)
        if tta:
            out = np.stack([out[0], out[1][:, :, ::-1], out[2][:, ::-1, :]])
        work = out[:, :, :h, :w]
        return self.summarise(img, work.mean(0), work if tta else None)

    def summarise(self, img: np.ndarray, work: np.ndarray, tta_maps: np.ndarray | None = None) -> Prediction:
        """(S, h, w) working-size maps -> a Prediction with scores, labels and affected area."""
        thr = self.thresholds[0] if self.thresholds else self.max_score / 2
        scores = easi_scores(work, None, thr)
        area = affected_fraction(work, None, thr)
        unc = None
        if tta_maps is not None:
            each = np.stack([easi_scores(m, None, thr) for m in tta_maps])
            unc = {s: (float(each[:, k].min()), float(each[:, k].max())) for k, s in enumerate(self.signs)}
        return Prediction(
            signs=self.signs, max_score=self.max_score, thresholds=self.thresholds, label_names=self.label_names,
            image=img, work_maps=np.ascontiguousarray(work, dtype=np.float32),
            scores={s: float(scores[k]) for k, s in enumerate(self.signs)},
            labels={s: label_for(float(scores[k]), self.thresholds, self.label_names) for k, s in enumerate(self.signs)},
            affected_area={s: float(area[k]) for k, s in enumerate(self.signs)},
            uncertainty=unc,
        )


def load_model(model_dir: str | Path | None = None, backend: str = "auto") -> Predictor:
    """Load MODEL_DIR (default: the bundled demo model) without pickle."""
    return Predictor(DEMO_DIR if model_dir is None else model_dir, backend=backend)
