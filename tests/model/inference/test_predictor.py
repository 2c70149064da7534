"""The Python API of SPEC: load_model(...).predict(image) -> maps, scores, labels, affected area."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from model.data.io import read_image
from model.data.quality import skin_of
from model.errors import DermsevError
from model.inference.predictor import Predictor, load_model, match_channels


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path) -> Predictor:
    return load_model(tiny_model_dir, backend="torch-fp32")


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Skin-ish noise with a dark patch in one corner (so flips change the picture)."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal((200, 150, 130), 30, (h, w, 3)), 0, 255).astype(np.uint8)
    img[: h // 3, : w // 4] //= 3
    return img


def easi(m: np.ndarray, thr: float) -> float:
    """Reference: median severity over affected pixels, under 1 % of the image absent, both rules
    ramps over +-50 % (model/data/scores.py): pixels weigh 0 at thr / 2 and 1 at 1.5 thr, and the
    presence rises from 0 at 0.5 % of the image to 1 at 1.5 %."""
    w = np.clip((m - thr / 2) / thr, 0, 1).astype(np.float64)
    presence = np.clip((w.sum() / m.size - 0.005) / 0.01, 0, 1)
    if presence == 0:
        return 0.0
    order = np.argsort(m)
    c = np.cumsum(w[order])
    i = int(np.searchsorted(c, c[-1] / 2))
    if np.isclose(c[i], c[-1] / 2) and i + 1 < m.size:
        return float(presence * (m[order][i] + m[order][c > c[i]][0]) / 2)
    return float(presence * m[order][i])


def test_path_pil_and_numpy_give_the_same_result(predictor: Predictor, tmp_path: Path) -> None:
    arr = photo(90, 140)
    Image.fromarray(arr).save(tmp_path / "p.png")
    results = [predictor.predict(src) for src in (tmp_path / "p.png", str(tmp_path / "p.png"),
                                                  Image.open(tmp_path / "p.png"), arr,
                                                  (tmp_path / "p.png").read_bytes())]
    for r in results[1:]:
        assert r.scores == results[0].scores
        np.testing.assert_array_equal(r.maps, results[0].maps)


@pytest.mark.parametrize("h, w", [(64, 64), (90, 140), (300, 120), (40, 400)])
def test_maps_at_full_size_and_summary_in_range(predictor: Predictor, h: int, w: int) -> None:
    r = predictor.predict(photo(h, w))
    assert r.maps.shape == (4, h, w)
    assert r.maps.dtype in (np.float16, np.float32)
    assert r.maps.min() >= 0 and r.maps.max() <= predictor.max_score
    assert list(r.scores) == list(r.labels) == list(r.affected_area) == predictor.signs
    thr = predictor.thresholds[0]
    assert r.skin.shape == (h, w) and r.skin.any()
    # the skin colour of the photo as scored: white-balanced when the model balances
    colour = r.gate.skin if predictor.white_balance == "none" else skin_of(r.image)
    work_skin = cv2.resize(colour.astype(np.uint8), r.work_maps.shape[:0:-1], interpolation=cv2.INTER_NEAREST) > 0
    for k, sign in enumerate(predictor.signs):
        assert 0 <= r.affected_area[sign] <= 1
        assert 0 <= r.scores[sign] <= predictor.max_score
        # scores and areas follow the EASI convention on the maps (exactly at working size,
        # closely at full size, which is the working-size map upsampled), over the skin
        work = r.work_maps[k]
        assert r.scores[sign] == pytest.approx(easi(work[work_skin], thr), abs=1e-5)
        assert r.affected_area[sign] == pytest.approx((work >= thr)[work_skin].mean(), abs=1e-6)
        full = r.maps[k].astype(np.float32)
        assert r.affected_area[sign] == pytest.approx((full >= thr)[r.skin].mean(), abs=0.08)
        assert r.scores[sign] == pytest.approx(easi(full[r.skin], thr), abs=0.1)


def test_the_untrained_model_gives_varied_maps(predictor: Predictor) -> None:
    # guards the tests above: a constant map would make most of their checks trivial
    r = predictor.predict(photo(96, 96))
    assert r.maps.astype(np.float32).std() > 0.1
    assert len(set(r.labels.values())) > 1


def test_labels_follow_thresholds(predictor: Predictor) -> None:
    seen = set()
    for seed in range(4):
        r = predictor.predict(photo(64, 96, seed=seed))
        for sign, score in r.scores.items():
            level = int(np.sum(score >= np.array(predictor.thresholds)))
            assert r.labels[sign] == predictor.label_names[level]
            seen.add(r.labels[sign])
    assert seen <= {"none", "mild", "moderate", "severe"}


def test_summarise_hand_made_maps(predictor: Predictor) -> None:
    work = np.zeros((4, 4, 8), np.float32)
    work[1, :, :4] = 2.0  # half the image at 2.0
    work[2] = 3.0  # everywhere severe
    work[3, :2, :4] = 0.6  # a quarter just over the first threshold
    work[3, 3, 7] = 0.4  # below it: not affected, not counted
    r = predictor.summarise(np.zeros((4, 8, 3), np.uint8), work)
    assert r.scores == pytest.approx({"erythema": 0.0, "papulation": 2.0, "excoriation": 3.0, "lichenification": 0.6})
    assert r.labels == {"erythema": "none", "papulation": "moderate", "excoriation": "severe", "lichenification": "mild"}
    assert r.affected_area == pytest.approx({"erythema": 0.0, "papulation": 0.5, "excoriation": 1.0, "lichenification": 0.25})
    assert r.as_dict()["scores"] == r.scores


def test_every_prediction_carries_the_photo_checks(predictor: Predictor) -> None:
    r = predictor.predict(photo(90, 140))
    assert r.check in ("pass", "warn", "fail") and isinstance(r.check_reasons, tuple)
    assert 0 < r.skin_fraction <= 1 and r.skin.shape == (90, 140) and r.skin.dtype == bool
    d = r.as_dict()
    assert d["check"] == r.check and d["check_reasons"] == list(r.check_reasons)
    assert d["skin_fraction"] == r.skin_fraction
    many = list(predictor.predict_many([photo(90, 140), np.zeros((64, 64, 3), np.uint8)]))
    assert many[0].check == r.check and many[0].skin_fraction == r.skin_fraction
    assert many[1].check == "fail" and "dark" in " ".join(many[1].check_reasons)
    assert predictor.predict(photo(90, 140), tta=True).check == r.check


def test_affected_area_is_a_fraction_of_the_skin(predictor: Predictor) -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal((200, 150, 130), 6, (64, 128, 3)), 0, 255).astype(np.uint8)
    img[:20, :30] //= 2  # a darker patch, still skin
    img[:, 64:] = (40, 60, 160)  # blue cloth on the right half: not skin
    r = predictor.predict(img)
    assert r.skin_fraction == pytest.approx(0.5, abs=0.1) and not r.skin[:, 70:].any()
    # the skin mask at the maps' working size (nearest neighbour from the checked photo's size)
    skin = cv2.resize(r.gate.skin.astype(np.uint8), r.work_maps.shape[:0:-1], interpolation=cv2.INTER_NEAREST) > 0
    assert skin[:, :28].all() and not skin[:, 36:].any()
    for k, sign in enumerate(predictor.signs):
        hit = r.work_maps[k] >= predictor.thresholds[0]
        assert r.affected_area[sign] == pytest.approx(hit[skin].sum() / max(skin.sum(), 1), abs=1e-6)


def test_score_maps_takes_the_scores_and_areas_over_the_given_skin(predictor: Predictor) -> None:
    maps = np.zeros((4, 10, 20), np.float32)
    maps[:, :, :10] = 3.0  # severe on the left half
    maps[:, :, 10:] = 1.0  # mild on the right half
    every = predictor.score_maps(maps)
    assert every["affected_area"]["erythema"] == pytest.approx(1.0)
    right = np.zeros((10, 20), bool)
    right[:, 10:] = True
    out = predictor.score_maps(maps, right)  # the clinician excluded the left half
    assert out["scores"]["erythema"] == pytest.approx(1.0) and out["labels"]["erythema"] == "mild"
    assert out["affected_area"]["erythema"] == pytest.approx(1.0)
    maps[:, :5, 10:] = 0.0
    assert predictor.score_maps(maps, right)["affected_area"]["papulation"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="skin mask must be"):
        predictor.score_maps(maps, right[:5])
    with pytest.raises(ValueError, match="maps must be"):
        predictor.score_maps(maps[:2], right)


def test_a_photo_that_is_not_skin_still_gets_scores(predictor: Predictor) -> None:
    from skimage import data

    r = predictor.predict(data.coffee())
    assert r.check == "fail" and "skin" in r.check_reasons[0]
    assert set(r.scores) == set(predictor.signs) and set(r.labels) == set(predictor.signs)


def test_exif_rotated_input_gives_maps_in_the_rotated_shape(predictor: Predictor, tmp_path: Path) -> None:
    stored = photo(48, 80)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    r = predictor.predict(tmp_path / "rot.jpg")
    assert r.maps.shape == (4, 80, 48)
    upright = read_image(tmp_path / "rot.jpg")
    assert r.scores == predictor.predict(upright).scores


def test_tta_range_contains_the_score(predictor: Predictor) -> None:
    spread = 0.0
    for seed in range(3):
        # pixel noise makes the turned views disagree pixel by pixel, so averaging them moves
        # pixels across the affected threshold: the averaged map's score can leave the views' range
        img = np.random.default_rng(seed).integers(0, 256, (70, 100, 3), dtype=np.uint8)
        img[:23, :33] = 250
        r = predictor.predict(img, tta=True)
        assert set(r.uncertainty) == set(predictor.signs)
        for sign, (low, high) in r.uncertainty.items():
            assert low <= r.scores[sign] <= high
            spread = max(spread, high - low)
        assert r.as_dict()["uncertainty"] == {k: list(v) for k, v in r.uncertainty.items()}
    assert spread > 0  # flips really change an untrained model's maps
    assert predictor.predict(photo(70, 100)).uncertainty is None


@pytest.mark.parametrize("age, sex", [(None, None), (0, "F"), (45.5, "M"), (130, None)])
def test_age_and_sex_accepted(predictor: Predictor, age, sex) -> None:
    r = predictor.predict(photo(64, 64), age=age, sex=sex)
    assert len(r.scores) == 4


@pytest.mark.parametrize("age, sex, expected", [(-1, None, "age -1 is out of range"), (200, None, "age 200 is out of range"),
                                                 ("forty", None, "age 'forty' is not a number"),
                                                 (30, "X", "sex must be F or M"), (30, "female", "sex must be F or M")])
def test_bad_age_or_sex(predictor: Predictor, age, sex, expected: str) -> None:
    with pytest.raises(DermsevError, match=expected):
        predictor.predict(photo(64, 64), age=age, sex=sex)


def test_sex_in_lower_case_is_the_same_patient(predictor: Predictor) -> None:
    """One definition (model/data/patient.py) for the manifest, the API and the page: 'f' is 'F'."""
    img = photo(64, 64)
    assert predictor.predict(img, age=30, sex="f").scores == predictor.predict(img, age=30, sex="F").scores


def test_grayscale_and_rgba_inputs_are_adapted(predictor: Predictor) -> None:
    gray = photo(64, 80)[:, :, :1]
    assert predictor.predict(gray).maps.shape == (4, 64, 80)
    rgba = np.concatenate([photo(64, 80), np.full((64, 80, 1), 255, np.uint8)], axis=2)
    assert predictor.predict(rgba).scores == predictor.predict(photo(64, 80)).scores


def test_wrong_channel_count_is_refused(predictor: Predictor) -> None:
    with pytest.raises(DermsevError, match="5 channel"):
        predictor.predict(np.zeros((64, 64, 5), np.uint8), name="scan.tif")


@pytest.mark.parametrize(
    "c, n, shape", [(3, 3, (2, 2, 3)), (1, 3, (2, 2, 3)), (3, 1, (2, 2, 1)), (4, 3, (2, 2, 3))]
)
def test_match_channels(c: int, n: int, shape: tuple) -> None:
    assert match_channels(np.ones((2, 2, c), np.uint8) * 100, n).shape == shape


def test_broken_image_names_the_file(predictor: Predictor, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nothing more")
    with pytest.raises(DermsevError, match="broken.jpg"):
        predictor.predict(tmp_path / "broken.jpg")


def test_preview(predictor: Predictor) -> None:
    r = predictor.predict(photo(200, 100))
    rgb, maps = r.preview(max_side=50)
    assert rgb.shape == (50, 25, 3) and rgb.dtype == np.uint8
    assert maps.shape == (4, 50, 25)


def test_multichannel_model_scores_a_tiff(write_tiny_model, tmp_path: Path) -> None:
    channels = ("red", "green", "blue", "polarised", "uv")
    md = write_tiny_model(tmp_path / "m5", signs=("a", "b"), channels=channels, mixing=True)
    arr = np.random.default_rng(0).integers(0, 65535, (70, 90, 5), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "x.tif", arr, photometric="minisblack", planarconfig="contig")
    p = load_model(md, backend="torch-fp32")
    assert p.channels == list(channels)
    r = p.predict(tmp_path / "x.tif")
    assert r.maps.shape == (2, 70, 90) and set(r.scores) == {"a", "b"}


def test_default_backend_and_info(tiny_model_dir: Path, predictor: Predictor) -> None:
    p = load_model(tiny_model_dir)  # SPEC's call: the backend is chosen automatically
    assert p.info["synthetic"] is True and p.info["backend"] in ("torch-fp32", "torch-bf16", "onnx")
    auto, fp32 = p.predict(photo(64, 64)), predictor.predict(photo(64, 64))
    for sign in predictor.signs:  # bf16 or onnx agree with fp32 to within rounding
        assert auto.scores[sign] == pytest.approx(fp32.scores[sign], abs=0.15)
    with pytest.raises(DermsevError, match="backend"):
        load_model(tiny_model_dir, backend="tpu")


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(DermsevError, match="not found"):
        load_model(tmp_path / "nope")


def test_the_checks_judge_the_photo_as_taken_not_the_balanced_copy() -> None:
    """Grey-world balance (the demo model's default) turns a grey photo skin-coloured; the
    not-skin and black-and-white checks must still see it as it was taken."""
    from skimage import data

    from model.inference import load_model

    demo = load_model(backend="torch-fp32")
    assert demo.white_balance == "grey-world"
    r = demo.predict(np.stack([data.camera()] * 3, axis=-1))
    assert r.check == "fail" and "black-and-white" in r.check_reasons[0]
    # the same measures with and without the balance: the checks read the photo as taken
    coffee = data.coffee()
    assert demo.predict(coffee).gate.measures == demo.predict(coffee, white_balance="none").gate.measures
