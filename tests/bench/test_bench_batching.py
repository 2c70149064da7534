"""bench_batching's pieces that need no model: the compared modes, its table, its arguments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_batching  # noqa: E402


def test_modes_compare_the_old_path_one_per_forward_and_each_batch_size():
    assert bench_batching.modes([2, 4]) == {"before": None, "one per forward": 1, "batched by 2": 2, "batched by 4": 4}
    # 1 is "one per forward" already; sizes keep the order asked
    assert list(bench_batching.modes([8, 1, 3])) == ["before", "one per forward", "batched by 8", "batched by 3"]


def test_table_has_a_row_per_compared_mode_with_ratios_to_one_per_forward():
    med = {"before": 1.0, "one per forward": 0.8, "batched by 8": 0.4}
    r = {"median_s": med, "photos": 8, "forwards": {m: 8.0 for m in med}, "max_diff": {m: 0.0 for m in med}}
    rows = bench_batching.table(r).splitlines()
    assert len(rows) == 2 + len(med)
    eight = next(row for row in rows if row.startswith("| batched by 8 |"))
    assert "| 0.40 | 20.0 |" in eight and "| 0.50 | 0.40 |" in eight  # wall, photos/s; / one per forward, / before


@pytest.mark.parametrize("batches, message", [
    ("2,x", "--batches must be whole numbers separated by commas, got '2,x'"),
    ("0,4", "--batches must be at least 1, got '0,4'"),
])  # fmt: skip
def test_bad_batches_are_refused_with_one_line(batches, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench_batching.main(["--batches", batches])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(message)
