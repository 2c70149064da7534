"""Fakes shaped like `model.inference` results, so dashboard modules test without a model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from dashboard.assessment import Assessment, PhotoResult
from dashboard.easi import compute_easi

SIGNS = ["erythema", "papulation", "excoriation", "lichenification"]
LABELS = ["none", "mild", "moderate", "severe"]
THRESHOLDS = [0.5, 1.5, 2.5]
WIDER_LABELS = [*LABELS, "very severe", "extreme"]  # for fakes on 0..4 or 0..5


@dataclass
class FakeResult:
    """The attributes of a `predictor.predict` result, from given per-sign maps."""

    maps: np.ndarray  # (n_signs, H, W) float16 on 0..max score (3 unless the fake says)
    image: np.ndarray  # (H, W, 3) uint8
    signs: list[str] = field(default_factory=lambda: list(SIGNS))
    uncertainty: dict[str, tuple[float, float]] | None = None
    thresholds: list[float] = field(default_factory=lambda: list(THRESHOLDS))
    label_names: list[str] = field(default_factory=lambda: list(LABELS))
    check: str = "pass"
    check_reasons: tuple[str, ...] = ()
    skin_fraction: float = 1.0
    skin: np.ndarray | None = None  # (H, W) bool; None = all skin

    @property
    def scores(self) -> dict[str, float]:
        out = {}
        for sign, m in zip(self.signs, self.maps.astype(np.float32), strict=True):
            present = m >= 1
            out[sign] = float(m[present].mean()) if present.any() else 0.0
        return out

    @property
    def labels(self) -> dict[str, str]:
        return {s: self.label_names[int(np.digitize(v, self.thresholds))]
                for s, v in self.scores.items()}  # fmt: skip

    @property
    def affected_area(self) -> dict[str, float]:
        return {
            s: float((m >= self.thresholds[0]).mean())
            for s, m in zip(self.signs, self.maps, strict=True)
        }

    def preview(self, max_side: int = 768) -> tuple[np.ndarray, np.ndarray]:
        step = max(1, -(-max(self.image.shape[:2]) // max_side))
        return self.image[::step, ::step].copy(), self.maps[:, ::step, ::step].astype(np.float32)


def make_result(seed: int = 0, h: int = 48, w: int = 64, tta: bool = False) -> FakeResult:
    """A skin-coloured photo with a lesion whose severity differs per sign."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[...] = (224, 172, 150)
    image = np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-(((yy - h / 2) / (h / 4)) ** 2 + ((xx - w / 2) / (w / 4)) ** 2))
    maps = np.stack([np.clip(blob * peak, 0, 3) for peak in (3.0, 2.0, 1.2, 0.4)])
    unc = {s: (0.1 * i, 0.1 * i + 0.4) for i, s in enumerate(SIGNS)} if tta else None
    return FakeResult(maps=maps.astype(np.float16), image=image, uncertainty=unc)


def make_assessment(
    pseudonym: str = "PT-0001",
    visit_date: dt.date = dt.date(2026, 3, 14),
    n_photos: int = 2,
    with_easi: bool = True,
    synthetic: bool = True,
    seed: int = 0,
) -> Assessment:
    photos = [
        PhotoResult.from_prediction(f"photo_{i}.jpg", "trunk", make_result(seed + i, tta=i == 0))
        for i in range(n_photos)
    ]
    easi = None
    if with_easi:
        easi = compute_easi(
            {
                "trunk": (
                    {"erythema": 2, "papulation": 1.5, "excoriation": 1, "lichenification": 0.5},
                    3,
                ),
                "head_neck": (
                    {"erythema": 1, "papulation": 1, "excoriation": 0, "lichenification": 0},
                    1,
                ),
            },
            age=34,
        )
    return Assessment(
        pseudonym=pseudonym,
        visit_date=visit_date,
        age=34,
        sex="F",
        region="trunk",
        photos=photos,
        easi=easi,
        model={
            "name": "dermsev-demo",
            "version": "0.1.0",
            "synthetic": synthetic,
            "description": "U-Net resnet18 trained on dermsev synth data",
        },
        signs=list(SIGNS),
    )


