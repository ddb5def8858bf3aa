"""Export: ONNX and TorchScript match PyTorch; the MONAI Bundle runs in MONAI's runner and gives
predict's label map. A real checkpoint of a tiny module, real NIfTI files in a tmp folder."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsegfounder.inference.engines import ONNX_TOLERANCE, load_segmentation_module, verify

MODALITIES = ["flair", "t1ce", "t1", "t2"]


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> list[Path]:
    """Four LPS-oriented 2 mm volumes, a noisy ellipsoid "brain" on zeros, 70 x 64 x 60 voxels."""
    folder = tmp_path_factory.mktemp("case") / "BraTS2021_00042"
    folder.mkdir()
    rng = np.random.default_rng(0)
    shape = (70, 64, 60)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    brain = (grid ** 2).sum(0) < 0.7
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    paths = []
    for m in MODALITIES:
        path = folder / f"BraTS2021_00042_{m}.nii.gz"
        nib.save(nib.Nifti1Image((rng.normal(100, 30, shape) * brain).astype(np.float32), affine), path)
        paths.append(path)
    return paths


def test_onnx_matches_pytorch_on_random_windows_and_a_real_case(random_checkpoint, case, tmp_path):
    pytest.importorskip("onnxruntime")
    from brainsegfounder.export import export
    from brainsegfounder.predict import Predictor, find_inputs

    report = export(str(random_checkpoint), "onnx", str(tmp_path))
    assert report["max_abs_logit_difference"] < ONNX_TOLERANCE
    module = load_segmentation_module(random_checkpoint)
    # A real input: the synthetic case preprocessed as predict does it, one 64^3 window.
    predictor = Predictor.from_checkpoints([random_checkpoint], device="cpu")
    files = find_inputs([p for p in case], MODALITIES)[0]
    import torchio as tio

    subject = predictor.transform()(tio.Subject({m: tio.ScalarImage(p) for m, p in files.images.items()}))
    x = torch.cat([subject[m].data for m in MODALITIES])[None, :, :64, :64, :64].float()
    # Twice the random-window tolerance: since predict crops to the brain this window holds the
    # brain's edge and constant background side by side, and instance norm over near-constant
    # regions amplifies float32 rounding (measured 1.2e-3 here, 8e-6 on random windows).
    assert verify(module, tmp_path / "model.onnx", x) < 2 * ONNX_TOLERANCE
    assert (tmp_path / "model_card.json").is_file()


def test_torchscript_matches_pytorch(random_checkpoint, tmp_path):
    from brainsegfounder.export import export

    report = export(str(random_checkpoint), "torchscript", str(tmp_path))
    assert report["max_abs_logit_difference"] < ONNX_TOLERANCE
    loaded = torch.jit.load(str(tmp_path / "model.ts"))
    assert loaded(torch.randn(1, 4, 64, 64, 64)).shape == (1, 3, 64, 64, 64)


def test_bundle_runs_in_monais_runner_and_gives_predicts_label_map(random_checkpoint, case, tmp_path):
    # The command a MONAI user types, as the README writes it: `python -m monai.bundle run` needs
    # fire, MONAI's SupervisedEvaluator pytorch-ignite (both in the `export` extra).
    import subprocess
    import sys

    from brainsegfounder.export import export
    from brainsegfounder.predict import Predictor, find_inputs

    bundle = tmp_path / "bundle"
    export(str(random_checkpoint), "bundle", str(bundle))
    for name in ("configs/metadata.json", "configs/inference.json", "models/model.pt", "docs/README.md"):
        assert (bundle / name).is_file(), name
    import json

    meta = json.loads((bundle / "configs/metadata.json").read_text())["brainsegfounder"]
    assert meta["inputs"]["modalities"] == MODALITIES and meta["outputs"]["regions"]["name"] == "brats2021"

    out = tmp_path / "preds"
    datalist = "[{'image': [" + ", ".join(f"'{p}'" for p in case) + "]}]"
    done = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "bundle/configs/inference.json",
         "--meta_file", "bundle/configs/metadata.json", "--bundle_root", "bundle", "--datalist", datalist,
         "--output_dir", "preds"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    written = sorted(out.rglob("*.nii.gz"))
    assert len(written) == 1
    theirs = nib.load(str(written[0]))
    # The bundle's inferer covers the whole volume: compare with predict's full-volume path (the default
    # brain box only differs outside the brain, where an untrained net may mark background).
    ours = Predictor.from_checkpoints([random_checkpoint], device="cpu", bbox=False).predict_case(
        find_inputs(case, MODALITIES)[0])
    np.testing.assert_allclose(theirs.affine, nib.load(str(case[0])).affine, atol=1e-5)
    labels = np.asarray(theirs.dataobj).squeeze()
    assert labels.shape == ours.label.shape
    assert (ours.label > 0).sum() > 100  # a comparison about real foreground
    np.testing.assert_array_equal(labels, ours.label)


@pytest.mark.slow
def test_gpu_sweep_dry_run_goes_end_to_end_on_the_cpu(tmp_path):
    # benchmarks/gpu.py is meant for one call on a lent GPU; this runs the same path at toy size.
    import json

    from benchmarks.gpu import main

    out = tmp_path / "gpu_sweep.json"
    assert main(["--dry-run", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["dry_run"] and len(record["training"]) == 2
    assert all("step_s_median" in row for row in record["training"]), record["training"]
    assert record["ssl_augment"] and record["predict_seconds"]["tiny"][0] > 0


def test_onnx_runtime_engine_matches_pytorch_in_the_one_sliding_window(random_checkpoint):
    from brainsegfounder.inference.engines import OnnxRuntimeNetwork, load_segmentation_module
    from brainsegfounder.models.sliding_window import sliding_window_probabilities

    module = load_segmentation_module(random_checkpoint)
    torch.manual_seed(1)
    x = torch.randn(1, 4, 80, 72, 64)
    with torch.inference_mode():
        reference = sliding_window_probabilities(x, [module], module.roi_size, 2, 0.5)
        engine = sliding_window_probabilities(x, [OnnxRuntimeNetwork(module)], module.roi_size, 2, 0.5)
    assert engine.shape == reference.shape
    assert float((engine - reference).abs().max()) < 1e-3
