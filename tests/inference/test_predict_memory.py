"""What keeps predict's memory small on a laptop: one window per forward pass on a CPU, and the
checkpoint mapped rather than read (its optimiser state is never loaded)."""

import torch

from brainsegfounder.inference.predictor import CPU_SW_BATCH_SIZE, Predictor
from brainsegfounder.tasks.segmentation import SegmentationModule


def _checkpoint_with_optimizer_state(random_checkpoint, tmp_path, sw_batch_size=4):
    """The random checkpoint as fit writes it: a GPU window batch and AdamW's two moments per weight."""
    saved = torch.load(random_checkpoint, weights_only=False)
    saved["hyper_parameters"]["sw_batch_size"] = sw_batch_size
    state = saved["state_dict"]
    saved["optimizer_states"] = [{"state": {i: {"exp_avg": torch.randn_like(v), "exp_avg_sq": torch.rand_like(v)}
                                            for i, v in enumerate(state.values()) if v.is_floating_point()}}]
    path = tmp_path / "trained.ckpt"
    torch.save(saved, path)
    return path, {k: v.clone() for k, v in state.items()}


def test_cpu_predicts_one_window_at_a_time_unless_told(random_checkpoint, tmp_path):
    path, _ = _checkpoint_with_optimizer_state(random_checkpoint, tmp_path, sw_batch_size=4)
    assert CPU_SW_BATCH_SIZE == 1
    assert Predictor.from_checkpoints([path], device="cpu").sw_batch_sizes == [1]
    assert Predictor.from_checkpoints([path], device="cpu", sw_batch_size=3).sw_batch_sizes == [3]
    module = SegmentationModule.from_checkpoint(path)
    assert module.hparams.sw_batch_size == 4  # the checkpoint keeps its own (GPU) setting


def test_checkpoint_weights_are_copied_out_of_the_mapped_file(random_checkpoint, tmp_path):
    path, weights = _checkpoint_with_optimizer_state(random_checkpoint, tmp_path)
    module = SegmentationModule.from_checkpoint(path)
    path.write_bytes(b"\0" * path.stat().st_size)  # whatever happens to the file afterwards
    loaded = module.state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())
    x = torch.randn(1, 4, 64, 64, 64)
    with torch.no_grad():
        assert torch.isfinite(module(x)).all()
