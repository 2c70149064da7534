"""MODEL_DIR: an exact round trip, clear errors for tampered files, atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import model.nets.modeldir as modeldir
from model.errors import DermsevError
from model.nets.modeldir import FORMAT_VERSION, load_network, read_config, save_model_dir
from model.nets.unet import DermSevNet, NetConfig

TINY = {"decoder_channels": (16, 8, 8, 8, 8)}


def make_net(seed: int = 0, **kw) -> DermSevNet:
    torch.manual_seed(seed)
    net = DermSevNet(NetConfig(**{**TINY, **kw}))
    if net.tabular is not None:  # trained-looking FiLM, so age/sex weights take part
        with torch.no_grad():
            torch.nn.init.normal_(net.tabular.mlp[-1].weight, std=0.1)
    return net.eval()


def config_for(net: DermSevNet) -> dict:
    return {"name": "tiny", "signs": list(net.cfg.signs), "network": net.cfg.to_dict()}


def outputs(net: DermSevNet) -> torch.Tensor:
    torch.manual_seed(123)
    x = torch.rand(2, len(net.cfg.channels), 64, 64)
    with torch.no_grad():
        return net(x, torch.tensor([30.0, float("nan")]), torch.tensor([2, 0]))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    net = make_net()
    return save_model_dir(net, config_for(net), tmp_path / "model", card="# card\n")


@pytest.mark.parametrize(
    "kw",
    [{}, {"signs": ("a",), "channels": ("x", "y", "z", "w", "v"), "mixing": True, "film": "all"},
     {"film": "none", "encoder": "resnet18", "mean": (0.4, 0.5, 0.6), "std": (0.2, 0.2, 0.3)}],
)
def test_round_trip_gives_identical_outputs(tmp_path: Path, kw: dict) -> None:
    net = make_net(**kw)
    out = save_model_dir(net, config_for(net), tmp_path / "m")
    loaded, config = load_network(out)
    assert loaded.cfg == net.cfg
    assert not loaded.training
    assert torch.equal(outputs(loaded), outputs(net))
    assert config["format_version"] == FORMAT_VERSION and config["weights_dtype"] == "float32"
    assert config["name"] == "tiny"


def test_half_weights_halve_the_file_and_load_as_float32(tmp_path: Path) -> None:
    net = make_net()
    full = save_model_dir(net, config_for(net), tmp_path / "full")
    half = save_model_dir(net, config_for(net), tmp_path / "half", half=True)
    size = (half / "model.safetensors").stat().st_size
    assert size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded, config = load_network(half)
    assert config["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(outputs(loaded), outputs(net), atol=0.05, rtol=0)


def test_saving_over_a_model_replaces_it(tmp_path: Path) -> None:
    a, b = make_net(seed=0), make_net(seed=1)
    save_model_dir(a, config_for(a), tmp_path / "m", card="# a\n")
    save_model_dir(b, config_for(b), tmp_path / "m")
    loaded, _ = load_network(tmp_path / "m")
    assert torch.equal(outputs(loaded), outputs(b))
    assert not (tmp_path / "m" / "MODEL_CARD.md").exists()  # nothing of the old model left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp or old dirs


# --- tampered or mismatched files --------------------------------------------------------


def _no_dir(d: Path) -> None:
    shutil.rmtree(d)


def _no_config(d: Path) -> None:
    (d / "config.json").unlink()


def _config_not_json(d: Path) -> None:
    (d / "config.json").write_text('{"signs": ["a",')


def _config_binary(d: Path) -> None:
    (d / "config.json").write_bytes(b"\xff\xfe\x00garbage")


def _edit_config(**changes):
    def edit(d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        for key, value in changes.items():
            if key.startswith("network."):
                cfg["network"][key.split(".", 1)[1]] = value
            elif value is None:
                cfg.pop(key)
            else:
                cfg[key] = value
        (d / "config.json").write_text(json.dumps(cfg))

    edit.__name__ = "edit_" + "_".join(changes)
    return edit


def _no_weights(d: Path) -> None:
    (d / "model.safetensors").unlink()


def _truncated_weights(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _garbage_weights(d: Path) -> None:
    (d / "model.safetensors").write_bytes(b"\x00\x01 this is not safetensors" * 100)


def _empty_weights(d: Path) -> None:
    (d / "model.safetensors").write_bytes(b"")


def _pickled_weights(d: Path) -> None:
    torch.save(make_net().state_dict(), d / "model.safetensors")


def _weights_missing_a_tensor(d: Path) -> None:
    state = load_file(str(d / "model.safetensors"))
    state.pop(sorted(state)[0])
    save_file(state, str(d / "model.safetensors"))


def _nan_weights(d: Path) -> None:
    state = load_file(str(d / "model.safetensors"))
    key = next(k for k in state if k.endswith("weight"))
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(d / "model.safetensors"))


def _other_model_weights(d: Path) -> None:
    other = make_net(encoder="resnet18")
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(d / "model.safetensors"))


TAMPERED = [
    (_no_dir, "not found"),
    (_no_config, "config.json missing"),
    (_config_not_json, "not valid JSON"),
    (_config_binary, "not valid JSON"),
    (_edit_config(format_version=2), "format_version 2"),
    (_edit_config(format_version=None), "format_version"),
    (_edit_config(network=None), "network"),
    (_edit_config(**{"network.signs": ["a", "b", "c"]}), "shape"),  # 3 signs, weights for 4
    (_edit_config(**{"network.channels": ["gray"]}), "shape"),
    (_edit_config(**{"network.film": "all"}), "config.json"),
    (_edit_config(**{"network.film": "sideways"}), "invalid network settings"),
    (_edit_config(**{"network.depth_multiplier": 2}), "invalid network settings"),
    (_no_weights, "model.safetensors missing"),
    (_truncated_weights, "truncated"),
    (_garbage_weights, "truncated"),
    (_empty_weights, "truncated"),
    (_pickled_weights, "truncated"),
    (_weights_missing_a_tensor, "do not match"),
    (_nan_weights, "NaN"),
    (_other_model_weights, "do not match"),
]


@pytest.mark.parametrize("tamper, expected", TAMPERED, ids=[t[0].__name__.strip("_") for t in TAMPERED])
def test_tampered_model_dir_gives_a_clear_error(saved: Path, tamper, expected: str) -> None:
    tamper(saved)
    with pytest.raises(DermsevError) as err:
        load_network(saved)
    msg = str(err.value)
    assert expected in msg
    assert str(saved) in msg  # names the directory or the file in it
    assert "\n" not in msg


def test_read_config_alone(saved: Path) -> None:
    assert read_config(saved)["network"]["signs"] == list(NetConfig().signs)


# --- atomic writes ------------------------------------------------------------------------


@pytest.mark.parametrize("fail_in", ["save_file", "json", "fsync"])
def test_failed_save_leaves_the_previous_model_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_in: str) -> None:
    old, new = make_net(seed=0), make_net(seed=1)
    out = save_model_dir(old, config_for(old), tmp_path / "model", card="# old\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    if fail_in == "save_file":
        def half_written(state, path, metadata=None):
            Path(path).write_bytes(b"\x00" * 100)  # a partial file, then the failure
            boom()

        monkeypatch.setattr(modeldir, "save_file", half_written)
    elif fail_in == "json":
        monkeypatch.setattr(modeldir.json, "dumps", boom)
    else:
        monkeypatch.setattr(modeldir.os, "fsync", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model_dir(new, config_for(new), out, card="# new\n")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    loaded, _ = load_network(out)
    assert torch.equal(outputs(loaded), outputs(old))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the temp dir is gone


def test_failed_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(modeldir, "save_file", boom)
    net = make_net()
    with pytest.raises(RuntimeError, match="disk full"):
        save_model_dir(net, config_for(net), tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_weights_file_is_not_a_pickle(saved: Path) -> None:
    head = (saved / "model.safetensors").read_bytes()[:16]
    assert not head.startswith(b"\x80")  # pickle protocol marker
    assert not head.startswith(b"PK")  # torch.save zip
