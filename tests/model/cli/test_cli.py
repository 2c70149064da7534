"""`dermsev`: bad input ends with status 2 and one line on stderr; synth -> train -> evaluate
-> predict works end to end on tiny data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from model.cli import main

SPEC_KEYS = {"pixel_mae", "pixel_accuracy", "image_mae", "image_accuracy", "qwk", "affected_dice"}
LABELS = {"none", "mild", "moderate", "severe"}


def one_line_error(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"dermsev {command}: error: ")
    return err


# --- bad input -------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with one good photo and several broken ones."""
    Image.fromarray(np.full((64, 80, 3), 180, np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not a photo")
    (tmp_path / "nonempty").mkdir()
    (tmp_path / "nonempty" / "keep.txt").write_text("precious")
    (tmp_path / "config.yaml").write_text("epochs: 1\nwarp_speed: 9\n")
    return tmp_path


# [argv with {files}, {model}, {data} placeholders, command, text the message must contain]
BAD = [
    (["train", "{files}/no-dataset", "--out", "{files}/m"], "train", "no-dataset"),
    (["train", "{data}", "--out", "{files}/m", "--image-size", "50"], "train", "--image-size"),
    (["train", "{data}", "--out", "{files}/m", "--epochs", "0"], "train", "--epochs"),
    (["train", "{data}", "--out", "{files}/m", "--config", "{files}/config.yaml"], "train", "warp_speed"),
    (["train", "{data}", "--out", "{files}/m", "--config", "{files}/none.yaml"], "train", "none.yaml"),
    (["evaluate", "{files}/no-model", "{data}"], "evaluate", "no-model"),
    (["evaluate", "{model}", "{files}/no-dataset"], "evaluate", "no-dataset"),
    (["predict", "{files}/no-model", "{files}/good.png"], "predict", "no-model"),
    (["predict", "{model}", "{files}/broken.png"], "predict", "broken.png"),
    (["predict", "{model}", "{files}/empty.jpg"], "predict", "empty.jpg"),
    (["predict", "{model}", "{files}/notes.jpg"], "predict", "notes.jpg"),
    (["predict", "{model}", "{files}/missing.png"], "predict", "missing.png"),
    (["predict", "{model}", "{files}/good.png", "--out", "{files}/x.txt"], "predict", "x.txt"),
    (["predict", "{model}", "{files}/good.png", "--age", "-5"], "predict", "--age"),
    (["predict", "{model}", "{files}/nonempty"], "predict", "no images"),
    (["synth", "{files}/nonempty", "--n", "2"], "synth", "not empty"),
    (["synth", "{files}/s", "--size", "8"], "synth", "size"),
]


@pytest.mark.parametrize("argv, command, expected", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_exits_2_with_one_line(capsys, files: Path, tiny_model_dir: Path, synth_dataset: Path,
                                         argv: list[str], command: str, expected: str) -> None:
    argv = [a.format(files=files, model=tiny_model_dir, data=synth_dataset) for a in argv]
    assert main(argv) == 2
    assert expected in one_line_error(capsys, command)
    assert (files / "nonempty" / "keep.txt").read_text() == "precious"


def test_predict_decompression_bomb_refused(capsys, tmp_path: Path, tiny_model_dir: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "bomb.png")]) == 2
    err = one_line_error(capsys, "predict")
    assert "bomb.png" in err and "decompression bomb" in err


def test_evaluate_refuses_a_dataset_with_other_signs(capsys, tmp_path: Path, tiny_model_dir: Path, synth_dataset: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(synth_dataset, ds)
    meta = yaml.safe_load((ds / "dataset.yaml").read_text())
    meta["signs"] = ["erythema", "papulation", "excoriation", "oozing"]
    (ds / "dataset.yaml").write_text(yaml.safe_dump(meta))
    text = (ds / "manifest.csv").read_text().replace("lichenification", "oozing")
    (ds / "manifest.csv").write_text(text)
    assert main(["evaluate", str(tiny_model_dir), str(ds)]) == 2
    assert "oozing" in one_line_error(capsys, "evaluate")


def test_predict_skips_a_broken_file_among_good_ones(capsys, files: Path, tiny_model_dir: Path) -> None:
    out = files / "scores.csv"
    assert main(["predict", str(tiny_model_dir), str(files / "good.png"), str(files / "broken.png"),
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "skipped" in err and "broken.png" in err
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["image"]).name for r in rows] == ["good.png", "broken.png"]
    assert rows[0]["error"] == "" and "broken.png" in rows[1]["error"]
    assert rows[1]["score_erythema"] == ""


# --- the happy path ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> dict[str, Path]:
    """`dermsev synth` then `dermsev train`, as a user would run them."""
    root = tmp_path_factory.mktemp("cli")
    ds, model = root / "data", root / "model"
    assert main(["synth", str(ds), "--n", "16", "--size", "64", "--seed", "5"]) == 0
    assert main(["train", str(ds), "--out", str(model), "--epochs", "1", "--image-size", "64",
                 "--batch-size", "2", "--precision", "fp32", "--seed", "1", "--quiet"]) == 0
    return {"root": root, "data": ds, "model": model}


def test_synth_and_train_outputs(workflow: dict[str, Path]) -> None:
    ds, model = workflow["data"], workflow["model"]
    assert {p.name for p in ds.iterdir()} >= {"dataset.yaml", "manifest.csv", "images", "masks"}
    assert len(list(csv.DictReader((ds / "manifest.csv").open()))) == 16
    assert {p.name for p in model.iterdir()} >= {"config.json", "model.safetensors", "MODEL_CARD.md"}
    config = json.loads((model / "config.json").read_text())
    assert config["training"]["settings"]["epochs"] == 1
    assert config["training"]["settings"]["seed"] == 1


@pytest.mark.parametrize("with_fitzpatrick", [True, False])
def test_evaluate_json_has_specs_keys(capsys, workflow: dict[str, Path], with_fitzpatrick: bool) -> None:
    ds = workflow["data"]
    if not with_fitzpatrick:
        ds = workflow["root"] / "data-no-fitz"
        if not ds.exists():
            shutil.copytree(workflow["data"], ds)
            rows = list(csv.DictReader((ds / "manifest.csv").open()))
            with (ds / "manifest.csv").open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "fitzpatrick"], extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
    out = workflow["root"] / f"eval-{with_fitzpatrick}.json"
    assert main(["evaluate", str(workflow["model"]), str(ds), "--split", "all", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    signs = yaml.safe_load((ds / "dataset.yaml").read_text())["signs"]
    assert result["n_images"] == 16
    assert list(result["per_sign"]) == signs
    for sign in signs:
        assert set(result["per_sign"][sign]) >= SPEC_KEYS
        assert sign in printed
    assert set(result["mean"]) >= SPEC_KEYS
    for key in SPEC_KEYS:
        vals = [result["per_sign"][s][key] for s in signs if result["per_sign"][s][key] is not None]
        assert result["mean"][key] == pytest.approx(np.mean(vals))
    assert 0 <= result["mean"]["pixel_mae"] <= 3 and 0 <= result["mean"]["pixel_accuracy"] <= 1
    assert "rows = truth" in printed  # the confusion matrix
    if with_fitzpatrick:
        types = {r["fitzpatrick"] for r in csv.DictReader((ds / "manifest.csv").open())}
        assert set(result["by_fitzpatrick"]) == types
        assert sum(v["n_images"] for v in result["by_fitzpatrick"].values()) == 16
        for v in result["by_fitzpatrick"].values():
            assert set(v) >= SPEC_KEYS
    else:
        assert "by_fitzpatrick" not in result


def test_evaluate_default_split_is_test(workflow: dict[str, Path]) -> None:
    out = workflow["root"] / "eval-test.json"
    assert main(["evaluate", str(workflow["model"]), str(workflow["data"]), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    n = json.loads((workflow["model"] / "config.json").read_text())["training"]["n_images"]
    assert result["split"] == "test" and result["n_images"] == n["test"]


def test_evaluate_with_tta_and_white_balance_scores_as_asked(capsys, workflow: dict[str, Path]) -> None:
    """--tta and --white-balance reach the predictions: each changes the pixel error, and the
    JSON and the table say how the images were scored."""
    results = {}
    for flags in ([], ["--tta"], ["--white-balance", "none"]):
        out = workflow["root"] / f"eval{'-'.join(flags)}.json"
        assert main(["evaluate", str(workflow["model"]), str(workflow["data"]), "--split", "all",
                     "--json", str(out), *flags]) == 0
        results[" ".join(flags)] = (json.loads(out.read_text()), capsys.readouterr().out)
    (plain, table), (tta, tta_table), (raw, _) = results.values()
    assert (plain["tta"], tta["tta"]) == (False, True) and "quarter turns averaged (TTA)" in tta_table
    assert "TTA" not in table
    assert plain["white_balance"] == "grey-world" and raw["white_balance"] == "none"
    assert tta["mean"]["pixel_mae"] != pytest.approx(plain["mean"]["pixel_mae"], abs=1e-6)
    assert raw["mean"]["pixel_mae"] != pytest.approx(plain["mean"]["pixel_mae"], abs=1e-6)


def test_predict_csv_and_maps(workflow: dict[str, Path]) -> None:
    images = sorted((workflow["data"] / "images").glob("*.png"))[:2]
    out, maps = workflow["root"] / "x.csv", workflow["root"] / "maps"
    assert main(["predict", str(workflow["model"]), *map(str, images), "--age", "40", "--sex", "f",
                 "--out", str(out), "--maps", str(maps)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["image"] for r in rows] == [str(p) for p in images]
    signs = yaml.safe_load((workflow["data"] / "dataset.yaml").read_text())["signs"]
    for r in rows:
        assert r["error"] == ""
        for s in signs:
            assert 0 <= float(r[f"score_{s}"]) <= 3
            assert r[f"label_{s}"] in LABELS
            assert 0 <= float(r[f"area_{s}"]) <= 1
    for img in images:
        for s in signs:
            png = Image.open(maps / f"{img.stem}_{s}.png")
            assert png.size == Image.open(img).size and png.mode == "L"


def test_predict_scores_as_the_dashboard_by_default(workflow: dict[str, Path]) -> None:
    """`predict` averages the four quarter turns unless told --no-tta, so the command line and
    the dashboard (TTA by default) give a photo the same scores."""
    image = str(sorted((workflow["data"] / "images").glob("*.png"))[0])
    got = {}
    for flags in ([], ["--tta"], ["--no-tta"]):
        out = workflow["root"] / f"default{'-'.join(flags)}.json"
        assert main(["predict", str(workflow["model"]), image, "--out", str(out), *flags]) == 0
        got[" ".join(flags)] = json.loads(out.read_text())["images"][0]
    default, tta, plain = got.values()
    assert default == tta and "low_erythema" in default and "low_erythema" not in plain
    from model.inference import load_model

    predictor = load_model(workflow["model"])
    assert default["score_erythema"] == pytest.approx(
        predictor.predict(image, tta=True).scores["erythema"], abs=1e-3)
    assert plain["score_erythema"] == pytest.approx(
        predictor.predict(image, tta=False).scores["erythema"], abs=1e-3)


def test_predict_json_and_folders(workflow: dict[str, Path]) -> None:
    out = workflow["root"] / "all.json"
    assert main(["predict", str(workflow["model"]), str(workflow["data"] / "images"), "--tta", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["images"]) == 16
    for row in result["images"]:
        for s in ("erythema", "lichenification"):
            assert row[f"low_{s}"] <= row[f"score_{s}"] <= row[f"high_{s}"]


def test_predict_prints_a_table_without_out(capsys, workflow: dict[str, Path]) -> None:
    image = sorted((workflow["data"] / "images").glob("*.png"))[0]
    assert main(["predict", str(workflow["model"]), str(image)]) == 0
    out = capsys.readouterr().out
    assert image.name in out and "erythema" in out
