"""Healthy look-alikes in the synthetic generator: opt-in, byte-identical default, every sign
mask 0 on them, the skin mask 0 where they hide the skin (1 on moles), bad values refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.cli import main
from model.errors import DermsevError
from model.synth.confounders import KINDS, SHAPES, Confounder, paint, plan
from model.synth.generator import generate
from model.synth.render import Patient, draw_params, render
from tests.model.synth.test_generator import digest, rows_of

SIZE = 64


def read(ds: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(ds / rel))


def footprint(items: tuple[Confounder, ...], skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hidden, cover) of items over a skin mask: where they fall does not depend on the picture."""
    h, w = skin.shape
    grey = np.full((h, w, 3), 0.5, np.float32)
    _, hidden, cover = paint(
        items,
        grey,
        skin.astype(bool),
        h / 256,
        np.float32([0.8, 0.6, 0.5]),
        np.float32([0.1, 0.08, 0.06]),
        0.0,
    )
    return hidden, cover


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny dataset without and with confounders in every image."""
    root = tmp_path_factory.mktemp("conf")
    plain = generate(root / "plain", n=6, size=SIZE, seed=3, workers=1)
    mixed = generate(root / "mixed", n=6, size=SIZE, seed=3, workers=1, confounders=1.0)
    return plain, mixed


def test_default_is_byte_identical(pair: tuple[Path, Path], tmp_path: Path):
    zero = generate(tmp_path / "zero", n=6, size=SIZE, seed=3, workers=1, confounders=0)
    assert digest(zero) == digest(pair[0])


def test_confounders_change_images_and_clear_sign_masks(pair: tuple[Path, Path]):
    plain, mixed = pair
    a, b = digest(plain), digest(mixed)
    assert (plain / "manifest.csv").read_text().splitlines()[0] == (
        mixed / "manifest.csv"
    ).read_text().splitlines()[0]
    for i, (ra, rb) in enumerate(zip(rows_of(plain), rows_of(mixed), strict=True)):
        items = plan(3, i, 1.0)
        assert 1 <= len(items) <= 2
        assert a[ra["image"]] != b[rb["image"]]
        skin_a, skin_b = read(plain, ra["skin_mask"]), read(mixed, rb["skin_mask"])
        hidden, cover = footprint(items, skin_a)
        assert cover.any() and not (hidden & ~cover).any()
        assert np.array_equal(
            skin_b, np.where(hidden, 0, skin_a)
        )  # hidden skin is not skin; moles are
        for sign in ("erythema", "papulation", "excoriation", "lichenification"):
            ma, mb = read(plain, ra[f"mask_{sign}"]), read(mixed, rb[f"mask_{sign}"])
            assert not ((mb[cover] != 0) & (mb[cover] != 255)).any(), (i, sign)
            assert np.array_equal(ma[~cover], mb[~cover])  # the rest of the labels stay


def _plain_skin() -> tuple[Patient, np.random.Generator, object]:
    patient = Patient("p1", 40, "M", 3, (1.0, 1.0, 1.0), 0.1)
    rng = np.random.default_rng(7)
    params = draw_params(rng, patient)
    return patient, rng, type(params)((3, 3, 3, 3), None, 0, 0.0, params.line_angles)


@pytest.mark.parametrize("kind, variant", [(k, v) for k in KINDS for v in range(SHAPES[k][1])])
def test_each_kind_hides_or_keeps_skin_and_zeroes_signs(kind: str, variant: int):
    size = 96
    patient, rng, params = _plain_skin()
    state = rng.bit_generator.state
    lo, hi = SHAPES[kind][0]
    item = Confounder(kind, 0.5, 0.5, 0.3, (lo + hi) / 2, variant, 11)
    image0, masks0, skin0 = render(rng, patient, params, size)
    rng.bit_generator.state = state
    image1, masks1, skin1 = render(rng, patient, params, size, confounders=(item,))
    hidden, cover = footprint((item,), skin0)
    assert cover.any() and not np.array_equal(image0, image1)
    assert not masks1[:, cover].any()
    assert np.array_equal(masks0[:, ~cover], masks1[:, ~cover])
    if kind == "moles":  # skin, not to be scored
        assert not hidden.any() and skin1[cover].all()
    else:
        assert hidden.any() and not skin1[hidden].any()
        assert skin1[~hidden].all()
    if kind in ("mouth", "ruler"):  # large enough to cover lesions of this severe image
        assert masks0[:, cover].any()


def test_extra_channels_show_the_look_alikes():
    patient, rng, params = _plain_skin()
    item = Confounder("nostrils", 0.5, 0.5, 0.0, 30, 1, 5)
    image, _, skin = render(rng, patient, params, 96, channels=6, confounders=(item,))
    cp, uv = image[..., 3].astype(float), image[..., 4].astype(float)
    assert cp[skin == 0].mean() < 0.6 * cp[skin == 1].mean()
    assert uv[skin == 0].mean() < 0.6 * uv[skin == 1].mean()


def test_plan_share_and_own_stream():
    assert plan(0, 5, 0.0) == ()
    drawn = [plan(0, i, 0.3) for i in range(300)]
    assert 0.2 < np.mean([bool(d) for d in drawn]) < 0.4
    for i, d in enumerate(drawn):  # an image drawn at 0.3 shows what it shows at 1
        assert not d or d == plan(0, i, 1.0)
    kinds = {c.kind for i in range(300) for c in plan(0, i, 1.0)}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.3", True, None])
def test_bad_chance_refused(tmp_path: Path, value: object):
    with pytest.raises(DermsevError, match="confounders must be a chance between 0 and 1"):
        generate(tmp_path / "x", n=1, size=32, confounders=value)


@pytest.mark.parametrize("option", ["confounders", "relight"])
def test_cli_flag_reaches_generate(monkeypatch, tmp_path: Path, capsys, option: str):
    import model.synth.generator as gen

    seen: dict[str, object] = {}

    def fake(out, **kwargs):
        seen.update(kwargs)
        return Path(out)

    monkeypatch.setattr(gen, "generate", fake)
    assert main(["synth", str(tmp_path / "o"), "--n", "2", f"--{option}", "0.25"]) == 0
    assert seen[option] == 0.25
    assert main(["synth", str(tmp_path / "o"), "--n", "2"]) == 0
    assert seen[option] == 0.0
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "bad"), "--n", "2", f"--{option}", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{option} must be a chance between 0 and 1" in err
