"""The low-label script: real short fits per fraction (scratch only), a table and a plot."""

import csv
import json

import pytest

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.lowlabel import main as lowlabel_main
from tests.conftest import REPO

DEMO_ATLAS = REPO / "experiments" / "demo_atlas.yaml"
TINY = ["--trainer.max_steps=1", "--trainer.val_check_interval=1", "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false", "--data.init_args.batch_size=1",
        "--data.init_args.samples_per_volume=1", "--data.init_args.queue_length=1"]


def test_subsets_of_the_training_fold_are_seeded_and_nested(brats2021_root):
    def train_ids(fraction, seed):
        dm = SegmentationDataModule(root=str(brats2021_root), layout="brats2021", n_folds=5, split_seed=seed,
                                    train_fraction=fraction, patch_size=64, validate="off")
        dm.setup("fit")
        return [c.subject_id for c in dm.train_cases], [c.subject_id for c in dm.val_cases]

    (small, val), (large, val_large) = train_ids(0.25, 3), train_ids(0.5, 3)
    assert len(small) == 2 and len(large) == 4 and set(small) < set(large) and val == val_large
    assert train_ids(0.25, 3) == (small, val)  # deterministic per seed
    assert any(train_ids(0.25, s)[0] != small for s in (4, 5, 6))  # and the seed matters


def test_scratch_sweep_writes_table_plot_and_nested_run_folders(atlas_root, tmp_path):
    out = tmp_path / "lowlabel"
    rows = lowlabel_main(["--config", str(DEMO_ATLAS), "--fractions", "1.0", "0.5", "--out", str(out),
                          f"--data.init_args.root={atlas_root}", *TINY])
    assert [(r["setting"], r["fraction"], r["train_subjects"]) for r in rows] == \
           [("scratch", 0.5, 2), ("scratch", 1.0, 4)]
    assert all(0 <= r["val/lesion_f1"] <= 1 and 0 <= r["val/dice_mean"] <= 1 for r in rows)
    table = list(csv.DictReader(open(out / "lowlabel.csv")))
    assert [t["fraction"] for t in table] == ["0.5", "1.0"] and "val/lesion_f1" in table[0]
    assert (out / "lowlabel.md").read_text().startswith("| setting | fraction | train_subjects |")
    assert (out / "lowlabel.png").read_bytes()[:4] == b"\x89PNG"
    splits = [json.loads((out / f"scratch_{f}" / "version_0" / "split.json").read_text()) for f in ("0.5", "1")]
    assert set(splits[0]["train"]) < set(splits[1]["train"]) and splits[0]["val"] == splits[1]["val"]
    with pytest.raises(SystemExit):  # results are never overwritten
        lowlabel_main(["--config", str(DEMO_ATLAS), "--fractions", "0.5", "--out", str(out)])


def test_mistakes_stop_before_any_training(tmp_path, capsys):
    out = str(tmp_path / "ll")
    for args, message in [
        (["--settings", "pretrained"], "needs --init_from"),
        (["--init_from", str(tmp_path / "missing.pt")], "missing.pt does not exist"),
        (["--fractions", "0", "0.5"], "in (0, 1]"),
    ]:
        with pytest.raises(SystemExit):
            lowlabel_main(["--config", str(DEMO_ATLAS), "--out", out, *args])
        assert message in " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert not (tmp_path / "ll").exists()
