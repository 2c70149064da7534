"""The one prediction path behind evaluate, `dermsev predict`, explain and the dashboard.

    from model.inference.predictor import load_model
    predictor = load_model()                    # the bundled demo model
    result = predictor.predict("photo.jpg", age=40, sex="F")
    result.scores, result.labels, result.affected_area, result.maps

The pipeline, stage by stage (timings in docs/performance.md, `dermsev bench`):
decode (JPEG draft mode: a 12-MP photo is decoded at 1/2..1/8 scale, just large enough for
the working size and the dashboard's preview) -> EXIF orientation -> resize to the working
size (longest side = config input size) -> pad to a multiple of 32 -> model (backend
torch-fp32, torch-bf16 or onnx) -> unpad -> summary. Maps go back to the photo's size only
when asked: `preview()` at display size (the dashboard), `maps` at the original full
resolution, float16, on first access (exports).

Backends: `auto` (the default) measures each available backend once per machine and model
and caches the choice (see `model.inference.backends`); DERMSEV_BACKEND overrides it.
"""

from __future__ import annotations

import io
import itertools
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from model.data import colour
from model.data import io as imageio
from model.data.io import ImageSource, resize, resize_mask, to_float, to_uint8_rgb
from model.data.padding import pad_chw
from model.data.patient import check_age, check_sex, encode_tabular_batch
from model.data.quality import LIMITS, NO_CAST, PhotoCheck, check_photo, skin_of
from model.errors import DermsevError
from model.hardware import native_bf16
from model.inference import backends
from model.inference.onnx import config_sha256, file_sha256, onnx_session
from model.inference.tta import unview, views
from model.nets.modeldir import DEMO_DIR, load_network
from model.scoring.summary import affected_fraction, easi_scores, label_for

BACKENDS = ("auto", "torch-fp32", "torch-bf16", "onnx")
# Longest side of the dashboard's preview: large JPEGs are decoded (draft mode) at least this large.
PREVIEW_SIDE = 768
_EXIF_SWAPS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


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


def draft_request(source: ImageSource, target: int) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """For a JPEG file or bytes larger than `target` px: (draft size for Pillow, full (H, W) after EXIF).

    Reads only the header. The draft box keeps the photo's aspect ratio, so Pillow picks the
    largest reduction (1/2, 1/4, 1/8) whose longest side is still >= target. (None, None)
    for anything else (other formats, arrays, PIL images, unreadable headers).
    """
    if isinstance(source, (str, Path)):
        opener = lambda: Image.open(source)  # noqa: E731
    elif isinstance(source, (bytes, bytearray)):
        opener = lambda: Image.open(io.BytesIO(bytes(source)))  # noqa: E731
    elif hasattr(source, "getvalue"):
        opener = lambda: Image.open(io.BytesIO(source.getvalue()))  # noqa: E731
    else:
        return None, None
    try:
        with opener() as im:
            if im.format != "JPEG":
                return None, None
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # read_image reports the problem with a proper message
        return None, None
    full = (w, h) if orientation in _EXIF_SWAPS else (h, w)
    if max(w, h) <= target:
        return None, full
    scale = target / max(w, h)
    return (math.ceil(w * scale), math.ceil(h * scale)), full


@dataclass(frozen=True)
class Prepared:
    """`Predictor.prepare`'s result: one photo ready for the network.

    image: (H', W', C) as decoded and white-balanced (a large JPEG at a reduced draft size); x: (C, h32, w32)
    float32 working tensor, padded (model/data/padding.py); hw: (h, w), its size before
    padding; full_size: the photo's original (H, W) after EXIF orientation; check: the photo
    checks (model/data/quality.py) on the decoded photo, with its skin mask; skin: the (h, w) skin
    colour mask of the working image (the photo as scored), None when it is the check's; extras: what was
    done to it ({"white_balance": {"method": ..., "gains": [r, g, b]}}).
    """

    image: np.ndarray
    x: np.ndarray
    hw: tuple[int, int]
    full_size: tuple[int, int]
    check: PhotoCheck | None = None
    extras: dict = field(default_factory=dict)
    skin: np.ndarray | None = None


