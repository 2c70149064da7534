"""The dataset contract: every user mistake is a DermsevError naming the row and file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from model.data.dataset import DatasetSpec, load_dataset, load_example
from model.data.scores import mask_image_score
from model.errors import DermsevError

# --- loader errors ------------------------------------------------------------------------
# Each case takes a valid two-row dataset (rows a and b) and breaks one thing. The error must
# name where to look: the manifest line (row b is on line 3) and/or the file.


def _missing_image(w):
    (w.root / w.rows[1]["image"]).unlink()
    return ["line 3", "b.png", "not found"]


def _unreadable_image(w):
    (w.root / w.rows[1]["image"]).write_text("not a PNG at all")
    return ["line 3", "b.png", "not an image"]


def _mask_size(w):
    w.mask("b_papulation.png", np.zeros((40, 47), np.uint8))
    return ["line 3", "b_papulation.png", "47x40", "48x40"]


def _mask_value(w):
    m = np.zeros((40, 48), np.uint8)
    m[5, 5] = 4
    w.mask("b_erythema.png", m)
    return ["line 3", "b_erythema.png", "mask value 4", "255"]


def _mask_value_254(w):
    m = np.full((40, 48), 255, np.uint8)
    m[0, 0] = 254
    w.mask("b_excoriation.png", m)
    return ["line 3", "b_excoriation.png", "254"]


def _rgb_mask(w):
    from PIL import Image

    Image.new("RGB", (48, 40)).save(w.root / "masks" / "b_erythema.png")
    return ["line 3", "b_erythema.png", "single-channel"]


def _missing_mask(w):
    (w.root / "masks" / "a_lichenification.png").unlink()
    return ["line 2", "a_lichenification.png", "not found"]


def _mask_column_unknown_sign(w):
    w.rows[0]["mask_pruritus"] = w.rows[0]["mask_erythema"]
    return ["manifest.csv", "mask_pruritus", "pruritus", "dataset.yaml"]


def _score_column_unknown_sign(w):
    w.rows[0]["score_oozing"] = "1"
    return ["manifest.csv", "score_oozing", "oozing"]


def _duplicate_id(w):
    w.rows[1]["id"] = "a"
    return ["line 3", "duplicate id 'a'", "line 2"]


def _channels_png(w):
    w.channels = ("red", "green", "blue", "uv")
    return ["line 2", "a.png", "3 channel", "4"]


def _channels_tiff(w):
    w.rows[1]["image"] = w.image("b.tif", np.zeros((40, 48, 5), np.uint8))
    return ["line 3", "b.tif", "5 channel", "declares 3"]


def _sex(w):
    w.rows[1]["sex"] = "female"
    return ["line 3", "sex", "female"]


def _age_negative(w):
    w.rows[1]["age"] = "-2"
    return ["line 3", "age", "-2", "out of range"]


def _age_text(w):
    w.rows[0]["age"] = "forty"
    return ["line 2", "age", "forty", "not a number"]


def _score_high(w):
    w.rows[1]["score_erythema"] = "3.5"
    return ["line 3", "score_erythema", "3.5", "0..3"]


def _score_negative(w):
    w.rows[1]["score_papulation"] = "-0.1"
    return ["line 3", "score_papulation", "out of range"]


def _score_text(w):
    w.rows[0]["score_excoriation"] = "mild"
    return ["line 2", "score_excoriation", "not a number"]


def _fitzpatrick(w):
    w.rows[0]["fitzpatrick"] = "7"
    return ["line 2", "fitzpatrick"]


def _split(w):
    w.rows[1]["split"] = "holdout"
    return ["line 3", "split", "holdout"]


def _no_image_column(w):
    for r in w.rows:
        del r["image"]
    return ["manifest.csv", "'image'", "missing"]


def _no_id_column(w):
    for r in w.rows:
        del r["id"]
    return ["manifest.csv", "'id'", "missing"]


def _empty_image_cell(w):
    w.rows[1]["image"] = ""
    return ["line 3", "image"]


LOADER_ERRORS = [
    _missing_image, _unreadable_image, _mask_size, _mask_value, _mask_value_254, _rgb_mask,
    _missing_mask, _mask_column_unknown_sign, _score_column_unknown_sign, _duplicate_id,
    _channels_png, _channels_tiff, _sex, _age_negative, _age_text, _score_high, _score_negative,
    _score_text, _fitzpatrick, _split, _no_image_column, _no_id_column, _empty_image_cell,
]


@pytest.mark.parametrize("breaker", LOADER_ERRORS, ids=[f.__name__.strip("_") for f in LOADER_ERRORS])
def test_loader_error_names_row_and_file(dataset_writer, breaker) -> None:
    w = dataset_writer()
    w.add("a")
    w.add("b")
    root = w.write()
    load_dataset(root)  # the untouched dataset is valid
    expected = breaker(w)
    w.write()
    with pytest.raises(DermsevError) as err:
        load_dataset(root)
    msg = str(err.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("signs: []\n", "at least one sign"),
        ("signs: [a, a]\n", "duplicate"),
        ("signs: [a]\nmax_score: high\n", "max_score"),
        ("signs: [a]\nmax_score: 3\nlabels: [none, mild]\n", "labels"),
        ("signs: ['red spots']\n", "red spots"),
        ("signs: [a\n", "YAML"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_dataset_yaml(dataset_writer, yaml_text: str, expected: str) -> None:
    w = dataset_writer()
    w.add("a", masks=False)
    root = w.write()
    (root / "dataset.yaml").write_text(yaml_text)
    with pytest.raises(DermsevError, match=expected):
        load_dataset(root)


def test_missing_folder_yaml_and_manifest(tmp_path: Path, dataset_writer) -> None:
    with pytest.raises(DermsevError, match="not found"):
        load_dataset(tmp_path / "nope")
    w = dataset_writer()
    w.add("a")
    root = w.write()
    (root / "manifest.csv").unlink()
    with pytest.raises(DermsevError, match="manifest.csv"):
        load_dataset(root)
    (root / "dataset.yaml").unlink()
    with pytest.raises(DermsevError, match="dataset.yaml"):
        load_dataset(root)


def test_manifest_without_rows(dataset_writer) -> None:
    w = dataset_writer()
    root = w.write(columns=["id", "image"])
    with pytest.raises(DermsevError, match="no rows"):
        load_dataset(root)


# --- values parsed and derived ------------------------------------------------------------


def test_optional_columns_and_defaults(dataset_writer) -> None:
    w = dataset_writer()
    w.add("a", age="", sex="", fitzpatrick="5", split="val")
    w.add("b", age="7.5", sex="m", patient_id="")
    ds = load_dataset(w.write())
    a, b = ds.records
    assert (a.age, a.sex, a.fitzpatrick, a.split, a.patient_id) == (None, None, 5, "val", "pt-a")
    assert (b.age, b.sex, b.fitzpatrick, b.split, b.patient_id) == (7.5, "M", None, None, "b")
    assert a.image == ds.root / "images" / "a.png"


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0, 2, 2, 3, 255], 7 / 3),  # mean over affected (>= 1) pixels; 255 and 0 left out
        ([1, 1, 255, 255], 1.0),
        ([0, 0, 0], 0.0),  # annotated, no sign: 0
        ([255, 255], None),  # nothing annotated: unknown
        ([3], 3.0),
    ],
)
def test_mask_image_score_easi_convention(values: list[int], expected: float | None) -> None:
    mask = np.array(values, np.uint8)[None]
    score = mask_image_score(mask, 3)
    assert score == pytest.approx(expected) if expected is not None else score is None


def _mask_with(values: list[int], h: int = 40, w: int = 48) -> np.ndarray:
    m = np.full((h, w), 255, np.uint8)
    m.flat[: len(values)] = values
    return m


def test_image_score_derived_from_mask_and_manifest_wins(dataset_writer) -> None:
    w = dataset_writer()
    for rid in ("a", "b"):
        w.add(rid)
        w.mask(f"{rid}_erythema.png", _mask_with([0, 2, 2, 3, 255]))
        w.mask(f"{rid}_papulation.png", _mask_with([0, 0, 0]))
        w.mask(f"{rid}_excoriation.png", _mask_with([]))  # nothing annotated
    w.rows[1]["score_erythema"] = "1.5"
    ds = load_dataset(w.write())
    a, b = ds.records
    assert a.scores["erythema"] == pytest.approx(7 / 3)
    assert b.scores["erythema"] == 1.5  # the manifest's score takes precedence over the mask's
    assert a.scores["papulation"] == 0.0
    assert a.scores["excoriation"] is None


@pytest.mark.parametrize(
    "signs, max_score",
    [(("itch",), 3), (("oozing", "crusting", "dryness", "scaling", "swelling"), 3), (("a-1", "b_2"), 4)],
)
def test_custom_signs(dataset_writer, signs: tuple[str, ...], max_score: int) -> None:
    w = dataset_writer(signs=signs, max_score=max_score)
    w.add("a")
    w.add("b", masks=False, **{f"score_{signs[-1]}": max_score})
    ds = load_dataset(w.write())
    assert ds.spec.signs == signs
    assert ds.spec.max_score == max_score
    assert len(ds.spec.labels) == max_score + 1
    assert ds.spec.thresholds == tuple(k + 0.5 for k in range(max_score))
    a, b = ds.records
    assert set(a.masks) == set(a.scores) == set(signs)
    assert b.scores[signs[-1]] == max_score and b.masks[signs[0]] is None
    img, masks = load_example(a, ds.spec)
    assert len(masks) == len(signs)
    assert all(m.shape == img.shape[:2] for m in masks)
    _, masks_b = load_example(b, ds.spec)
    assert all((m == 255).all() for m in masks_b)  # no mask: every pixel unannotated


def test_five_channel_tiff_dataset(dataset_writer) -> None:
    channels = ("red", "green", "blue", "polarised", "uv")
    w = dataset_writer(channels=channels)
    w.add("a")
    arr = np.random.default_rng(1).integers(0, 256, (40, 48, 5), dtype=np.uint8)
    tifffile.imwrite(w.root / w.rows[0]["image"], arr, photometric="minisblack", planarconfig="contig")
    ds = load_dataset(w.write())
    assert ds.spec.channels == channels
    img, masks = load_example(ds.records[0], ds.spec)
    assert img.shape == (40, 48, 5) and img.dtype == np.float32
    np.testing.assert_allclose(img, arr / 255, rtol=1e-6)
    assert len(masks) == 4


def test_uint16_tiff_is_scaled_to_unit_range(dataset_writer) -> None:
    w = dataset_writer(channels=("nir",))
    w.add("a", masks=False)
    arr = np.full((40, 48), 65535, np.uint16)
    arr[0, 0] = 0
    w.rows[0]["image"] = w.image("a.tif", arr)
    ds = load_dataset(w.write())
    img, _ = load_example(ds.records[0], ds.spec)
    assert img.shape == (40, 48, 1)
    assert img.min() == 0.0 and img.max() == 1.0


def test_load_example_masks_match_files(dataset_writer) -> None:
    w = dataset_writer()
    w.add("a")
    ds = load_dataset(w.write())
    _, masks = load_example(ds.records[0], ds.spec)
    for sign, m in zip(ds.spec.signs, masks, strict=True):
        from PIL import Image

        np.testing.assert_array_equal(m, np.asarray(Image.open(w.root / "masks" / f"a_{sign}.png")))


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"signs": ()}, "sign"),
        ({"channels": ()}, "channel"),
        ({"max_score": 0}, "max_score"),
        ({"max_score": 255}, "max_score"),
        ({"max_score": 2}, "labels"),  # default 4 labels do not fit 0..2
    ],
)
def test_dataset_spec_ill_args(kwargs: dict, expected: str) -> None:
    with pytest.raises(DermsevError, match=expected):
        DatasetSpec(**kwargs)


def test_synth_dataset_loads(synth_dataset: Path) -> None:
    ds = load_dataset(synth_dataset)
    assert len(ds.records) == 16
    assert all(r.fitzpatrick in range(1, 7) for r in ds.records)
    assert len({r.patient_id for r in ds.records}) < 16  # several images per patient


def test_skin_mask_column_is_read_and_checked(tmp_path: Path) -> None:
    import cv2

    from model.data.dataset import load_skin
    from model.synth.generator import generate

    root = generate(tmp_path / "ds", n=4, size=32, seed=2, workers=1)
    ds = load_dataset(root)
    rec = ds.records[0]
    assert rec.skin_mask is not None and set(np.unique(load_skin(rec, (32, 32)))) <= {0, 1}
    rec.skin_mask = None
    assert (load_skin(rec, (5, 7)) == 255).all() and load_skin(rec, (5, 7)).shape == (5, 7)
    bad = np.full((32, 32), 2, np.uint8)
    cv2.imwrite(str(root / "masks" / "img0002_skin.png"), bad)
    with pytest.raises(DermsevError, match=r"skin mask value 2 is not 0 \(not skin\), 1 \(skin\) or 255"):
        load_dataset(root)
    cv2.imwrite(str(root / "masks" / "img0002_skin.png"), np.ones((16, 32), np.uint8))
    with pytest.raises(DermsevError, match="skin_mask img0002_skin.png: mask is 32x16, image is 32x32"):
        load_dataset(root)
