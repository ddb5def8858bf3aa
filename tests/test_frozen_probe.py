"""The frozen-encoder probe: a real fit with ``model.backbone.freeze_encoder`` trains only the decoder."""

import torch

from brainsegfounder.fit import main as fit_main
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.tasks.segmentation import SegmentationModule
from tests.conftest import REPO

DEMO_ATLAS = REPO / "experiments" / "demo_atlas.yaml"


def test_a_frozen_encoder_fit_keeps_the_encoder_bit_identical_and_trains_the_decoder(atlas_root, tmp_path):
    # The starting weights, written as a checkpoint so that "before" is exactly what the fit loads.
    torch.manual_seed(1)
    start = SegmentationModule(backbone=Backbone(preset="tiny", feature_size=12), modalities=["t1w"],
                               regions="lesion", roi_size=64)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    torch.save({"state_dict": before, "hyper_parameters": dict(start.hparams)}, tmp_path / "start.ckpt")

    cli = fit_main(["--config", str(DEMO_ATLAS), f"--data.init_args.root={atlas_root}",
                    f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                    f"--model.init_args.backbone.init_from={tmp_path / 'start.ckpt'}",
                    "--model.init_args.backbone.freeze_encoder=true", "--trainer.max_steps=2",
                    "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
                    "--trainer.enable_progress_bar=false", "--data.init_args.batch_size=1",
                    "--data.init_args.samples_per_volume=1", "--data.init_args.queue_length=1",
                    "--data.init_args.validate=off"])
    assert cli.trainer.global_step == 2
    report = cli.model.import_report
    assert report.n_loaded == len(before)  # encoder and decoder both started from the file
    after = {f"net.{k}": v for k, v in cli.model.net.state_dict().items()}
    encoder = [k for k in before if k.startswith("net.swinViT.")]
    decoder = [k for k in before if k.startswith(("net.decoder", "net.out.")) and before[k].is_floating_point()]
    assert len(encoder) == 126 and decoder
    for key in encoder:
        assert torch.equal(after[key], before[key]), f"{key} moved although the encoder is frozen"
    changed = [k for k in decoder if not torch.equal(after[k], before[k])]
    assert len(changed) > len(decoder) // 2, f"only {changed} of the decoder trained"
    # Recorded, so the checkpoint says it was a probe.
    assert cli.model.hparams.backbone["freeze_encoder"] is True
