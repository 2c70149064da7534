"""Patient-grouped splits and k-fold cross-validation: no patient ever on two sides."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from model.data.dataset import Record
from model.data.splits import assign_splits, group_kfold
from model.errors import DermsevError


def make_records(images_per_patient: list[int], splits: dict[str, str] | None = None) -> list[Record]:
    """Patients p0, p1, ... with the given number of images each; `splits` fixes some patients."""
    splits = splits or {}
    records = []
    for p, n in enumerate(images_per_patient):
        for k in range(n):
            pid = f"p{p}"
            records.append(Record(id=f"{pid}-{k}", image=Path(f"{pid}-{k}.png"), patient_id=pid,
                                  row=len(records) + 2, split=splits.get(pid)))
    return records


def sides_of_patients(records: list[Record]) -> dict[str, set[str]]:
    sides = defaultdict(set)
    for r in records:
        sides[r.patient_id].add(r.split)
    return sides


PATIENTS = [1, 2, 3, 1, 4, 2, 2, 1, 3, 1, 2, 5, 1, 1, 2, 3, 1, 2, 2, 1, 1, 3, 2, 1, 1, 2, 4, 1, 1, 2]


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_random_split_is_grouped_by_patient(seed: int) -> None:
    records = assign_splits(make_records(PATIENTS), seed=seed)
    assert all(len(s) == 1 for s in sides_of_patients(records).values())
    counts = Counter(r.split for r in records)
    assert set(counts) == {"train", "val", "test"}
    n = len(records)
    assert counts["train"] > n / 2
    for side in ("val", "test"):  # about 15% each, give or take one patient
        assert 0.15 * n - max(PATIENTS) <= counts[side] <= 0.15 * n + max(PATIENTS)


def test_random_split_is_deterministic_per_seed() -> None:
    def split(seed: int) -> list[str]:
        return [r.split for r in assign_splits(make_records(PATIENTS), seed=seed)]

    assert split(3) == split(3)
    assert len({tuple(split(s)) for s in range(5)}) > 1  # the seed matters


def test_split_column_is_respected() -> None:
    fixed = {"p0": "test", "p1": "val", "p2": "train", "p3": "test"}
    records = make_records(PATIENTS, splits=fixed)
    assign_splits(records, seed=0)
    for r in records:
        if r.patient_id in fixed:
            assert r.split == fixed[r.patient_id]
    assert all(len(s) == 1 for s in sides_of_patients(records).values())


def test_partly_assigned_patient_follows_its_given_side() -> None:
    records = make_records([3, 2, 2, 2, 2, 2])
    records[1].split = "val"  # one of p0's three images is given; the other two are blank
    assign_splits(records, seed=0)
    assert {r.split for r in records if r.patient_id == "p0"} == {"val"}


def test_patient_on_two_sides_in_the_manifest_raises() -> None:
    records = make_records([2, 2, 2])
    records[0].split, records[1].split = "train", "test"
    with pytest.raises(DermsevError, match="p0") as err:
        assign_splits(records)
    assert "test" in str(err.value) and "train" in str(err.value)


@pytest.mark.parametrize("patients", [[1, 1], [3], [2, 1]])
def test_tiny_data_keeps_everything_for_training(patients: list[int]) -> None:
    records = assign_splits(make_records(patients))
    assert {r.split for r in records} == {"train"}


@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 4])
def test_group_kfold(k: int, seed: int) -> None:
    records = make_records(PATIENTS)
    folds = group_kfold(records, k, seed=seed)
    assert len(folds) == k
    held_out_in = defaultdict(list)
    for f, (train, held) in enumerate(folds):
        assert sorted(train + held) == list(range(len(records)))
        train_p = {records[i].patient_id for i in train}
        held_p = {records[i].patient_id for i in held}
        assert not train_p & held_p  # never on both sides
        for p in held_p:
            held_out_in[p].append(f)
    assert sorted(held_out_in) == sorted({r.patient_id for r in records})
    assert all(len(f) == 1 for f in held_out_in.values())  # each patient held out exactly once
    sizes = [len(h) for _, h in folds]
    assert max(sizes) - min(sizes) <= max(PATIENTS)  # balanced up to one patient's images


def test_group_kfold_is_deterministic_per_seed() -> None:
    records = make_records(PATIENTS)
    assert group_kfold(records, 3, seed=1) == group_kfold(records, 3, seed=1)
    assert len({str(group_kfold(records, 3, seed=s)) for s in range(6)}) > 1


@pytest.mark.parametrize("k, expected", [(1, "at least 2"), (0, "at least 2"), (4, "3 patients")])
def test_group_kfold_ill_args(k: int, expected: str) -> None:
    with pytest.raises(DermsevError, match=expected):
        group_kfold(make_records([2, 2, 2]), k)
