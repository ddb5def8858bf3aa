"""Stage 1 -> Stage 2 -> fine-tuning through the command line, on real synthetic NIfTI files."""

import csv
import dataclasses

import pytest
import torch

from brainsegfounder.data.unlabelled import UnlabelledDataModule
from brainsegfounder.fit import main as fit_main
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule
from brainsegfounder.tasks.ssl import DiseaseAwarePretrainModule, SSLPretrainModule
from brainsegfounder.utils.errors import DataError, WeightsError
from tests.conftest import DEMO, REPO

STAGE1 = REPO / "experiments" / "demo_stage1.yaml"
STAGE2 = REPO / "experiments" / "demo_stage2.yaml"
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
         "--data.init_args.num_workers=0"]


@pytest.fixture(scope="module")
def ukb_root(synthetic_set):
    """Four healthy UK Biobank-style subjects at 3 mm (T1 + FLAIR)."""
    return synthetic_set("ukb", subjects=4, seed=1, spacing=3.0)


@pytest.fixture(scope="module")
def brats_root(synthetic_set):
    return synthetic_set("brats2021", subjects=6, seed=0, spacing=3.0)


def _where(run_dir):
    return [f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}"]


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_stage1_stage2_finetune_chain_carries_the_weights(ukb_root, brats_root, tmp_path):
    stage1 = fit_main(["--config", str(STAGE1), f"--data.init_args.root={ukb_root}", *_where(tmp_path), *QUICK,
                       "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.log_every_n_steps=1",
                       "--trainer.limit_val_batches=1"])  # the demo skips SSL validation; this test checks it
    ckpt1 = stage1.trainer.checkpoint_callback.last_model_path
    saved1 = _state(ckpt1)
    assert saved1["hyper_parameters"]["modalities"] == ["t1", "flair"]
    log1 = tmp_path / "stage1" / "version_0"
    logged = {k for row in csv.DictReader(open(log1 / "metrics.csv")) for k, v in row.items() if v}
    assert {"train/loss", "train/loss_rotation", "train/loss_contrastive", "train/loss_reconstruction",
            "val/loss", "val/rotation_accuracy", "val/contrastive_accuracy"} <= logged
    assert (log1 / "images" / "reconstruction_step2.png").stat().st_size > 1000

    stage2 = fit_main(["--config", str(STAGE2), f"--data.init_args.root={brats_root}", *_where(tmp_path), *QUICK,
                       f"--model.init_args.backbone.init_from={ckpt1}", "--trainer.max_steps=1",
                       "--trainer.limit_val_batches=0", "--data.init_args.val_count=1"])
    report = stage2.model.import_report
    assert [k for k, _ in report.adapted] == ["swinViT.patch_embed.proj.weight"]
    assert report.encoder_filled == report.encoder_total
    ckpt2 = stage2.trainer.checkpoint_callback.last_model_path
    saved2 = _state(ckpt2)
    assert saved2["hyper_parameters"]["modalities"] == ["flair", "t1ce", "t1", "t2"]
    assert not torch.equal(saved2["state_dict"]["net.swinViT.layers1.0.blocks.0.mlp.linear1.weight"],
                           saved1["state_dict"]["net.swinViT.layers1.0.blocks.0.mlp.linear1.weight"])

    # Fine-tuning from Stage 2 with a frozen encoder: after training it is still Stage 2's, bitwise.
    fit = fit_main(["--config", str(DEMO), f"--data.init_args.root={brats_root}", *_where(tmp_path), *QUICK,
                    f"--model.init_args.backbone.init_from={ckpt2}", "--model.init_args.backbone.freeze_encoder_epochs=1",
                    "--trainer.max_steps=1", "--trainer.limit_val_batches=0", "--data.init_args.batch_size=1"])
    net = fit.model.net
    encoder2 = {k[len("net.swinViT."):]: v for k, v in saved2["state_dict"].items() if k.startswith("net.swinViT.")}
    assert len(encoder2) == 126
    for k, v in net.swinViT.state_dict().items():
        assert torch.equal(v, encoder2[k]), k
    assert fit.model.import_report.encoder_filled == 126
    saved3 = _state(fit.trainer.checkpoint_callback.last_model_path)
    assert saved3["hyper_parameters"]["modalities"] == ["flair", "t1ce", "t1", "t2"]


