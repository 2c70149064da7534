"""White balance in the prediction path: Predictor.predict / predict_many / load_model."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.data.colour import planckian_gains, reference_for_channels
from model.errors import DermsevError
from model.inference import WHITE_BALANCES, Predictor, load_model
from tests.model.data.test_colour import relight, skin_photo


def synth_photos(synth_dataset: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(f).convert("RGB")) for f in sorted((synth_dataset / "images").glob("*.png"))]


@pytest.fixture(scope="module")
def balanced_dir(tiny_model_dir: Path, synth_dataset: Path, tmp_path_factory) -> Path:
    """The tiny model with a white reference taken from the synthetic photos, stored in
    config.json as `dermsev train` stores it."""
    out = tmp_path_factory.mktemp("balanced") / "tiny"
    shutil.copytree(tiny_model_dir, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["input"]["white_reference"] = reference_for_channels(synth_photos(synth_dataset), cfg["channels"])
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def predictor(balanced_dir: Path) -> Predictor:
    return load_model(balanced_dir, backend="torch-fp32")


@pytest.fixture(scope="module")
def skin(synth_dataset: Path) -> np.ndarray:
    """A synthetic skin photo (64 px) from the generator."""
    return synth_photos(synth_dataset)[0]


def scores(res) -> np.ndarray:
    return np.array(list(res.scores.values()))


def test_default_is_grey_world_with_a_stored_reference_and_settable_at_load(
        predictor: Predictor, balanced_dir: Path, tiny_model_dir: Path) -> None:
    assert predictor.white_balance == "grey-world" and set(WHITE_BALANCES) == {"none", "grey-world", "patch"}
    assert load_model(balanced_dir, backend="torch-fp32", white_balance="none").white_balance == "none"
    # a model without a stored reference is not balanced unless asked (its input mean is a guess)
    assert load_model(tiny_model_dir, backend="torch-fp32").white_balance == "none"
    assert load_model(tiny_model_dir, backend="torch-fp32", white_balance="grey-world").white_balance == "grey-world"


def test_balance_brings_a_cast_photo_closer_to_the_uncast_one(predictor: Predictor, skin: np.ndarray) -> None:
    """3500 K (tungsten light): balanced, the model sees colours closer to the uncast photo's, and
    the skin it scores over is found on the balanced photo, so it is the uncast photo's skin; as
    taken, the warm cast pushes much of the skin out of skin colour."""
    warm = relight(skin, planckian_gains(3500))
    res = {m: (predictor.predict(warm, white_balance=m), predictor.predict(skin, white_balance=m))
           for m in ("none", "grey-world")}
    maps = {m: np.abs(a.work_maps - b.work_maps).mean() for m, (a, b) in res.items()}
    same_skin = {m: (a.skin == b.skin).mean() for m, (a, b) in res.items()}
    assert maps["none"] > 0.05  # the cast moves the untrained model's maps ...
    assert maps["grey-world"] < 0.8 * maps["none"]  # ... and the balance takes much of it back
    assert same_skin["none"] < 0.8  # as taken, a warm light loses skin ...
    assert same_skin["grey-world"] > 0.95  # ... balanced, the skin is the uncast photo's


def test_the_checks_judge_the_photo_as_taken_without_the_cast_the_balance_removed(
        predictor: Predictor, skin: np.ndarray) -> None:
    """A warm cast warns unbalanced and not once balanced; what the photo shows is judged on
    the photo as taken (a balance towards skin colour would make a grey wall look like skin),
    so under strong tungsten light the photo fails as not skin either way."""
    warm = relight(skin, planckian_gains(3500))
    assert any("cast" in r for r in predictor.predict(warm, white_balance="none").check_reasons)
    assert not any("cast" in r for r in predictor.predict(warm).check_reasons)
    tungsten = relight(skin, planckian_gains(2700))
    for method in ("none", "grey-world"):
        res = predictor.predict(tungsten, white_balance=method)
        assert res.check == "fail" and any("skin" in r for r in res.check_reasons)


def test_predict_many_applies_the_same_balance(predictor: Predictor, skin: np.ndarray) -> None:
    warm = relight(skin, planckian_gains(3500))
    for method in ("none", "grey-world"):
        many = list(predictor.predict_many([skin, warm], white_balance=method))
        for res, img in zip(many, (skin, warm), strict=True):
            assert scores(res) == pytest.approx(scores(predictor.predict(img, white_balance=method)), abs=1e-4)


def test_prepare_records_what_was_done(predictor: Predictor, skin: np.ndarray) -> None:
    assert predictor.prepare(skin, white_balance="none").extras["white_balance"] == {"method": "none", "gains": [1, 1, 1]}
    wb = predictor.prepare(relight(skin, planckian_gains(3000))).extras["white_balance"]
    assert wb["method"] == "grey-world" and wb["gains"][2] > 1.5 > wb["gains"][0]  # tungsten: blue up, red down


def test_neutral_box_is_in_the_original_photos_pixels_even_for_a_draft_decoded_jpeg(predictor: Predictor) -> None:
    """A 1600 x 1200 JPEG is decoded at a reduced (draft) size; the box still lands on the card."""
    big = np.asarray(Image.fromarray(skin_photo(h=120, w=160)).resize((1600, 1200)))
    big = big.copy()
    big[100:500, 1000:1500] = (190, 160, 110)  # a grey card under warm light
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=95)
    prep = predictor.prepare(buf.getvalue(), neutral_box=(1050, 150, 1450, 450))
    assert prep.extras["white_balance"]["method"] == "patch"
    h, w = prep.image.shape[:2]
    assert w < 1600  # decoded in draft mode
    card = prep.image[int(200 * h / 1200): int(400 * h / 1200), int(1100 * w / 1600): int(1400 * w / 1600)]
    assert np.ptp(np.median(card.reshape(-1, 3), axis=0)) <= 3  # grey after the balance


def test_a_model_without_colour_channels_is_not_balanced(write_tiny_model, tmp_path: Path) -> None:
    model = load_model(write_tiny_model(tmp_path / "m", channels=("gray", "uv")), backend="torch-fp32")
    assert model.white_balance == "none"
    with pytest.raises(DermsevError, match="needs red, green and blue"):
        model.predict(np.zeros((64, 64, 2), np.uint8), white_balance="grey-world")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"white_balance": "auto"}, "white balance must be one of"),
    ({"white_balance": "patch"}, "needs a neutral box"),
    ({"white_balance": "none", "neutral_box": (0, 0, 8, 8)}, "neutral box is for white balance 'patch'"),
    ({"neutral_box": (500, 500, 600, 600)}, "holds no pixel"),
    ({"neutral_box": (0, 0, 8)}, "must be 4 numbers"),
])
def test_bad_white_balance_is_a_dermsev_error(predictor: Predictor, skin: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(DermsevError, match=match):
        predictor.predict(skin, **kwargs)


def test_bad_white_balance_in_predict_many_ends_before_any_work(predictor: Predictor, skin: np.ndarray) -> None:
    with pytest.raises(DermsevError, match="white balance must be one of"):
        next(predictor.predict_many([skin], white_balance="grey"))


@pytest.mark.parametrize(("method", "match"), [("patch", "needs a neutral box for each photo"),
                                               ("daylight", "white balance must be one of")])
def test_bad_default_at_load(tiny_model_dir: Path, method: str, match: str) -> None:
    with pytest.raises(DermsevError, match=match):
        load_model(tiny_model_dir, backend="torch-fp32", white_balance=method)
