"""Take a trained segmentation network out of the project: ONNX, TorchScript, a MONAI Bundle.

Every export writes the network alone (logits, one channel per region; no sigmoid) and, beside
it, what a user needs to get predict's result without this package: the preprocessing
(modalities in channel order, canonical RAS orientation, spacing, z-score over the non-zero voxels
of each channel) and the region scheme (channels, and how they paint back into labels).

Example (a module straight from its constructor; a checkpoint goes through
:func:`load_segmentation_module`):
    >>> import tempfile, torch
    >>> from brainsegfounder.models.backbone import Backbone
    >>> from brainsegfounder.tasks.segmentation import SegmentationModule
    >>> module = SegmentationModule(backbone=Backbone("tiny", 12), in_channels=4, roi_size=64,
    ...                             modalities=["flair", "t1ce", "t1", "t2"]).eval()
    >>> out = tempfile.mkdtemp()
    >>> path = export_torchscript(module, f"{out}/model.ts")
    >>> verify(module, torch.jit.load(path), torch.randn(1, 4, 64, 64, 64)) < 1e-4
    True
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from brainsegfounder.checkpoints import PREPROCESSING_KEY, modalities_of
from brainsegfounder.data.regions import RegionScheme

__all__ = ["OnnxRuntimeNetwork", "load_segmentation_module", "export_onnx", "export_torchscript", "export_bundle", "verify",
           "onnx_logits", "model_card", "ONNX_TOLERANCE"]

#: Largest absolute logit difference accepted between an export and PyTorch (fp32 on the CPU;
#: measured differences are ~1e-5 for feature size 12 and 48).
ONNX_TOLERANCE = 1e-3


def load_segmentation_module(path: str | Path):
    """A segmentation module in eval mode on the CPU, read as ``predict`` reads it (the NaN/Inf refusal included)."""
    from brainsegfounder.inference.predictor import load_segmentation

    return load_segmentation(path, torch.device("cpu"))


def _example(module, side: int | None = None) -> torch.Tensor:
    roi = module.roi_size if side is None else (side,) * 3
    return torch.randn(1, int(module.hparams.in_channels), *roi)


def model_card(module) -> dict:
    """Everything needed to use the exported network as predict does (JSON-ready)."""
    scheme: RegionScheme = module.scheme
    record = module.preprocessing_record or module.current_preprocessing_record()
    settings = record.to_dict() if record is not None else {}
    hp = module.hparams
    modalities = settings.get("modalities") or modalities_of(module)
    return {
        "inputs": {"modalities": list(modalities) if modalities else None, "layout": "(B, C, X, Y, Z) float32",
                   "orientation": "RAS (canonical, nibabel.as_closest_canonical)",
                   "spacing_mm": settings.get("spacing"), "crop_to_brain": bool(settings.get("crop_to_brain")),
                   "normalisation": "per channel: (x - mean) / std over that channel's non-zero voxels "
                                    "(unbiased std), applied to every voxel",
                   "pad_to_at_least": list(module.roi_size)},
        "outputs": {"channels": list(scheme.names), "activation": "sigmoid",
                    "threshold": float(hp.threshold), "regions": scheme.to_dict()},
        "sliding_window": {"roi_size": list(module.roi_size), "overlap": float(hp.sw_overlap),
                           "sw_batch_size": int(hp.sw_batch_size), "mode": "gaussian"},
        "network": {"class": "monai.networks.nets.SwinUNETR", "preset": module.backbone.preset,
                    "feature_size": int(module.net.swinViT.embed_dim), "in_channels": int(hp.in_channels),
                    "out_channels": scheme.num_regions},
        PREPROCESSING_KEY: settings,
    }


@contextlib.contextmanager
def expected_export_warnings() -> Iterator[None]:
    """Hide the warnings every export of Swin UNETR raises, and only those.

    MONAI's Swin UNETR reads tensor shapes as Python values (``if pad_input:``, window counts), so
    the tracer warns that the graph holds for this input size only: true, and the reason exports
    are made at the checkpoint's window size (the only size a sliding window feeds) and compared
    with PyTorch after. Its instance norms use each window's own statistics, which ONNX calls
    ``train=True``: also what PyTorch does in eval mode. Any other warning still shows.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*operator 'instance_norm' is set to train=True.*")
        yield


