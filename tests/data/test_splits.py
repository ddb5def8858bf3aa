import json

import pytest

from brainsegfounder.data.splits import kfold_split, label_subset, load_split, save_split, train_val_ids
from brainsegfounder.utils.errors import DataError

IDS = [f"BraTS2021_{i:05d}" for i in range(23)]


def test_kfold_is_seeded_balanced_and_order_free():
    folds = kfold_split(IDS, n_folds=5, seed=3)
    assert folds == kfold_split(list(reversed(IDS)), n_folds=5, seed=3)
    assert folds != kfold_split(IDS, n_folds=5, seed=4)
    sizes = sorted(len(v) for v in folds.values())
    assert sizes == [4, 4, 5, 5, 5]
    assert sorted(s for v in folds.values() for s in v) == sorted(IDS)


def test_train_val_are_disjoint_and_complete():
    folds = kfold_split(IDS, 5, 0)
    for k in range(5):
        train, val = train_val_ids(folds, k)
        assert not set(train) & set(val) and len(train) + len(val) == len(IDS)
    with pytest.raises(DataError, match="fold 7 does not exist"):
        train_val_ids(folds, 7)


def test_low_label_subsets_are_nested_and_deterministic():
    train, _ = train_val_ids(kfold_split(IDS, 5, 0), 0)
    subsets = [label_subset(train, f, seed=1) for f in (0.1, 0.25, 0.5, 1.0)]
    assert [len(s) for s in subsets] == [2, 5, 9, 18]  # ceil(f * 18)
    for small, large in zip(subsets, subsets[1:], strict=False):
        assert set(small) <= set(large)
    assert subsets[1] == label_subset(train, 0.25, seed=1)
    assert len(label_subset(train, count=3, seed=1)) == 3


def test_split_round_trips_through_json(tmp_path):
    folds = kfold_split(IDS, 5, 0)
    path = save_split(tmp_path / "split.json", folds, seed=0)
    assert load_split(path) == folds
    assert json.loads(path.read_text())["seed"] == 0
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        load_split(tmp_path / "bad.json")