@dataclass
class Prediction:
    """One scored image. maps are at the photo's full size, computed on first access."""

    signs: list[str]
    max_score: float
    thresholds: list[float]
    label_names: list[str]
    image: np.ndarray  # (H', W', C) as decoded and white-balanced: a large JPEG at a reduced (draft) size, >= PREVIEW_SIDE
    work_maps: np.ndarray  # (S, h, w) float32 at the working size, padding removed
    scores: dict[str, float]
    labels: dict[str, str]
    affected_area: dict[str, float]
    uncertainty: dict[str, tuple[float, float]] | None = None
    extras: dict = field(default_factory=dict)
    full_size: tuple[int, int] | None = None  # (H, W) of the original photo; None = image's size
    gate: PhotoCheck | None = None  # the photo checks; skin mask at the decoded photo's size
    work_skin: np.ndarray | None = None  # (h, w) bool skin at the maps' working size (None: unknown)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the original photo (after EXIF orientation)."""
        return tuple(self.full_size) if self.full_size else tuple(self.image.shape[:2])

    @property
    def check(self) -> str | None:
        """The photo checks' verdict: pass, warn (scores may drift) or fail (not skin, or too
        blurred, dark, bright or small to score); None if the photo was not checked."""
        return self.gate.verdict if self.gate else None

    @property
    def check_reasons(self) -> tuple[str, ...]:
        """Why the photo warns or fails, in a clinician's words; empty for pass."""
        return self.gate.reasons if self.gate else ()

    @property
    def skin_fraction(self) -> float | None:
        """Fraction of the photo's pixels that are skin (0..1); affected_area is a fraction of those."""
        if self.work_skin is not None:
            return float(self.work_skin.mean())
        return self.gate.skin_fraction if self.gate else None

    @cached_property
    def skin(self) -> np.ndarray | None:
        """(H, W) bool skin mask at the photo's full size (nearest-neighbour from the working size)."""
        src = self.work_skin if self.work_skin is not None else None if self.gate is None else self.gate.skin
        if src is None:
            return None
        return resize_mask(src, *self.size)

    @cached_property
    def maps(self) -> np.ndarray:
        """(S, H, W) float16 on 0..max_score at the photo's full resolution (about 100 MB for 12 MP)."""
        h, w = self.size
        out = np.empty((len(self.work_maps), h, w), np.float16)
        for k, m in enumerate(self.work_maps):  # one float32 plane at a time keeps the peak low
            plane = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.multiply(plane, 1.0, dst=out[k], dtype=cv2.CV_16F)  # f32 -> f16 as numpy rounds, ~4x faster
        return out

    def preview(self, max_side: int = PREVIEW_SIDE) -> tuple[np.ndarray, np.ndarray]:
        """Display-size (h, w, 3) uint8 RGB image and (S, h, w) float32 maps (no full-size map is made)."""
        h, w = self.size
        scale = min(1.0, max_side / max(h, w))
        ph, pw = max(1, round(h * scale)), max(1, round(w * scale))
        rgb = to_uint8_rgb(self.image)
        if rgb.shape[:2] != (ph, pw):
            # area averaging where it shrinks a lot (anti-aliasing); bilinear, 5x faster, otherwise
            shrink = max(rgb.shape[0] / ph, rgb.shape[1] / pw)
            rgb = resize(rgb, pw, ph, cv2.INTER_AREA if shrink >= 2 else cv2.INTER_LINEAR)
        maps = np.empty((len(self.work_maps), ph, pw), np.float32)
        for k, m in enumerate(self.work_maps):
            maps[k] = cv2.resize(m, (pw, ph), interpolation=cv2.INTER_LINEAR)
        return rgb, maps

    def as_dict(self) -> dict:
        out = {"scores": self.scores, "labels": self.labels, "affected_area": self.affected_area,
               "check": self.check, "check_reasons": list(self.check_reasons), "skin_fraction": self.skin_fraction}
        if self.uncertainty is not None:
            out["uncertainty"] = {k: list(v) for k, v in self.uncertainty.items()}
        return out


