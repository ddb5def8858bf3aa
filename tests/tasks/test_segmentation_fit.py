"""Real, short `Trainer.fit` runs of the segmentation task through the command line."""

import csv

import pytest
import pytorch_lightning as pl
import torch
import yaml

from brainsegfounder.data.datamodule import SegmentationDataModule
from brainsegfounder.data.regions import get_scheme
from brainsegfounder.fit import main as fit_main
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule
from tests.conftest import DEMO


def _fit(root, run_dir, *extra):
    return fit_main(["--config", str(DEMO), f"--data.init_args.root={root}",
                     f"--trainer.default_root_dir={run_dir}",
                     f"--trainer.logger.init_args.save_dir={run_dir}", *extra])


def test_short_fit_writes_checkpoints_split_config_and_metrics(brats2021_root, tmp_path, capsys):
    cli = _fit(brats2021_root, tmp_path, "--trainer.max_steps=2", "--trainer.val_check_interval=2",
               "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1",
               "--data.init_args.batch_size=1")
    log_dir = tmp_path / "finetune" / "version_0"
    assert (log_dir / "config.yaml").exists() and (log_dir / "split.json").exists()
    ckpts = {p.name for p in log_dir.rglob("*.ckpt")}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    rows = list(csv.DictReader(open(log_dir / "metrics.csv")))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"val/dice_tc", "val/dice_wt", "val/dice_et", "val/dice_mean", "val/dice_mean_largest",
            "train/loss"} <= logged
    # Each checkpoint carries the post-processing choice of the validation it was saved after
    # (predict --postprocess auto): here the one validation at step 2.
    from brainsegfounder.checkpoints import POSTPROCESS_KEY

    validated = next(row for row in rows if row.get("val/dice_mean"))
    for path in log_dir.rglob("*.ckpt"):
        choice = torch.load(path, weights_only=True)[POSTPROCESS_KEY]
        plain, largest = float(validated["val/dice_mean"]), float(validated["val/dice_mean_largest"])
        assert choice == {"rule": "largest" if largest > plain else "none", "val_dice_mean": pytest.approx(plain),
                          "val_dice_mean_largest": pytest.approx(largest)}
    said = " ".join(capsys.readouterr().err.split())
    assert f"post-processing: its validation chose {choice['rule']} (mean Dice {largest:.4f} keeping" in said
    # demo.yaml holds out a test fold: the best checkpoint is scored on it once (issue 17).
    assert set(cli.best_metrics) >= {"test/dice_wt", "test/dice_mean", "val/dice_mean"}
    # The data module drove the model (link_arguments): demo.yaml gives no channels, regions or window.
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())["model"]["init_args"]
    assert saved.get("in_channels") is None and saved.get("modalities") is None
    assert cli.model.hparams.in_channels == 4 and cli.model.modalities == ["flair", "t1ce", "t1", "t2"]
    assert cli.model.roi_size == (64, 64, 64) and cli.model.scheme.name == "brats2021"
    assert all(0.0 <= v <= 1.0 for k, v in cli.best_metrics.items() if "/dice" in k)


def test_a_model_channel_count_that_contradicts_the_data_is_refused(brats2021_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _fit(brats2021_root, tmp_path, "--trainer.max_steps=1", "--model.init_args.in_channels=2")
    assert "model.in_channels is 2 but the data gives 4" in " ".join(capsys.readouterr().err.split())


def test_training_step_targets_are_brats_regions():
    model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), regions="brats2021",
                               modalities=["t1"], roi_size=64)
    label = torch.zeros(1, 1, 64, 64, 64)
    label[0, 0, 10:20, 10:20, 10:20] = 2
    label[0, 0, 12:15, 12:15, 12:15] = 4
    x, y = model._inputs_targets({"t1": torch.randn(1, 1, 64, 64, 64), "label": label})
    assert y.shape == (1, 3, 64, 64, 64)
    assert y[0, 1].sum() == 1000 and y[0, 2].sum() == 27 and y[0, 0].sum() == 27
    assert torch.equal(get_scheme("brats2021").to_label(y), label.to(torch.uint8))


@pytest.mark.slow
def test_fit_learns_tumour_regions_above_a_floor(tmp_path):
    """The demo's fine-tuning (100 steps) on its data: whole-tumour Dice >= 0.6 and well above chance.

    Why these floors: an untrained network thresholded at 0.5 marks a large, arbitrary part of the
    volume, so its WT Dice is near 0 (computed here, not assumed). This exact run (demo.yaml, the
    same 15 generated brains, seed 0) measured held-out TC/WT/ET 0.85/0.83/0.95 at its best
    checkpoint (step 50) and WT 0.81 at step 100 (`python -m brainsegfounder.demo --stages finetune`,
    2026-11-28, after the Dice + BCE loss was made binary per channel; with MONAI's softmax
    cross-entropy term it had reached WT 0.38). 0.6 leaves room for CPU nondeterminism while still
    failing a run that learns as slowly as that one did.
    """
    from brainsegfounder.data.synthetic import generate

    root = tmp_path / "data"
    generate("brats2021", root, subjects=15, seed=0)
    pl.seed_everything(0)
    # default_root_dir: without a logger the data module saves split.json there (not in the checkout).
    untrained = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                           use_distributed_sampler=False, default_root_dir=tmp_path / "untrained").validate(
        SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), roi_size=64, sw_overlap=0.25),
        SegmentationDataModule(root=str(root), patch_size=64, num_workers=0), verbose=False)[0]
    cli = _fit(root, tmp_path / "run")
    wt = cli.best_metrics["test/dice_wt"]  # the held-out test fold (demo.yaml's test_fold)
    assert wt >= 0.6
    assert wt > untrained["val/dice_wt"] + 0.1


def test_the_best_checkpoints_second_validation_is_not_logged_as_a_new_point(brats2021_root, tmp_path):
    """Without a test fold the best checkpoint is validated again for its table; that must not add a
    val/ row at the last step (it drew a point the last model never made at the end of every curve)."""
    cli = _fit(brats2021_root, tmp_path, "--trainer.max_steps=1", "--trainer.val_check_interval=1",
               "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1",
               "--data.init_args.batch_size=1", "--data.init_args.test_fold=null")
    rows = list(csv.DictReader(open(tmp_path / "finetune" / "version_0" / "metrics.csv")))
    val_steps = [int(r["step"]) for r in rows if r.get("val/dice_mean")]
    assert val_steps == [0]  # one validation, one point (the old code added step 1)
    assert "val/dice_mean" in cli.best_metrics and "test/dice_mean" not in cli.best_metrics
    assert cli.trainer.loggers  # the loggers are back after the table's validation