def export_onnx(module, path: str | Path, opset: int = 18) -> Path:
    """Write ``module.net`` as ONNX for the checkpoint's window size, with a dynamic batch axis.

    The spatial size is fixed: MONAI's ``SwinTransformer`` builds its shifted-window attention
    mask from the input's shape in Python, so both torch exporters (TorchScript-based and dynamo,
    tried with ``torch.export.Dim`` spatial axes) bake the window count in and ONNX Runtime fails
    on another size. A sliding window feeds only ``roi_size`` windows, so nothing is lost there.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = module.net.eval()
    # The TorchScript-based exporter: 10x faster to export than dynamo, same graph for a fixed size.
    axes = {0: "batch"}
    buffer = io.BytesIO()
    with torch.no_grad(), expected_export_warnings():
        torch.onnx.export(net, (_example(module),), buffer, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=opset, dynamo=False)
    _write_atomically(path, buffer.getvalue())
    return path


def onnx_logits(path: str | Path, x: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """Run an exported ONNX network with ONNX Runtime on the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


class OnnxRuntimeNetwork:
    """A segmentation module's network run by ONNX Runtime on the CPU: a drop-in for the sliding window.

    The network is exported once (for the module's window size, :func:`export_onnx`) into
    ``folder`` (a temporary one by default) and each call runs a batch of windows. Measured on the
    2-core CPU (benchmarks/cpu_predict.py): the same windows in 0.10-0.22x the time of PyTorch eager,
    labels identical.

    Args:
        module: a segmentation module (eval mode).
        folder: where to keep ``model.onnx``; default: a temporary folder.
        threads: ONNX Runtime intra-op threads (default: its own choice, one per core).
    """

    def __init__(self, module, folder: str | Path | None = None, threads: int | None = None):
        import tempfile

        import onnxruntime as ort

        self._tmp = None if folder else tempfile.TemporaryDirectory(prefix="bsf-onnx-")
        path = export_onnx(module, Path(folder or self._tmp.name) / "model.onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def export_torchscript(module, path: str | Path) -> Path:
    """Write ``module.net`` traced to TorchScript (``torch.jit.load`` reads it without this package).

    The trace holds for the example's window size (the checkpoint's ``roi_size``): the size a
    sliding window feeds it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), expected_export_warnings():
        traced = torch.jit.trace(module.net.eval(), _example(module), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    _write_atomically(path, buffer.getvalue())
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` under a temporary name beside ``path``, then rename it onto ``path``.

    The exports are serialised in memory first: torch's own zip writer aborts the whole process
    when the disk fills up, while Python's write raises an ``OSError`` the command reports in one
    line. A failed write leaves no truncated model file, and an earlier file stays whole until the
    rename.
    """
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def verify(module, exported, x: torch.Tensor) -> float:
    """Largest absolute logit difference between PyTorch and an export on ``x`` (a callable, or
    the path of an ``.onnx`` file)."""
    with torch.no_grad():
        reference = module.net.eval()(x)
        if isinstance(exported, (str, Path)):
            other = onnx_logits(exported, x)
        else:
            other = exported(x)
    return float((reference - other).abs().max())


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def export_bundle(module, out: str | Path, name: str = "brainsegfounder_segmentation") -> Path:
    """Write a MONAI Bundle folder that MONAI's own runner executes on NIfTI cases.

    ``configs/metadata.json`` (with this package's model card under ``brainsegfounder``),
    ``configs/inference.json``, ``models/model.pt`` (the network's state dict) and
    ``docs/README.md``. Run it with::

        python -m monai.bundle run --config_file OUT/configs/inference.json \\
            --meta_file OUT/configs/metadata.json --bundle_root OUT \\
            --datalist "[{'image': ['a_flair.nii.gz', 'a_t1ce.nii.gz', 'a_t1.nii.gz', 'a_t2.nii.gz']}]" \\
            --output_dir preds
    """
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    torch.save(module.net.state_dict(), out / "models" / "model.pt")
    card = model_card(module)
    _write_json(out / "configs" / "metadata.json", _metadata(card, name))
    _write_json(out / "configs" / "inference.json", _inference_config(module, card))
    (out / "docs").mkdir(exist_ok=True)
    (out / "docs" / "README.md").write_text(_readme(card, name))
    return out


def _paint_expression(scheme: RegionScheme) -> str:
    # Later paints win (RegionScheme.to_label), so the last one is the outermost `where`.
    expression = "0"
    for index, value in scheme.paint:
        expression = f"torch.where(p[{index}:{index + 1}] > 0, {value}, {expression})"
    return f"$lambda p: p[:1] * 0 + ({expression}).to(p.dtype)"


# torchio's ZNormalization as predict applies it: statistics over each channel's non-zero voxels
# (unbiased std), applied to every voxel (MONAI's NormalizeIntensity(nonzero=True) leaves the
# background at 0, which the network never saw). `x * 0 +` keeps the MetaTensor's geometry.
_ZSCORE = ("$lambda x: x * 0 + torch.stack([(c - c[c != 0].mean()) / c[c != 0].std() "
           "for c in x.as_tensor().float()])")


def _inference_config(module, card: dict) -> dict:
    net, window, inputs = card["network"], card["sliding_window"], card["inputs"]
    swin = module.net.swinViT
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "image", "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
    ]
    if inputs["spacing_mm"]:
        spacing = inputs["spacing_mm"]
        preprocessing.append({"_target_": "Spacingd", "keys": "image",
                              "pixdim": spacing if isinstance(spacing, list) else [spacing] * 3})
    if inputs["crop_to_brain"]:
        preprocessing.append({"_target_": "CropForegroundd", "keys": "image", "source_key": "image",
                              "select_fn": "$lambda x: x != 0", "channel_indices": 0})
    preprocessing += [
        {"_target_": "SpatialPadd", "keys": "image", "spatial_size": inputs["pad_to_at_least"]},
        {"_target_": "Lambdad", "keys": "image", "func": _ZSCORE},
    ]
    return {
        "imports": ["$import torch", "$import numpy"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "datalist": [],
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": {"_target_": "SwinUNETR", "in_channels": net["in_channels"],
                        "out_channels": net["out_channels"], "feature_size": int(swin.embed_dim),
                        "depths": [len(layer[0].blocks) for layer in
                                   (swin.layers1, swin.layers2, swin.layers3, swin.layers4)],
                        "num_heads": [layer[0].blocks[0].attn.num_heads for layer in
                                      (swin.layers1, swin.layers2, swin.layers3, swin.layers4)],
                        "spatial_dims": 3},
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": preprocessing},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": window["roi_size"],
                    "sw_batch_size": window["sw_batch_size"], "overlap": window["overlap"], "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
            # Back onto the input's grid before the threshold, as predict does.
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "threshold": card["outputs"]["threshold"]},
            {"_target_": "Lambdad", "keys": "pred", "func": _paint_expression(module.scheme)},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
             "output_dtype": "$numpy.uint8", "resample": False, "separate_folder": False},
        ]},
        "handlers": [{"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                      "load_dict": {"model": "@network"}, "map_location": "@device"}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": False},
        "run": ["$@evaluator.run()"],
    }