@pytest.fixture
def assessment() -> Assessment:
    return make_assessment()


@pytest.fixture(name="make_assessment")
def _make_assessment_fixture():
    return make_assessment


@pytest.fixture(name="make_result")
def _make_result_fixture():
    return make_result


class FakePredictor:
    """Stands in for `model.inference.Predictor`: decodes with Pillow, scores redness.

    max_score: the score scale (3, 4 or 5); one band per whole score, thresholds at 0.5, 1.5 ...
    """

    signs = list(SIGNS)
    channels = ["red", "green", "blue"]
    info = {
        "name": "fake-demo",
        "version": "0.0.1",
        "synthetic": True,
        "description": "a test double",
    }

    def __init__(self, max_score: float = 3.0):
        self.max_score = float(max_score)
        self.thresholds = [k + 0.5 for k in range(int(max_score))]
        self.label_names = WIDER_LABELS[: len(self.thresholds) + 1]
        self.calls: list[dict] = []  # white balance asked for, per predict call

    def decode(self, image, name=None):
        import io

        from PIL import Image, UnidentifiedImageError

        from model.errors import DermsevError

        if isinstance(image, np.ndarray):
            return image, image.shape[:2]
        try:
            with Image.open(io.BytesIO(image)) as img:
                rgb = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            raise DermsevError(f"{name}: not an image (or a format that cannot be read)") from None
        return rgb, rgb.shape[:2]

    def predict(self, image, age=None, sex=None, tta=False, name=None, white_balance=None, neutral_box=None):
        self.calls.append({"name": name, "white_balance": white_balance, "neutral_box": neutral_box})
        rgb, _ = self.decode(image, name)
        red = rgb[..., 0].astype(np.float32) - rgb[..., 1:].mean(axis=2)
        top = self.max_score
        base = np.clip(red / 40, 0, top)
        maps = np.stack([np.clip(base * f, 0, top) for f in (1.0, 0.7, 0.4, 0.1)])
        unc = {s: (0.1, 0.3) for s in SIGNS} if tta else None
        out = FakeResult(maps=maps.astype(np.float16), image=rgb, uncertainty=unc,
                         thresholds=list(self.thresholds), label_names=list(self.label_names))  # fmt: skip
        # the photo checks, faked by file name: "notskin*" fails, "dim*" warns
        if (name or "").startswith("notskin"):
            out.check, out.check_reasons, out.skin_fraction = "fail", ("this does not look like a photo of skin",), 0.0
            out.skin = np.zeros(rgb.shape[:2], bool)
        elif (name or "").startswith("dim"):
            out.check, out.check_reasons = "warn", ("dark photo: scores may be off; more light would help",)
        return out

    def score_maps(self, maps, skin=None):
        """The real rules (Predictor.score_maps): per sign, the median severity over the skin
        pixels at or above the first threshold (0 when they cover < 1 % of the skin) and the
        fraction of the skin they cover; every pixel counts when the mask is None or empty."""
        maps = np.asarray(maps, np.float32)
        skin = np.ones(maps.shape[1:], bool) if skin is None or not skin.any() else skin
        out = {"scores": {}, "labels": {}, "affected_area": {}}
        for sign, m in zip(self.signs, maps, strict=True):
            hit = m[skin][m[skin] >= self.thresholds[0]]
            score = float(np.median(hit)) if hit.size > 0.01 * skin.sum() else 0.0
            out["scores"][sign] = score
            out["labels"][sign] = self.label_names[int(np.digitize(score, self.thresholds))]
            out["affected_area"][sign] = hit.size / skin.sum()
        return out


@pytest.fixture
def fake_predictor(request):
    """A FakePredictor on 0..3; on 0..4 with @pytest.mark.parametrize("fake_predictor", [4],
    indirect=True)."""
    return FakePredictor(getattr(request, "param", 3.0))


@pytest.fixture
def downloads(monkeypatch):
    """{file name: bytes} of every download the page offers (captured from media storage)."""
    seen = {}
    real = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        if filename:
            seen[filename] = path_or_data
        return real(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return seen