class Predictor:
    """A loaded model: preprocessing, the network forward, and the summary of its maps.

    backend: torch-fp32 (eager), torch-bf16 (bf16 autocast + channels_last), onnx
    (onnxruntime on MODEL_DIR/model.onnx, written by `dermsev export`), or auto (default):
    DERMSEV_BACKEND if set, else the fastest available backend measured once per machine and
    model and cached (`model.inference.backends`). `backend_report` says why.

    white_balance: the default of `predict` (model/data/colour.py): "grey-world" (towards the
    training photos' reference colour; the default for models whose config.json stores that
    reference) or "none" (the default for others: older models, no red/green/blue channels);
    "patch" needs a box for each photo. A model trained with `--normalise-exposure` also gets
    each photo's exposure normalised by either method (`exposure_target`; not by "none").
    """

    def __init__(self, model_dir: str | Path, backend: str = "auto", threads: int | None = None,
                 white_balance: str | None = None):
        if backend not in BACKENDS:
            raise DermsevError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.model_dir = Path(model_dir)
        self.net, self.config = load_network(self.model_dir)
        self.rgb = colour.rgb_indices(self.config["channels"])  # None: no colour to balance
        self.white_reference = colour.reference_from_config(self.config)
        # a model trained on exposure-normalised photos gets its photos normalised the same way
        self.exposure_target = colour.exposure_target(self.config)
        # grey-world by default only towards a reference the model carries (`dermsev train` stores it)
        has_reference = self.rgb is not None and colour.stored_reference(self.config) is not None
        self.white_balance = colour.DEFAULT_METHOD if has_reference else "none"
        if white_balance:
            self.white_balance = self._white_balance(white_balance, None)
        if self.white_balance == "patch":
            raise DermsevError("white balance 'patch' needs a neutral box for each photo: pass it to predict")
        if threads:
            torch.set_num_threads(threads)
        self.threads = threads
        c = self.config
        self.signs: list[str] = list(c["signs"])
        self.max_score: float = float(c["max_score"])
        self.thresholds: list[float] = list(c["thresholds"])
        self.label_names: list[str] = list(c["labels"])
        self.channels: list[str] = list(c["channels"])
        self.size: int = int(c["input"]["size"])
        self.preview_side: int = PREVIEW_SIDE
        self._onnx = self._onnx_session = None
        self.backend = "torch-fp32"
        self.backend_report: dict = {}
        self.backend = self._choose_backend(backend)
        self._use(self.backend)

    def _use(self, backend: str) -> None:
        if backend == "onnx":
            if self._onnx_session is None:
                self._onnx_session = onnx_session(self.model_dir, threads=self.threads)
            self._onnx = self._onnx_session
            self.net = self.net.to(memory_format=torch.contiguous_format)
        else:
            self._onnx = None
            fmt = torch.channels_last if backend == "torch-bf16" else torch.contiguous_format
            self.net = self.net.to(memory_format=fmt)
        self.backend = backend

    def _choose_backend(self, backend: str) -> str:
        if backend != "auto":
            self.backend_report = {"rule": "requested"}
            return backend
        env = os.environ.get("DERMSEV_BACKEND", "").strip()
        if env and env != "auto":
            if env not in BACKENDS:
                raise DermsevError(f"DERMSEV_BACKEND must be one of {list(BACKENDS)}, got {env!r}")
            self.backend_report = {"rule": "DERMSEV_BACKEND"}
            return env
        forwards, notes = self._candidates()
        key = {"weights": file_sha256(self.model_dir / "model.safetensors"), "network": config_sha256(self.config),
               "size": self.size}
        name, self.backend_report = backends.choose_backend(forwards, key, self.max_score, notes)
        return name

    def _candidates(self) -> tuple[dict, dict]:
        """{backend: forward() on one working-size image} for `backends.choose_backend`, and why
        any backend is left out: torch-bf16 only with native bf16, onnx only with a current
        model.onnx."""
        x = np.random.default_rng(0).random((1, len(self.channels), self.size, self.size), dtype=np.float32)
        names, notes = ["torch-fp32"], {}
        if native_bf16():
            names.append("torch-bf16")
        else:
            notes["torch-bf16"] = "skipped: this CPU has no native bf16 (autocast would emulate it)"
        try:
            self._onnx_session = onnx_session(self.model_dir, threads=self.threads)
            names.append("onnx")
        except DermsevError as exc:
            notes["onnx"] = f"skipped: {exc}"

        def forward_on(name: str):
            def run() -> np.ndarray:
                self._use(name)
                return self.forward(x, 40.0, "F")
            return run

        return {n: forward_on(n) for n in names}, notes

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

    # -- preprocessing, one stage per method (`dermsev bench` times each) -------------------
    def read_file(self, source: ImageSource, name: str | None = None):
        """Stage decode: the file's pixels (large JPEGs in draft mode, just large enough for the
        working size and the preview) and the photo's full (H, W) after EXIF, or None if unknown."""
        draft, full = draft_request(source, max(self.size, self.preview_side))
        return imageio.decode(source, name=name, draft_size=draft), (full if draft is not None else None)

    def orient(self, decoded, name: str | None = None) -> np.ndarray:
        """Stage exif: EXIF orientation, mode and channel count -> (H', W', C) array."""
        img = imageio.to_array(decoded, name or "image")
        return match_channels(img, len(self.channels), name or "image")

    def decode(self, source: ImageSource, name: str | None = None) -> tuple[np.ndarray, tuple[int, int]]:
        """Decode + EXIF orientation -> ((H', W', C) image, full (H, W)); large JPEGs in draft mode."""
        return self._decode(source, name)[:2]

    def _decode(self, source: ImageSource, name: str | None = None):
        """`decode`, and the file's JPEG quality (None when not a JPEG) for the photo checks."""
        decoded, full = self.read_file(source, name)
        img = self.orient(decoded, name)
        full = full or img.shape[:2]
        return img, (int(full[0]), int(full[1])), imageio.jpeg_quality(decoded)

    def to_working(self, img: np.ndarray) -> np.ndarray:
        """(H, W, C) any dtype -> (h, w, C) float32 on 0..1, longest side = working size.

        Resizes in the image's own dtype first (as training does), then converts the small result.
        """
        h, w = img.shape[:2]
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if (nh, nw) != (h, w):
            src = img if img.dtype in (np.uint8, np.uint16, np.float32) else to_float(img)
            img = resize(src, nw, nh, cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return to_float(img)

    pad = staticmethod(pad_chw)  # stage pad: (h, w, C) -> (C, h32, w32), model/data/padding.py

    @staticmethod
    def unpad(out: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """Stage unpad: (..., h32, w32) network output -> (..., h, w), contiguous."""
        return np.ascontiguousarray(out[..., : hw[0], : hw[1]])

    def _white_balance(self, method: str | None, box) -> str:
        """The method for one photo: `method`, else "patch" when a box is given, else the default."""
        method = method or ("patch" if box is not None else self.white_balance)
        try:
            colour.check_method(method)
        except ValueError as exc:
            raise DermsevError(str(exc)) from None
        if box is not None and method != "patch":
            raise DermsevError(f"a neutral box is for white balance 'patch', not {method!r}")
        if method != "none" and self.rgb is None:
            raise DermsevError(f"white balance needs red, green and blue channels; the model has {self.channels}")
        return method

    def balance(self, img: np.ndarray, full: tuple[int, int], method: str | None = None,
                box: tuple[float, float, float, float] | None = None, name: str | None = None) -> tuple[np.ndarray, dict]:
        """Stage white balance (model/data/colour.py): (H', W', C) -> the same, balanced, and
        {"method", "gains"}. box: (x0, y0, x1, y1) in the original photo's pixels (full (H, W))."""
        method = self._white_balance(method, box)
        try:
            if box is not None:  # the decoded copy may be a reduced (draft) JPEG
                sy, sx = img.shape[0] / full[0], img.shape[1] / full[1]
                box = tuple(v * s for v, s in zip(colour.parse_box(box), (sx, sy, sx, sy), strict=True))
            out, gains = colour.balance(img, method, self.white_reference, box, rgb=self.rgb,
                                        luminance=self.exposure_target)
        except ValueError as exc:
            raise DermsevError(f"{name}: {exc}" if name else str(exc)) from None
        return out, {"method": method, "gains": [round(float(g), 4) for g in gains]}

    def prepare(self, source: ImageSource, name: str | None = None, white_balance: str | None = None,
                neutral_box: tuple[float, float, float, float] | None = None) -> Prepared:
        """Decode, orient, white-balance, resize to the working size, check and pad: one photo
        ready for `forward`. white_balance, neutral_box: as in `predict`."""
        img, full, quality = self._decode(source, name)
        taken = img
        img, wb = self.balance(img, full, white_balance, neutral_box, name)
        x = self.to_working(img)
        # The checks measure the photo as taken, at their own fixed size (model/data/quality.py),
        # not the model's working copy (a model that works at 64 px would make every photo
        # blurred) and not the balanced copy: balancing towards the training photos' colour
        # turns a grey photo, a cup or a wall skin-coloured, and the not-skin checks then pass
        # them (detection fell from 24/24 to 13/24 whole photos, bench/bench_gate.py). A cast
        # the balance removes is no reason to warn, so the cast check is off when it balances.
        limits = LIMITS if wb["method"] == "none" else NO_CAST
        check = check_photo(taken, full_size=full, channels=self.channels, work_size=self.size, limits=limits,
                            jpeg_quality=quality)
        # What is scored as skin is found on the balanced photo, the colours the model sees: under
        # a warm light red lesions fall outside skin colour as taken, and a sign's score and area
        # then shrink with them (erythema's 95th-percentile drift at 4000 K: 0.46 -> 0.06,
        # docs/robustness.md).
        skin = None if wb["method"] == "none" else skin_of(x, self.channels)  # at the working size
        return Prepared(img, self.pad(x), (int(x.shape[0]), int(x.shape[1])), full, check, {"white_balance": wb},
                        skin)

    # -- the model ------------------------------------------------------------------------
    @property
    def has_skin(self) -> bool:
        """The network has a skin channel (after the signs)."""
        return bool(self.config.get("network", {}).get("skin_head", False))

    def forward(self, x: np.ndarray, age: float | Sequence[float | None] | None = None,
                sex: str | Sequence[str | None] | None = None) -> np.ndarray:
        """x: (B, C, H, W) float32 on 0..1, H, W multiples of 32 -> maps (B, S, H, W) float32.

        age, sex: one value for the whole batch (as `predict` takes it, None = unknown) or a
        sequence of B values, one per image (images of different patients in one batch)."""
        out = self.forward_all(x, age, sex)
        return out[:, : len(self.signs)] if self.has_skin else out

    def forward_all(self, x: np.ndarray, age: float | Sequence[float | None] | None = None,
                    sex: str | Sequence[str | None] | None = None) -> np.ndarray:
        """`forward` with the skin channel, when the network has one: (B, S [+ 1], H, W)."""
        ages, sexes = encode_tabular_batch(age, sex, x.shape[0])  # (B,) float32, (B,) int64
        if self._onnx is not None:
            feeds = {"image": np.ascontiguousarray(x, dtype=np.float32), "age": ages, "sex": sexes}
            return self._onnx.run(None, feeds)[0]
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        age_t, sex_t = torch.from_numpy(ages), torch.from_numpy(sexes)
        with torch.inference_mode():
            if self.backend == "torch-bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = self.net(t.contiguous(memory_format=torch.channels_last), age_t, sex_t)
            else:
                out = self.net(t, age_t, sex_t)
        return out.float().contiguous().numpy()

    def predict(self, image: ImageSource, age: float | None = None, sex: str | None = None,
                tta: bool = False, name: str | None = None, white_balance: str | None = None,
                neutral_box: tuple[float, float, float, float] | None = None) -> Prediction:
        """Score one image (a path, PIL image, bytes or (H, W, C) array).

        white_balance: "none", "grey-world", "patch" or None (the predictor's default; "patch"
        when a neutral_box is given); neutral_box: (x0, y0, x1, y1), pixels of the original
        photo (after EXIF orientation) that should be neutral grey or white.
        """
        self._check_patient(age, sex)
        return self.predict_prepared(self.prepare(image, name, white_balance, neutral_box), age, sex, tta)

    @staticmethod
    def _check_patient(age: float | None, sex: str | None) -> None:
        check_age(age), check_sex(sex)  # raise DermsevError with the allowed values

    def predict_prepared(self, prepared: Prepared, age: float | None = None, sex: str | None = None,
                         tta: bool = False) -> Prediction:
        """Score the output of `prepare` (lets callers decode in parallel threads).

        tta: score the photo's `tta_views` (turned by 0..3 quarter turns) in one batch; the map
        is their mean, `uncertainty` the range of their scores."""
        self._check_patient(age, sex)
        if tta:
            return self.from_output(prepared, [self.forward_all(v, age, sex) for v in self.tta_views(prepared.x)])
        return self.from_output(prepared, self.forward_all(prepared.x[None], age, sex)[0])

    tta_views = staticmethod(views)  # (C, h32, w32) -> batches of its quarter turns, model/inference/tta.py

    def from_output(self, prepared: Prepared, out: np.ndarray) -> Prediction:
        """The end of `predict` (unpad, skin channel, summary), for callers that batch forwards:
        out is one photo's row of `forward_all`, (S [+ 1], h32, w32), or with TTA a list of the
        rows of each batch of its `tta_views`, which are turned back and averaged."""
        tta = isinstance(out, (list, tuple))
        work, skin = self.split_skin(self.unpad(unview(out) if tta else out, prepared.hw))
        each = work if tta else None  # (VIEWS, S, h, w): the spread of the views' scores
        if tta:
            work, skin = work.mean(0), None if skin is None else skin.mean(0)
        return self.summarise(prepared.image, work, each, full_size=prepared.full_size, check=prepared.check,
                              skin_prob=skin, colour_skin=prepared.skin)

    def split_skin(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(..., S [+ 1], h, w) network output -> sign maps (..., S, h, w) and the skin
        probability (..., h, w), or None without a skin channel."""
        s = len(self.signs)
        if not self.has_skin:
            return out, None
        return out[..., :s, :, :], out[..., s, :, :]

    def safe_prepare(self, src: ImageSource, white_balance: str | None = None,
                     neutral_box: tuple[float, float, float, float] | None = None) -> Prepared | DermsevError:
        """`prepare`, with any failure returned as a DermsevError naming the file (not raised)."""
        try:
            return self.prepare(src, str(src) if isinstance(src, (str, Path)) else None, white_balance, neutral_box)
        except DermsevError as exc:
            return exc
        except Exception as exc:  # one bad file, never a lost run
            return DermsevError(f"{src}: cannot read ({exc.__class__.__name__}: {exc})")

    def predict_many(self, images: Iterable[ImageSource], age: float | None = None, sex: str | None = None,
                     batch_size: int = 8, workers: int = 2, ahead: int | None = None,
                     tta: bool = False, white_balance: str | None = None,
                     neutral_box: tuple[float, float, float, float] | None = None) -> Iterator[Prediction | DermsevError]:
        """Score many images, in order, streaming: one Prediction (or the DermsevError of an
        unreadable file) per input.

        A pipeline: `workers` threads decode up to `ahead` (default 2 x batch_size) images in
        advance and summarise finished maps, while the calling thread runs the model;
        consecutive images of the same working shape share one batched forward (with `tta`,
        each image is scored on its own, as `predict` does). Memory stays bounded by `ahead` +
        2 batches of images, whatever the number of inputs. white_balance, neutral_box: as in
        `predict`, the same for every image.
        """
        self._check_patient(age, sex)
        self._white_balance(white_balance, neutral_box)  # a bad choice ends the run before it starts

        def prep_one(src: ImageSource) -> Prepared | DermsevError:
            return self.safe_prepare(src, white_balance, neutral_box)

        ahead = max(ahead or 2 * batch_size, batch_size)
        end = object()

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            it = iter(images)
            pending = deque(pool.submit(prep_one, src) for src in itertools.islice(it, ahead))
            done: deque = deque()  # in input order: DermsevError, Prediction or Future[Prediction]
            group: list = []

            def flush() -> None:
                if group:
                    out = self.forward_all(np.stack([p.x for p in group]), age, sex)
                    for i, p in enumerate(group):
                        done.append(pool.submit(self.from_output, p, out[i]))
                    group.clear()

            while pending:
                prep = pending.popleft().result()
                nxt = next(it, end)
                if nxt is not end:
                    pending.append(pool.submit(prep_one, nxt))
                if isinstance(prep, DermsevError):
                    flush()
                    done.append(prep)
                elif tta:
                    done.append(self.predict_prepared(prep, age, sex, tta=True))
                else:
                    if group and (prep.x.shape != group[0].x.shape or len(group) >= batch_size):
                        flush()
                    group.append(prep)
                # hand out what is finished; wait only when too much is waiting (bounded memory)
                while done and (not isinstance(done[0], Future) or done[0].done() or len(done) > 2 * batch_size):
                    head = done.popleft()
                    yield head.result() if isinstance(head, Future) else head
            flush()
            while done:
                head = done.popleft()
                yield head.result() if isinstance(head, Future) else head

    @property
    def first_threshold(self) -> float:
        """The severity at which a pixel counts as affected (the first label threshold)."""
        return self.thresholds[0] if self.thresholds else self.max_score / 2

    def _summary(self, maps: np.ndarray, skin: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(S,) scores over the skin (all pixels without a skin estimate, or with no skin) and
        (S,) affected fractions of the skin."""
        thr = self.first_threshold
        skin = None if skin is None or not skin.any() else skin.astype(bool)
        return easi_scores(maps, skin, thr), affected_fraction(maps, None, thr, skin=skin)

    def score_maps(self, maps: np.ndarray, skin: np.ndarray | None = None) -> dict[str, dict]:
        """Scores, labels and affected areas of (S, h, w) maps on 0..max_score over a (h, w)
        bool skin mask (None: every pixel), by the rules `predict` uses: for a mask the
        clinician corrected. Returns {"scores": {sign: float}, "labels": {sign: name},
        "affected_area": {sign: 0..1}}."""
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim != 3 or maps.shape[0] != len(self.signs):
            raise ValueError(f"maps must be ({len(self.signs)}, h, w), got {maps.shape}")
        if skin is not None and np.shape(skin) != maps.shape[1:]:
            raise ValueError(f"skin mask must be {maps.shape[1:]}, got {np.shape(skin)}")
        return self._named(*self._summary(maps, skin))

    def _named(self, scores: np.ndarray, area: np.ndarray) -> dict[str, dict]:
        """(S,) scores and areas -> {"scores", "labels", "affected_area"}, each {sign: value}."""
        return {"scores": {s: float(scores[k]) for k, s in enumerate(self.signs)},
                "labels": {s: label_for(float(scores[k]), self.thresholds, self.label_names) for k, s in enumerate(self.signs)},
                "affected_area": {s: float(area[k]) for k, s in enumerate(self.signs)}}

    def summarise(self, img: np.ndarray, work: np.ndarray, tta_maps: np.ndarray | None = None,
                  full_size: tuple[int, int] | None = None, check: PhotoCheck | None = None,
                  skin_prob: np.ndarray | None = None, colour_skin: np.ndarray | None = None) -> Prediction:
        """(S, h, w) working-size maps -> a Prediction with scores, labels and affected area.

        check: the photo checks of the same photo; skin_prob: the network's (h, w) skin
        probability, when it has a skin channel; colour_skin: the skin colour mask of the photo as
        scored (white-balanced), in place of the check's. The skin is where colour finds skin
        and (with a skin channel) the network does too: colour leaves out blue cloth and walls
        the synthetic training data never showed, the network skin-coloured tables and hair.
        Scores are taken over the skin and the affected area is a fraction of it (over all
        pixels without any skin). Scores are always computed, whatever the verdict.
        """
        skin = colour_skin if colour_skin is not None else None if check is None else check.skin
        if skin is not None:  # the check's at the photo's own size, colour_skin at the working size
            skin = resize_mask(skin, *work.shape[1:])
        if skin_prob is not None:
            net_skin = skin_prob >= 0.5
            skin = net_skin if skin is None else skin & net_skin
        scores, area = self._summary(work, skin)
        unc = None
        if tta_maps is not None:
            # The averaged map's score can fall outside the per-view scores (pixels cross the
            # affected threshold when averaged), so the range is widened to include it.
            each = np.concatenate([np.stack([self._summary(m, skin)[0] for m in tta_maps]), scores[None]])
            unc = {s: (float(each[:, k].min()), float(each[:, k].max())) for k, s in enumerate(self.signs)}
        return Prediction(
            signs=self.signs, max_score=self.max_score, thresholds=self.thresholds, label_names=self.label_names,
            image=img, work_maps=np.ascontiguousarray(work, dtype=np.float32),
            **self._named(scores, area),
            uncertainty=unc,
            full_size=tuple(full_size) if full_size else None,
            gate=check,
            work_skin=skin,
        )


def load_model(model_dir: str | Path | None = None, backend: str = "auto",
               white_balance: str | None = None) -> Predictor:
    """Load MODEL_DIR (default: the bundled demo model) without pickle.

    backend: auto (default; see Predictor), torch-fp32, torch-bf16 or onnx; white_balance: the
    default of `predict` ("grey-world" or "none"; None: grey-world for models that store a
    white reference, see Predictor).
    """
    return Predictor(DEMO_DIR if model_dir is None else model_dir, backend=backend, white_balance=white_balance)
