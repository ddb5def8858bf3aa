"""Two runs of one config give the same weights, bit for bit: the demo repeats its own figures.

Seeded loaders and queue (``data/reproducible.py``) make the batches equal; ``trainer.deterministic``
makes the arithmetic equal (with two CPU threads, the gradient of Swin's relative-position-bias
table, an ``index_put_`` with ``accumulate=True``, otherwise adds in a racing order: the weights
drift apart from the second step on, and the demo's best step and Dice moved between runs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import DEMO


def short_fit(data_root: Path, run: Path, deterministic: bool) -> dict[str, torch.Tensor]:
    from brainsegfounder.fit import main as fit_main

    fit_main(["--config", str(DEMO), f"--data.init_args.root={data_root}",
              f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
              "--trainer.max_steps=3", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
              f"--trainer.deterministic={str(deterministic).lower()}", "--trainer.enable_progress_bar=false",
              "--data.init_args.batch_size=1", "--data.init_args.samples_per_volume=1", "--data.init_args.validate=off"])
    return torch.load(next(run.rglob("last.ckpt")), map_location="cpu", weights_only=False)["state_dict"]


def test_demo_config_is_deterministic():
    import yaml

    assert yaml.safe_load(DEMO.read_text())["trainer"]["deterministic"] is True


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="the race needs two CPU threads")
def test_two_short_runs_give_equal_weights(brats2021_root, tmp_path):
    first = short_fit(brats2021_root, tmp_path / "a", deterministic=True)
    second = short_fit(brats2021_root, tmp_path / "b", deterministic=True)
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    # The run trained: the weights moved away from their initial values.
    assert any(not torch.equal(first[k], v) for k, v in _initial(tmp_path).items())


def _initial(tmp_path: Path) -> dict[str, torch.Tensor]:
    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    torch.manual_seed(0)  # seed_everything: 0, as the config says
    module = SegmentationModule(backbone=Backbone("tiny", 12), in_channels=4, regions="brats2021",
                                modalities=["flair", "t1ce", "t1", "t2"])
    return {k: v for k, v in module.state_dict().items() if k.startswith("net.")}
