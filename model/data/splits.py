"""Patient-grouped splits and k-fold cross-validation: one patient is never on two sides."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from model.data.dataset import Record
from model.errors import DermsevError


def _groups(records: list[Record]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[r.patient_id].append(i)
    return groups


def _check_manual_splits(records: list[Record]) -> None:
    sides: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.split:
            sides[r.patient_id].add(r.split)
    for pid, s in sides.items():
        if len(s) > 1:
            raise DermsevError(
                f"manifest.csv: patient {pid!r} appears in splits {sorted(s)}; "
                "one patient must stay on one side"
            )


def assign_splits(
    records: list[Record], seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15
) -> list[Record]:
    """Fill in `split` where the manifest left it blank, grouped by patient, seeded.

    Patients already (partly) assigned keep that side for all their images.
    """
    _check_manual_splits(records)
    groups = _groups(records)
    fixed = {r.patient_id: r.split for r in records if r.split}
    free = sorted(pid for pid in groups if pid not in fixed)
    rng = np.random.default_rng(seed)
    rng.shuffle(free)
    n_free_images = sum(len(groups[p]) for p in free)
    targets = {"test": test_frac * n_free_images, "val": val_frac * n_free_images}
    counts = {"test": 0, "val": 0}
    for pid in free:
        side = "train"
        for name in ("test", "val"):
            if counts[name] < targets[name] and len(free) > 2:
                side = name
                counts[name] += len(groups[pid])
                break
        fixed[pid] = side
    for r in records:
        r.split = fixed[r.patient_id]
    return records


def group_kfold(records: list[Record], k: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """K folds of (train indices, held-out indices) with patients never split across sides.

    Patients are shuffled, then dealt largest-first to the fold with the fewest images, so
    folds stay balanced in image count.
    """
    groups = _groups(records)
    if k < 2:
        raise DermsevError(f"--folds must be at least 2, got {k}")
    if k > len(groups):
        raise DermsevError(f"--folds {k} is more than the {len(groups)} patients in the data")
    rng = np.random.default_rng(seed)
    pids = sorted(groups)
    rng.shuffle(pids)
    pids.sort(key=lambda p: -len(groups[p]))  # stable: shuffled order breaks ties
    fold_of: dict[str, int] = {}
    sizes = [0] * k
    for pid in pids:
        f = int(np.argmin(sizes))
        fold_of[pid] = f
        sizes[f] += len(groups[pid])
    folds = []
    for f in range(k):
        held = [i for i, r in enumerate(records) if fold_of[r.patient_id] == f]
        train = [i for i, r in enumerate(records) if fold_of[r.patient_id] != f]
        folds.append((train, held))
    return folds


def trained_split_settings(config: dict, seed: int | None = None) -> dict:
    """The split settings a model was trained with (its config.json), so that "test" and
    "val" mean the images training held out; `seed` overrides the recorded seed."""
    settings = (config or {}).get("training", {}).get("settings", {})
    out = {"seed": int(settings.get("seed", 0)) if seed is None else int(seed)}
    for k in ("val_frac", "test_frac"):
        if k in settings:
            out[k] = float(settings[k])
    return out


def split_as_trained(records: list[Record], config: dict, seed: int | None = None) -> list[Record]:
    """`assign_splits` with the settings of the model whose config.json is `config`."""
    return assign_splits(records, **trained_split_settings(config, seed))