def _metadata(card: dict, name: str) -> dict:
    import monai

    inputs, outputs = card["inputs"], card["outputs"]
    modalities = inputs["modalities"] or [f"channel{i}" for i in range(card["network"]["in_channels"])]
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                  "meta_schema_20220324.json",
        "version": "0.1.0", "changelog": {"0.1.0": "exported by brainsegfounder"},
        "monai_version": monai.__version__, "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__, "required_packages_version": {"nibabel": __import__("nibabel").__version__},
        "name": name, "task": "brain MRI segmentation (" + ", ".join(outputs["channels"]) + ")",
        "description": "Swin UNETR fine-tuned with brainsegfounder; sigmoid region channels painted "
                       "back into one label map.",
        "authors": "brainsegfounder users", "copyright": "the model's trainers",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR",
                                 "num_channels": len(modalities), "spatial_shape": card["sliding_window"]["roi_size"],
                                 "dtype": "float32", "value_range": [], "is_patch_data": True,
                                 "channel_def": {str(i): m for i, m in enumerate(modalities)}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": len(outputs["channels"]),
                                 "spatial_shape": card["sliding_window"]["roi_size"], "dtype": "float32",
                                 "value_range": [0, 1], "is_patch_data": True,
                                 "channel_def": {str(i): c for i, c in enumerate(outputs["channels"])}}}},
        "brainsegfounder": card,
    }


def _readme(card: dict, name: str) -> str:
    inputs, outputs = card["inputs"], card["outputs"]
    paint = ", ".join(f"{outputs['regions']['names'][i]} -> {v}" for i, v in outputs["regions"]["paint"])
    return (f"# {name}\n\nA Swin UNETR exported by brainsegfounder.\n\n"
            f"Inputs: {len(inputs['modalities'] or [])} NIfTI images of one case, in the order "
            f"{', '.join(inputs['modalities'] or ['(not recorded)'])}. Preprocessing: {inputs['orientation']}; "
            f"spacing {inputs['spacing_mm'] or 'as given'}; {inputs['normalisation']}.\n\n"
            f"Outputs: sigmoid channels {', '.join(outputs['channels'])}, threshold {outputs['threshold']}, "
            f"painted in this order: {paint}.\n\n"
            "Run:\n\n    python -m monai.bundle run --config_file configs/inference.json \\\n"
            "        --meta_file configs/metadata.json --bundle_root . \\\n"
            "        --datalist \"[{'image': ['case_flair.nii.gz', 'case_t1ce.nii.gz', 'case_t1.nii.gz', "
            "'case_t2.nii.gz']}]\" --output_dir preds\n\n"
            "Everything above is also in configs/metadata.json under `brainsegfounder`.\n")
