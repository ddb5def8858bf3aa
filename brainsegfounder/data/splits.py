"""Seeded k-fold splits and low-label subsets, saved as JSON so that a run can be repeated.

Example:
    >>> folds = kfold_split([f"case{i}" for i in range(10)], n_folds=5, seed=0)
    >>> sorted(len(v) for v in folds.values())
    [2, 2, 2, 2, 2]
    >>> train, val = train_val_ids(folds, fold=0)
    >>> len(train), len(val), set(train).isdisjoint(val)
    (8, 2, True)
    >>> low = label_subset(train, fraction=0.25, seed=0)
    >>> set(low) <= set(label_subset(train, fraction=0.5, seed=0))  # nested
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from brainsegfounder.utils.errors import DataError

__all__ = ["kfold_split", "train_val_ids", "held_out_ids", "label_subset", "save_split", "load_split", "case_folds"]


def kfold_split(subject_ids: Sequence[str], n_folds: int = 5, seed: int = 0) -> dict[int, list[str]]:
    """Assign subjects to ``n_folds`` folds of near-equal size, shuffled with ``seed``.

    Subjects are sorted first, so the split depends only on the set of ids and the seed, not on
    the order files were listed in.
    """
    ids = sorted(subject_ids)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(ids) < n_folds:
        raise DataError(f"{len(ids)} subjects cannot be split into {n_folds} folds; lower data.n_folds.")
    order = np.random.default_rng(seed).permutation(len(ids))
    folds: dict[int, list[str]] = {k: [] for k in range(n_folds)}
    for position, index in enumerate(order):
        folds[position % n_folds].append(ids[index])
    return {k: sorted(v) for k, v in folds.items()}


def train_val_ids(folds: dict[int, list[str]], fold: int) -> tuple[list[str], list[str]]:
    """Training ids (all other folds) and validation ids (``fold``)."""
    if fold not in folds:
        raise DataError(f"fold {fold} does not exist; folds are {sorted(folds)}.")
    train = sorted(s for k, v in folds.items() if k != fold for s in v)
    return train, list(folds[fold])


def held_out_ids(folds: dict[int, list[str]], test_fold: int | None) -> list[str]:
    """The subjects of the test fold (``[]`` for ``None``): the caller removes them from training.

    >>> held_out_ids({0: ["a"], 1: ["b", "c"]}, 1), held_out_ids({0: ["a"]}, None)
    (['b', 'c'], [])
    """
    if test_fold is None:
        return []
    if test_fold not in folds:
        raise DataError(f"data.test_fold {test_fold} does not exist; folds are {sorted(folds)}.")
    return list(folds[test_fold])


def label_subset(train_ids: Sequence[str], fraction: float = 1.0, seed: int = 0,
                 count: int | None = None) -> list[str]:
    """A seeded subset of the training ids, for low-label fine-tuning.

    Subsets are nested: for one seed, the 10% subset lies inside the 25% one, and so on, because
    each takes a prefix of the same permutation. ``count`` (a number of subjects) overrides
    ``fraction``. At least one subject is always kept.
    """
    ids = sorted(train_ids)
    if count is None:
        if not 0 < fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {fraction}")
        count = math.ceil(fraction * len(ids))
    count = max(1, min(int(count), len(ids)))
    order = np.random.default_rng(seed).permutation(len(ids))
    return sorted(ids[i] for i in order[:count])


def save_split(path: str | Path, folds: dict[int, list[str]], **info) -> Path:
    """Write folds (and any extra info, e.g. the seed) to JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"folds": {str(k): v for k, v in folds.items()}, **info}, indent=2))
    return path


def load_split(path: str | Path) -> dict[int, list[str]]:
    """Read folds written by :func:`save_split`."""
    try:
        data = json.loads(Path(path).read_text())
        return {int(k): list(v) for k, v in data["folds"].items()}
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"split file {path} cannot be read ({err}); point data.split_file at a JSON written "
                        "by an earlier run, or leave it empty to make a new split.") from None


class _Case(Protocol):
    subject_id: str
    fold: int | None


def case_folds(cases: Sequence[_Case], n_folds: int = 5, seed: int = 0,
               split_file: str | Path | None = None) -> dict[int, list[str]]:
    """THE split of both data modules: a saved split file, else the cases' own folds, else a seeded k-fold.

    The cases' own folds come from a MONAI fold file or a manifest's ``fold`` column (all cases or
    none have one). Fine-tuning's validation fold and Stage 2's held-out fold are therefore the
    same subjects whenever both data modules are given the same files and settings.

    >>> from types import SimpleNamespace as Case
    >>> case_folds([Case(subject_id=s, fold=f) for s, f in (("a", 0), ("b", 1), ("c", 0))])
    {0: ['a', 'c'], 1: ['b']}
    """
    if split_file and Path(split_file).exists():
        return load_split(split_file)
    if cases and all(c.fold is not None for c in cases):
        folds: dict[int, list[str]] = {}
        for case in cases:
            folds.setdefault(int(case.fold), []).append(case.subject_id)
        return folds
    return kfold_split([c.subject_id for c in cases], n_folds, seed)
