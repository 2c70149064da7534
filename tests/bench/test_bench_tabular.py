"""bench/bench_tabular.py's manifest variants: true, removed and shuffled age/sex."""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_tabular.py"
_spec = importlib.util.spec_from_file_location("bench_tabular", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

ROWS = [{"id": f"i{k}", "image": f"images/i{k}.png", "age": str(20 + k), "sex": "FM"[k % 2]} for k in range(12)]


def test_removed_blanks_age_and_sex_only() -> None:
    out = bench.variant_rows(ROWS, "removed")
    assert all(r["age"] == "" and r["sex"] == "" for r in out)
    assert [r["image"] for r in out] == [r["image"] for r in ROWS]


def test_shuffled_keeps_the_distribution_and_breaks_the_pairing() -> None:
    out = bench.variant_rows(ROWS, "shuffled", seed=3)
    assert Counter((r["age"], r["sex"]) for r in out) == Counter((r["age"], r["sex"]) for r in ROWS)
    assert sum(a["age"] != b["age"] for a, b in zip(out, ROWS, strict=True)) >= 8
    assert [r["id"] for r in out] == [r["id"] for r in ROWS]  # images stay where they are
    assert bench.variant_rows(ROWS, "shuffled", seed=3) == out  # seeded
    assert bench.variant_rows(ROWS, "true") == ROWS
    with pytest.raises(ValueError, match="variant must be one of"):
        bench.variant_rows(ROWS, "swapped")


def test_write_variant_shares_the_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "dataset.yaml").write_text("signs: [a]\n")
    with (src / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "image", "age", "sex"])
        w.writeheader()
        w.writerows(ROWS)
    dest = bench.write_variant(src, tmp_path / "removed", "removed")
    assert (dest / "images").resolve() == (src / "images").resolve() and (dest / "dataset.yaml").is_symlink()
    rows = list(csv.DictReader((dest / "manifest.csv").open()))
    assert len(rows) == 12 and all(r["age"] == "" for r in rows)
