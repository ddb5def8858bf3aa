"""The SSL probe: a fit-written Stage-1 checkpoint loads back and is scored on held-out crops."""

import json

import pytest

from brainsegfounder.fit import main as fit_main
from brainsegfounder.tasks.ssl import SSLPretrainModule
from brainsegfounder.training import ssl_probe
from brainsegfounder.utils.errors import WeightsError
from tests.conftest import REPO

STAGE1 = REPO / "experiments" / "demo_stage1.yaml"
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
         "--data.init_args.num_workers=0", "--trainer.limit_val_batches=0"]


@pytest.fixture(scope="module")
def ukb_root(synthetic_set):
    return synthetic_set("ukb", subjects=3, seed=1, spacing=3.0)


def test_a_stage1_checkpoint_is_probed_on_the_same_crops_every_time(ukb_root, tmp_path, capsys):
    fit = fit_main(["--config", str(STAGE1), f"--data.init_args.root={ukb_root}", *QUICK,
                    f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                    "--trainer.max_steps=1", "--data.init_args.val_count=1", "--model.init_args.rotation_pooling=mean"])
    ckpt = fit.trainer.checkpoint_callback.last_model_path
    # The saved hyper-parameters hold what fit links from the data (regions, roi_size), which an
    # SSL task does not take: loading must not trip over them (it did).
    module = SSLPretrainModule.from_checkpoint(ckpt)
    assert module.net.rotation_pooling == "mean" and module.modalities == ["t1", "flair"]

    out = tmp_path / "probe.json"
    rows = ssl_probe.run([f"a={ckpt}", f"b={ckpt}"], root=str(ukb_root), layout="ukb", crops=1, out=str(out))
    a, b = rows
    n = 3  # brains x crops per brain
    assert a["crops"] == n and a["contrastive_chance"] == pytest.approx(1 / (2 * n - 1))
    # The same crops, rotations and masks for every checkpoint: one checkpoint scores the same twice.
    assert {k: v for k, v in a.items() if k != "name"} == {k: v for k, v in b.items() if k != "name"}
    # Every crop in each quarter turn: the overall accuracy is the mean of the four.
    per_turn = [a[f"rotation_accuracy_{k}"] for k in (0, 90, 180, 270)]
    assert a["rotation_accuracy"] == pytest.approx(sum(per_turn) / 4)
    assert all(0 <= v <= 1 for v in per_turn)
    # One SSL step reconstructs nothing yet: inside the hidden cuboids its error is of the order of
    # filling them with the visible voxels' mean.
    assert 0.5 < a["inpainting_ratio"] < 2
    assert a["mean_fill_l1"] > 0 and a["masked_input_l1"] > 0
    assert json.loads(out.read_text())[1]["name"] == "b"
    table = capsys.readouterr().out
    assert "| a | 3 |" in table and "rotation_accuracy" in table
    # A missing file is named before any checkpoint is probed.
    with pytest.raises(WeightsError, match="not found: .*missing.ckpt"):
        ssl_probe.run([f"a={ckpt}", f"b={tmp_path / 'missing.ckpt'}"], root=str(ukb_root), layout="ukb")
