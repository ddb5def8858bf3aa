"""One backbone object for every task, its weights imported once, and the data module driving the model."""

import dataclasses

import pytest
import torch

from brainsegfounder.models.backbone import Backbone, upgrade_hparams
from brainsegfounder.tasks.segmentation import SegmentationModule
from brainsegfounder.tasks.ssl import DiseaseAwarePretrainModule, SSLPretrainModule
from brainsegfounder.utils.errors import ConfigError, DataError

BRATS = ["flair", "t1ce", "t1", "t2"]


def test_all_three_tasks_build_from_the_same_backbone_object(tmp_path):
    backbone = Backbone(preset="tiny", feature_size=12)
    stage1 = SSLPretrainModule(backbone=backbone, modalities=["t1", "flair"], projection_dim=16)
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": stage1.state_dict(), "hyper_parameters": dict(stage1.hparams)}, path)
    pretrained = dataclasses.replace(backbone, init_from=str(path), modality_map={"flair": "flair", "t1ce": "t1",
                                                                                   "t1": "t1", "t2": "flair"})
    stage2 = DiseaseAwarePretrainModule(backbone=pretrained, modalities=BRATS, projection_dim=16)
    finetune = SegmentationModule(backbone=pretrained, modalities=BRATS, regions="brats2024", roi_size=64)
    tasks = (stage1, stage2, finetune)
    assert stage1.backbone is backbone and stage2.backbone is finetune.backbone is pretrained
    # The same encoder (MONAI SwinTransformer of the same preset) in every task.
    shapes = [{k: v.shape for k, v in t.net.swinViT.state_dict().items() if "patch_embed" not in k} for t in tasks]
    assert shapes[0] == shapes[1] == shapes[2] and len(shapes[0]) == 124  # 126 less the conv's weight and bias
    assert [t.hparams.in_channels for t in tasks] == [2, 4, 4]
    # One weight import for both: the Stage-1 encoder lands in Stage 2 and in the fine-tuning network alike.
    for task in (stage2, finetune):
        report = task.load_init_weights(verbose=False)
        assert report.encoder_filled == report.encoder_total == 126
        assert task.load_init_weights(verbose=False) is report  # once only
        assert torch.equal(task.net.swinViT.layers3[0].blocks[1].mlp.linear1.weight,
                           stage1.net.swinViT.layers3[0].blocks[1].mlp.linear1.weight)
    # Checkpoints hold plain types only (weights_only loading), and the same backbone comes back.
    for task in tasks:
        task_path = tmp_path / f"{type(task).__name__}.ckpt"
        torch.save({"hyper_parameters": dict(task.hparams)}, task_path)
        hparams = torch.load(task_path, weights_only=True)["hyper_parameters"]
        assert Backbone.from_value(hparams["backbone"]) == task.backbone
    assert torch.load(tmp_path / "SegmentationModule.ckpt", weights_only=True)["hyper_parameters"]["regions"] == "brats2024"


def test_backbone_settings_are_checked_when_the_config_is_read():
    with pytest.raises(ConfigError, match="preset 'huge' is unknown"):
        Backbone(preset="huge")
    with pytest.raises(ConfigError, match="multiple of 12"):
        Backbone(feature_size=16)
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['in_channels'\]"):
        Backbone.from_value({"preset": "tiny", "in_channels": 4})
    with pytest.raises(DataError, match="model.in_channels is 2 but 3 modalities"):
        SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), in_channels=2, modalities=["a", "b", "c"])


def test_flat_hyper_parameters_of_older_checkpoints_move_under_backbone():
    old = {"preset": "tiny", "feature_size": 12, "in_channels": 4, "regions": "brats2021", "init_from": "x.ckpt",
           "freeze_encoder_epochs": 2, "lr": 1e-3}
    new = upgrade_hparams(old)
    assert new["backbone"] == {"preset": "tiny", "feature_size": 12, "init_from": "x.ckpt", "freeze_encoder_epochs": 2}
    assert {k: v for k, v in new.items() if k != "backbone"} == {"in_channels": 4, "regions": "brats2021", "lr": 1e-3}
    assert upgrade_hparams(new) == new