def test_encoder_freezing_follows_the_epoch_count():
    model = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12, freeze_encoder_epochs=1), in_channels=4,
                               roi_size=64)
    model.on_train_epoch_start()  # epoch 0 (no trainer attached)
    assert not any(p.requires_grad for p in model.net.swinViT.parameters())
    assert all(p.requires_grad for p in model.net.decoder1.parameters())
    model.backbone = dataclasses.replace(model.backbone, freeze_encoder_epochs=0)  # as at epoch >= N
    model.on_train_epoch_start()
    assert all(p.requires_grad for p in model.net.swinViT.parameters())


def test_stage2_needs_a_stage1_checkpoint():
    with pytest.raises(WeightsError, match="model.backbone.init_from"):
        DiseaseAwarePretrainModule(backbone=Backbone(preset="tiny", feature_size=12))


def test_unlabelled_data_reads_any_layout_and_file_patterns(ukb_root, brats_root, tmp_path):
    dm = UnlabelledDataModule(root=str(brats_root), layout="brats2021", modalities=["t1"], patch_size=64,
                              exclude_fold=0, n_folds=3, val_count=1)
    dm.setup("fit")
    assert len(dm.train_cases) + len(dm.val_cases) == 4  # 6 subjects, one fold of 2 left out
    assert all(c.label is None and list(c.images) == ["t1"] for c in dm.train_cases)
    dm = UnlabelledDataModule(root=str(ukb_root), layout="ukb", patch_size=64, val_count=1, num_workers=0,
                              batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert dm.images_to_tensor(batch).shape == (2, 2, 64, 64, 64)
    # Another unpacking: one folder per participant.
    for case in dm.train_cases:
        folder = tmp_path / "flat" / case.subject_id
        folder.mkdir(parents=True)
        for m, p in case.images.items():
            (folder / f"{m}.nii.gz").symlink_to(p)
    (tmp_path / "flat" / "9999").mkdir()
    (tmp_path / "flat" / "9999" / "t1.nii.gz").symlink_to(dm.train_cases[0].images["t1"])  # no FLAIR
    flat = UnlabelledDataModule(root=str(tmp_path / "flat"), layout="my_ukb", val_count=1,
                                patterns={"t1": "{id}/t1.nii.gz", "flair": "{id}/flair.nii.gz"})
    flat.setup("fit")
    assert sorted(c.subject_id for c in flat.train_cases + flat.val_cases) == sorted(
        c.subject_id for c in dm.train_cases)
    with pytest.raises(DataError, match="not part of layout"):
        UnlabelledDataModule(root=str(ukb_root), layout="ukb", modalities=["t2"])
    with pytest.raises(DataError, match="val_count"):
        UnlabelledDataModule(root=str(ukb_root), layout="ukb", val_count=10).setup("fit")


@pytest.mark.slow
def test_ssl_loss_falls_over_a_few_dozen_steps(ukb_root, tmp_path):
    fit_main(["--config", str(STAGE1), f"--data.init_args.root={ukb_root}", *_where(tmp_path), *QUICK,
              "--trainer.max_steps=40", "--trainer.val_check_interval=40", "--trainer.log_every_n_steps=1",
              "--model.init_args.lr=1e-3"])
    rows = [r for r in csv.DictReader(open(tmp_path / "stage1" / "version_0" / "metrics.csv")) if r["train/loss"]]
    losses = [float(r["train/loss"]) for r in rows]
    assert len(losses) >= 35
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.9 * first, (first, last)


def test_ssl_channels_come_from_the_data_and_a_contradiction_is_refused(ukb_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit_main(["--config", str(STAGE1), f"--data.init_args.root={ukb_root}", *_where(tmp_path), *QUICK,
                  "--trainer.max_steps=1", "--model.init_args.in_channels=4"])
    err = " ".join(capsys.readouterr().err.split())
    assert "model.in_channels is 4 but the data gives 2" in err and "Leave model.in_channels out" in err
    model = SSLPretrainModule(backbone=Backbone(preset="tiny", feature_size=12))
    assert model.hparams.lr == 5e-4 and model.hparams.in_channels == 2 and model.modalities is None
