"""`dermsev predict --white-balance / --neutral-box`: the choice reaches the predictor; bad values
end with a one-line error."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.cli import main
from model.data.colour import planckian_gains
from tests.model.data.test_colour import relight, skin_photo


@pytest.fixture
def warm(tmp_path: Path) -> Path:
    """A skin photo under tungsten light with a grey card in the top-left corner."""
    img = relight(skin_photo(h=96, w=128), planckian_gains(3000))
    img[4:28, 4:36] = relight(np.full((24, 32, 3), 150, np.uint8), planckian_gains(3000))
    Image.fromarray(img).save(tmp_path / "warm.png")
    return tmp_path / "warm.png"


@pytest.fixture
def model_with_reference(tiny_model_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["input"]["white_reference"] = {"rgb": [1.86, 0.8, 0.47], "statistic": "linear-p1", "n": 1}
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def scores(path: Path) -> dict[str, float]:
    (row,) = csv.DictReader(path.open())
    return {k: float(v) for k, v in row.items() if k.startswith("score_")}


def test_each_choice_scores_and_they_differ(warm: Path, model_with_reference: Path, tmp_path: Path) -> None:
    runs = {}
    for name, flags in {"default": [], "none": ["--white-balance", "none"],
                        "grey-world": ["--white-balance", "grey-world"],
                        "patch": ["--neutral-box", "4,4,36,28"]}.items():
        out = tmp_path / f"{name}.csv"
        assert main(["predict", str(model_with_reference), str(warm), "--out", str(out), *flags]) == 0
        runs[name] = scores(out)
    assert runs["default"] == runs["grey-world"]  # a model with a white reference balances by default
    assert runs["none"] != runs["grey-world"] and runs["none"] != runs["patch"]


@pytest.mark.parametrize(("flags", "match"), [
    (["--white-balance", "auto"], "--white-balance 'auto': must be none, grey-world or patch"),
    (["--white-balance", "patch"], "--white-balance patch needs --neutral-box"),
    (["--neutral-box", "1,2,3"], "--neutral-box '1,2,3': give x0,y0,x1,y1"),
    (["--neutral-box", "10,10,5,20"], "x0 < x1 and y0 < y1"),
    (["--neutral-box", "a,b,c,d"], "give x0,y0,x1,y1"),
    (["--neutral-box", "0,0,8,8", "--white-balance", "none"], "--neutral-box is for the neutral-patch balance"),
    (["--neutral-box", "500,500,600,600"], "holds no pixel"),
])
def test_bad_values_end_with_one_line(capsys, warm: Path, tiny_model_dir: Path, flags: list[str], match: str) -> None:
    assert main(["predict", str(tiny_model_dir), str(warm), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert match in err
