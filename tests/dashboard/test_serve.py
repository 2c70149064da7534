"""The launcher: the model is loaded and the ready file written before the server starts."""

from __future__ import annotations

import pytest

from dashboard import serve


class _Model:
    backend = "torch-fp32"
    info = {"name": "fake-demo"}


@pytest.fixture
def fake_load(monkeypatch):
    import model.inference

    calls = []
    monkeypatch.setattr(model.inference, "load_model", lambda d=None: calls.append(d) or _Model())
    monkeypatch.setattr(serve, "_LOADED", {})
    return calls


def test_preload_loads_once_and_the_page_finds_it(fake_load):
    assert serve.preloaded("") is None  # nothing loaded: the page loads it itself
    first = serve.preload("")
    assert serve.preload("") is first and serve.preloaded("") is first and fake_load == [None]
    assert serve.preloaded("/other/model") is None


def test_main_loads_then_marks_ready_then_starts_streamlit(fake_load, monkeypatch, tmp_path, capsys):
    from streamlit.web import cli

    marker = tmp_path / "ready"
    monkeypatch.setenv(serve.READY_ENV, str(marker))
    monkeypatch.delenv("DERMSEV_MODEL", raising=False)
    seen = {}

    def fake_streamlit(args, prog_name):
        seen["args"] = args
        seen["ready_while_serving"] = marker.read_text().strip()
        seen["model_loaded_first"] = serve.preloaded("") is not None

    monkeypatch.setattr(cli, "main", fake_streamlit)
    serve.main(["--server.port", "8600"])
    assert seen == {"args": ["run", str(serve.APP), "--server.port", "8600"],
                    "ready_while_serving": "torch-fp32", "model_loaded_first": True}  # fmt: skip
    assert "dermsev: model ready (fake-demo, backend torch-fp32" in capsys.readouterr().out
    assert not marker.exists()  # the server stopped: no longer ready
