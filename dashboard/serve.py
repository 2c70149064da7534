"""Serve the dashboard with the model loaded first: `python -m dashboard.serve [streamlit flags]`.

`streamlit run dashboard/app.py` loads the model on the first page view (9.5-11 s on a busy
2-core machine, issue 20). This launcher loads it (and picks its backend) before the server
starts, in the same process, keeps it in a process-wide holder that the page's
`get_predictor` takes it from, logs "dermsev: model ready ...", writes the ready file
($DERMSEV_READY_FILE, default <tmp>/dermsev.ready) that the Dockerfile's HEALTHCHECK checks,
and only then hands over to `streamlit run` (same flags, same .streamlit/config.toml).

The holder has no streamlit: the page imports `preloaded` from here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

APP = Path(__file__).with_name("app.py")
READY_ENV = "DERMSEV_READY_FILE"
_LOADED: dict[str, Any] = {}
_LOCK = threading.Lock()


def ready_file() -> Path:
    """Where readiness is written: $DERMSEV_READY_FILE, else <tmp>/dermsev.ready."""
    return Path(os.environ.get(READY_ENV) or Path(tempfile.gettempdir()) / "dermsev.ready")


def preload(model_dir: str = "") -> Any:
    """Load a model ("" = the bundled demo) into the process-wide holder, once; returns it."""
    with _LOCK:
        if model_dir not in _LOADED:
            from model.inference import load_model

            _LOADED[model_dir] = load_model(model_dir or None)
        return _LOADED[model_dir]


def preloaded(model_dir: str) -> Any | None:
    """The model loaded at start-up for this directory, or None (then the page loads it)."""
    return _LOADED.get(model_dir)


def warm_imports() -> None:
    """Import what the page imports (plotly, pandas, reportlab...) so the first run is quick."""
    import dashboard.charts  # noqa: F401
    import dashboard.figures  # noqa: F401
    import dashboard.report  # noqa: F401
    import dashboard.view_explain  # noqa: F401
    import dashboard.view_history  # noqa: F401
    import dashboard.view_mask  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    from dashboard.scoring import default_model_dir

    flags = list(sys.argv[1:] if argv is None else argv)
    marker = ready_file()
    marker.unlink(missing_ok=True)
    start = time.perf_counter()
    model_dir = default_model_dir()
    predictor = preload(model_dir)
    warm_imports()
    seconds = time.perf_counter() - start
    print(f"dermsev: model ready ({predictor.info.get('name', model_dir or 'demo')}, backend "
          f"{predictor.backend}, {seconds:.1f} s); starting the server", flush=True)  # fmt: skip
    marker.write_text(f"{predictor.backend}\n")
    from streamlit.web import cli

    try:
        cli.main(args=["run", str(APP), *flags], prog_name="streamlit")
    finally:
        marker.unlink(missing_ok=True)


if __name__ == "__main__":  # run through the importable module, whose holder the page reads
    from dashboard.serve import main as _main

    _main()
