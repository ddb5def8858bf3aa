"""The one safe torch loader: numpy scalars load, code references are refused as what they are."""

import io
import os
import zipfile

import numpy as np
import pytest
import torch

from brainsegfounder.utils.errors import WeightsError
from brainsegfounder.utils.safe_load import non_finite_tensors, safe_load


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_code_reference_is_refused_and_named_never_run(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _RunsACommand()}, path)
    with pytest.raises(WeightsError) as err:
        safe_load(path, what="--ckpt")
    text = str(err.value)
    assert "code references that are not allowed" in text and "system" in text and "it was not run" in text
    assert "weights_only" not in text and "likely succeed" not in text


def test_numpy_scalars_of_monai_style_trainers_load(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 7, "best_acc": np.float64(0.91),
                "dtype": np.dtype("float32"), "curve": np.array([0.1, 0.2])}, path)
    loaded = safe_load(path)
    assert loaded["epoch"] == 7 and float(loaded["best_acc"]) == pytest.approx(0.91)
    assert loaded["curve"].tolist() == [0.1, 0.2]


def test_numpy_1x_module_path_loads(tmp_path):
    """A file pickled under numpy 1.x names its scalar type numpy.core.multiarray.scalar."""
    path = tmp_path / "old.pt"
    torch.save({"best_acc": np.float64(0.5)}, path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            dst.writestr(item, data)
    path.write_bytes(buffer.getvalue())
    assert float(safe_load(path)["best_acc"]) == 0.5


def test_truncated_file_is_called_corrupt(tmp_path):
    path = tmp_path / "cut.ckpt"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        safe_load(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        safe_load(tmp_path / "nope.ckpt", what="model.init_from weights file")


def test_non_finite_tensors_counts_each_bad_tensor():
    state = {"a": torch.tensor([1.0, float("inf"), float("nan")]), "b": torch.ones(3), "n": torch.tensor([1])}
    assert non_finite_tensors(state) == {"a": 2}
