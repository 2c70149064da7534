"""Runs driven by the clock (--max-minutes without --epochs) and when early stopping may stop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import model.training.fit as fit_module
from model.training.fit import clock_factor
from model.training.train import TrainConfig, train

TINY = {"image_size": 64, "batch_size": 2, "precision": "fp32"}


def test_clock_schedule_warms_up_then_anneals_to_zero_at_the_deadline() -> None:
    assert clock_factor(0.0, 0.05) == 0.0
    assert clock_factor(0.025, 0.05) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.025)))
    assert clock_factor(0.5, 0.05) == pytest.approx(0.5)
    assert clock_factor(1.0, 0.05) == pytest.approx(0.0, abs=1e-12)
    assert clock_factor(1.7, 0.05) == pytest.approx(0.0, abs=1e-12)  # past the deadline: stays at 0
    assert clock_factor(0.0, 0.0) == 1.0  # no warm-up


def test_epochs_default_to_none_and_are_checked() -> None:
    from model.errors import DermsevError

    assert TrainConfig().epochs is None
    with pytest.raises(DermsevError, match="--epochs must be at least 1"):
        TrainConfig(epochs=0)
    with pytest.raises(DermsevError, match="min_progress must be between 0 and 1"):
        TrainConfig(min_progress=1.5)


def test_max_minutes_without_epochs_trains_until_the_time_is_up(tmp_path: Path, synth_dataset: Path) -> None:
    budget = 0.1  # 6 s: several epochs of 16 tiny images
    cfg = TrainConfig(max_minutes=budget, patience=10_000, **TINY)  # no early stop: the clock ends it
    summary = train(synth_dataset, tmp_path / "m", cfg, progress=False)
    assert summary["epochs_run"] >= 3
    assert summary["minutes"] >= 0.95 * budget  # it used the time it was given


def _never_improving(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Validation that never gets better after the first epoch; returns the epochs validated."""
    calls: list[int] = []

    def flat(*args, **kwargs):
        calls.append(1)
        m = {"pixel_mae": 1.0, "image_mae": 1.0, "qwk": 0.0}
        return {"per_sign": {}, "mean": m}

    monkeypatch.setattr(fit_module, "evaluate_indices", flat)
    return calls


@pytest.mark.parametrize("min_progress, expected_epochs", [(0.0, 2), (0.5, 4), (1.0, 8)])
def test_early_stopping_waits_for_min_progress(tmp_path: Path, synth_dataset: Path, monkeypatch: pytest.MonkeyPatch,
                                               min_progress: float, expected_epochs: int) -> None:
    calls = _never_improving(monkeypatch)
    cfg = TrainConfig(epochs=8, patience=1, min_progress=min_progress, **TINY)
    summary = train(synth_dataset, tmp_path / "m", cfg, progress=False)
    assert summary["epochs_run"] == expected_epochs == len(calls)
    assert summary["best_epoch"] == 1


def test_a_clock_run_is_not_stopped_early(tmp_path: Path, synth_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-minutes without --epochs: validation that never improves does not end the run
    before the deadline (patience 1 would end an epoch-counted run after its second epoch)."""
    calls = _never_improving(monkeypatch)
    budget = 0.1
    cfg = TrainConfig(max_minutes=budget, patience=1, min_progress=0.0, **TINY)
    summary = train(synth_dataset, tmp_path / "m", cfg, progress=False)
    assert summary["epochs_run"] == len(calls) >= 3
    assert summary["minutes"] >= 0.95 * budget
    assert summary["best_epoch"] == 1


@pytest.mark.parametrize("kind, expected", [
    ("cosine", [0.5, 0.9938, 0.5, 0.0955, 0.0245, 0.0]),
    ("constant", [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("wsd", [0.5, 1.0, 1.0, 1.0, 0.5, 0.0]),
])
def test_learning_rate_schedules(kind: str, expected: list[float]) -> None:
    """Warm-up (the first 0.5 share of it at clock 0.025 of 0.05), then the schedule's shape, ending at the deadline."""
    got = [clock_factor(c, 0.05, kind) for c in (0.025, 0.05, 0.5, 0.8, 0.9, 1.0)]
    assert got[0] == pytest.approx(0.5 * fit_module.shape_factor(0.025, kind))
    assert got[1:] == pytest.approx(expected[1:], abs=1e-3)


def test_unknown_schedule_is_refused() -> None:
    from model.errors import DermsevError

    with pytest.raises(DermsevError, match="--lr-schedule must be one of"):
        TrainConfig(lr_schedule="step")


def test_log_has_one_line_per_epoch_when_not_a_terminal(tmp_path: Path, synth_dataset: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    train(synth_dataset, tmp_path / "m", TrainConfig(epochs=2, **TINY), progress=True)
    captured = capsys.readouterr()
    err = captured.out + captured.err
    epoch_lines = [ln for ln in err.splitlines() if ln.startswith("train epoch")]
    assert len(epoch_lines) == 2 and "val pixel_mae" in epoch_lines[0]
    assert "\r" not in err  # no per-step progress bar redrawn in a log file
