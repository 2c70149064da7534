"""Installed models: the page offers only what the administrator put on the server."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from dashboard import models


def _model(folder, weights=b"weights"):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": folder.name}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_installed_models_from_folder_and_list(tmp_path, monkeypatch):
    monkeypatch.delenv("DERMSEV_MODEL", raising=False)
    monkeypatch.delenv(models.MODELS_ENV, raising=False)
    assert models.installed_models() == {"": "bundled demo model"}
    shelf = tmp_path / "models"
    a, b = _model(shelf / "eczema-v2"), _model(shelf / "atopic-v1")
    (shelf / "notes").mkdir()  # no config.json: not a model
    single = _model(tmp_path / "elsewhere" / "trial-3")
    monkeypatch.setenv(models.MODELS_ENV, f"{shelf}{os.pathsep}{single}")
    monkeypatch.setenv("DERMSEV_MODEL", str(a))
    found = models.installed_models()
    assert found == {"": "bundled demo model", str(a): "eczema-v2 (DERMSEV_MODEL)",
                     str(b): "atopic-v1", str(single): "trial-3"}  # fmt: skip
    assert models.default_choice(found) == str(a)
    assert models.check_installed(str(b)) == str(b)


def test_a_path_not_installed_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(models.MODELS_ENV, str(tmp_path / "models"))
    rogue = _model(tmp_path / "rogue")
    with pytest.raises(ValueError, match="is not an installed model"):
        models.check_installed(str(rogue))
    with pytest.raises(ValueError, match="is not an installed model"):
        models.check_installed(str(tmp_path / "models" / ".." / "rogue"))


def test_weights_hash_follows_the_file(tmp_path):
    m = _model(tmp_path / "m", b"first")
    assert models.weights_sha256(m) == hashlib.sha256(b"first").hexdigest()
    (m / "model.safetensors").write_bytes(b"second version")
    assert models.weights_sha256(m) == hashlib.sha256(b"second version").hexdigest()
    assert models.weights_sha256(tmp_path / "none") is None and models.weights_sha256("") is None
    record = models.model_record({"name": "m", "version": "1", "model_dir": str(m)})
    assert record["weights_sha256"] == hashlib.sha256(b"second version").hexdigest()
    assert record["name"] == "m"
