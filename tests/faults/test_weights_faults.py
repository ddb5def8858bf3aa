"""Every checkpoint path goes through the one safe loader: refusals say what the file is."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from brainsegfounder.models.presets import build_swin_unetr
from brainsegfounder.models.weights import load_pretrained
from brainsegfounder.training.checkpointing import (
    AtomicCheckpointIO,
    CheckpointError,
    find_readable_last_checkpoint,
)
from brainsegfounder.utils.errors import WeightsError
from tests.faults.conftest import checksums, code_carrying_checkpoint

PWNED = "/tmp/brainsegfounder-fault-suite-pwned"


@pytest.fixture
def net():
    return build_swin_unetr("tiny", in_channels=4, out_channels=3, feature_size=12)


def test_monai_style_finetuned_file_with_numpy_scalars_loads_as_init_from(net, tmp_path):
    path = tmp_path / "model_weights_BRATS-finetune.pt"
    state = {f"module.{k}": v.clone() for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 299, "best_acc": np.float64(0.9115)}, path)
    fresh = build_swin_unetr("tiny", in_channels=4, out_channels=3, feature_size=12)
    report = load_pretrained(fresh, path, verbose=False)
    assert report.encoder_filled == report.encoder_total == 126
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in net.state_dict().items())


def test_nan_weights_are_refused_naming_the_tensors(net, tmp_path):
    path = tmp_path / "diverged.pt"
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["swinViT.patch_embed.proj.weight"][0, 0, 0, 0, 0] = float("nan")
    torch.save({"state_dict": state}, path)
    before = checksums(tmp_path)
    with pytest.raises(WeightsError, match=r"NaN/Inf in 1 of .*swinViT.patch_embed.proj.weight \(1 values\)"):
        load_pretrained(net, path, verbose=False)
    assert checksums(tmp_path) == before


def test_code_carrying_file_is_refused_as_such_and_not_run(net, tmp_path):
    path = code_carrying_checkpoint(tmp_path / "hostile.pt")
    with pytest.raises(WeightsError) as caught:
        load_pretrained(net, path, verbose=False)
    text = str(caught.value)
    assert "contains code references that are not allowed: posix.system; it was not run" in text
    assert "weights_only=False" not in text and "truncated" not in text
    assert not os.path.exists(PWNED)
    with pytest.raises(CheckpointError, match="posix.system"):
        AtomicCheckpointIO().load_checkpoint(path)  # Lightning's own restore path


def test_corrupt_file_is_called_corrupt(net, tmp_path):
    path = tmp_path / "half.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load_pretrained(net, path, verbose=False)


def test_last_falls_back_past_unreadable_newer_checkpoints(tmp_path):
    run = tmp_path / "finetune"
    good = run / "version_0" / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 4, "optimizer_states": [], "loops": {}}, good)  # resumable
    os.utime(good, (1_000, 1_000))
    corrupt = run / "version_1" / "checkpoints" / "last.ckpt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(good.read_bytes()[:100])
    hostile = code_carrying_checkpoint(tmp_path / "hpc_ckpt_1.ckpt")
    found, skipped = find_readable_last_checkpoint([run], hpc_folder=tmp_path)
    assert found == good
    assert [p for p, _ in skipped] == [hostile, corrupt] or [p for p, _ in skipped] == [corrupt, hostile]
    reasons = dict(skipped)
    assert "corrupt" in reasons[corrupt] and "posix.system" in reasons[hostile]
