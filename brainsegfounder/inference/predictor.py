"""The predictor: an ensemble of segmentation checkpoints that segments one case at a time.

Each case is preprocessed as training did (the checkpoint's
:class:`~brainsegfounder.data.transforms.PreprocessingRecord`: canonical RAS, the training spacing
and crop if any, padding, z-score over the brain), segmented by the one sliding-window function
(:func:`~brainsegfounder.inference.sliding_window.sliding_window_probabilities`; several
checkpoints average their probabilities, ``tta`` adds the 8 mirrorings), and its probabilities are
mapped back onto the input's exact grid (same shape, affine and orientation) before thresholding.

Example:
    >>> from brainsegfounder.inference import Predictor, find_inputs  # doctest: +SKIP
    >>> predictor = Predictor.from_checkpoints(["fold0.ckpt"], device="cpu")  # doctest: +SKIP
    >>> case = find_inputs(["/data/BraTS2021_00000"], predictor.modalities)[0]  # doctest: +SKIP
    >>> result = predictor.predict_case(case)  # doctest: +SKIP
    >>> result.label.shape, sorted(set(result.label.ravel()))  # doctest: +SKIP
    ((240, 240, 155), [0, 1, 2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio

from brainsegfounder.data.datamodule import as_triple
from brainsegfounder.data.layouts import CaseFiles
from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.data.transforms import PreprocessingRecord, preprocessing
from brainsegfounder.errors import ConfigError, DataError, WeightsError
from brainsegfounder.inference.sliding_window import sliding_window_probabilities

__all__ = ["CasePrediction", "Predictor", "load_segmentation", "resolve_device"]


def load_segmentation(path: str | Path, device: torch.device):
    """A segmentation checkpoint as an eval-mode module on ``device`` (``weights_only``; old formats too).

    Read by :func:`~brainsegfounder.safe_load.safe_load` (a file carrying code is refused as such,
    never run); weights holding NaN/Inf are refused by name, since they would segment nothing.
    """
    # Imported here: Lightning and the network are only needed once checkpoints are read.
    from brainsegfounder.safe_load import non_finite_tensors
    from brainsegfounder.tasks.segmentation import SegmentationModule

    module = SegmentationModule.from_checkpoint(path, map_location=device).eval()
    bad = non_finite_tensors(module.state_dict())
    if bad:
        name, count = next(iter(bad.items()))
        raise WeightsError(f"--ckpt {path} holds NaN/Inf in {len(bad)} weight tensor(s) (e.g. {name}: {count} "
                           "values), so it cannot segment anything; pick a checkpoint from before the run diverged.")
    return module


def _record(module) -> PreprocessingRecord | None:
    return module.preprocessing_record


def _modalities_of(module) -> tuple[str, ...] | None:
    record = _record(module)
    names = (record.modalities if record is not None else None) or module.hparams.get("modalities")
    return tuple(names) if names else None


def _describe(module) -> dict:
    """What ensemble members must agree on."""
    record = _record(module)
    scheme: RegionScheme = module.scheme
    return {"input channels": int(module.hparams.in_channels), "modalities": _modalities_of(module),
            "regions": (scheme.names, scheme.labels, scheme.paint),
            "spacing": record.spacing if record else None,
            "crop_to_brain": bool(record.crop_to_brain) if record else False}


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu "
                          "or install a CUDA build of torch.")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: choose auto, cpu or cuda.")
    return torch.device(name)


@dataclass
class CasePrediction:
    """One case's segmentation on the input's own grid.

    Attributes:
        case_id: the case's id (the output file is ``<case_id>.nii.gz``).
        label: uint8 label map (X, Y, Z) in the scheme's convention, shaped like the input.
        probabilities: float32 (R, X, Y, Z) region probabilities on the same grid.
        affine: the input's affine (voxel -> mm, as nibabel reads it).
        header: the first modality's NIfTI header (written with the outputs).
        spacing: voxel size in mm along the three axes.
        image: the first modality's voxels on the input grid (the overlay's background).
    """

    case_id: str
    label: np.ndarray
    probabilities: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, float, float]
    image: np.ndarray | None = None


class Predictor:
    """An ensemble of segmentation checkpoints that segments one case at a time.

    Args:
        modules: :class:`~brainsegfounder.tasks.segmentation.SegmentationModule` s that agree on
            modalities, region scheme and preprocessing (:meth:`from_checkpoints` checks that).
        device: where the networks run.
        tta: also average over the 8 mirrorings of the volume (8x the time).
        overlap: sliding-window overlap (default: each checkpoint's ``sw_overlap``).
        sw_batch_size: windows per forward pass (default: each checkpoint's).
        roi_size: window size in voxels (default: each checkpoint's ``roi_size``).
        threshold: probability above which a voxel belongs to a region (default: the checkpoint's).
        precision: ``"32"`` or ``"bf16"`` (autocast; meant for CUDA).
        modalities: modality names in channel order, if the checkpoints do not record them.
    """

    def __init__(self, modules: Sequence, device: str | torch.device = "cpu", tta: bool = False,
                 overlap: float | None = None, sw_batch_size: int | None = None,
                 roi_size: int | Sequence[int] | None = None, threshold: float | None = None,
                 precision: str = "32", modalities: Sequence[str] | None = None):
        if not modules:
            raise WeightsError("no checkpoint given: pass at least one --ckpt.")
        if precision not in ("32", "bf16"):
            raise ConfigError(f"--precision {precision!r}: choose 32 or bf16.")
        self.modules = list(modules)
        self.device = resolve_device(device)
        self.tta, self.precision = tta, precision
        first = self.modules[0]
        self.roi_sizes = [as_triple(roi_size) if roi_size is not None else m.roi_size for m in self.modules]
        self.sw_batch_sizes = [sw_batch_size or m.hparams.sw_batch_size for m in self.modules]
        self.overlaps = [m.hparams.sw_overlap if overlap is None else overlap for m in self.modules]
        self.scheme: RegionScheme = first.scheme
        self.in_channels = int(first.hparams.in_channels)
        self.threshold = float(threshold if threshold is not None else first.hparams.threshold)
        self.record = _record(first)
        self.spacing = self.record.spacing if self.record else None
        self.crop_to_brain = bool(self.record.crop_to_brain) if self.record else False
        recorded = _modalities_of(first)
        self.modalities: tuple[str, ...] | None = tuple(modalities) if modalities else recorded
        if self.modalities is not None and len(self.modalities) != self.in_channels:
            raise DataError(f"{len(self.modalities)} modalities {list(self.modalities)} given for a network "
                            f"with {self.in_channels} input channels.")

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path], device: str = "auto", **kwargs) -> Predictor:
        """Load checkpoints (``weights_only``) and check that they can form one ensemble.

        Members must agree on the number of input channels, the modalities and their order, the
        region scheme and the preprocessing (spacing, crop); a :class:`WeightsError` names the
        first checkpoint that does not.
        """
        if not paths:
            raise WeightsError("no checkpoint given: pass at least one --ckpt.")
        target = resolve_device(device)
        modules = [load_segmentation(p, target) for p in paths]
        reference = _describe(modules[0])
        for module, path in zip(modules[1:], paths[1:], strict=True):
            for key, value in _describe(module).items():
                if key == "modalities" and (value is None or reference[key] is None):
                    continue  # an older checkpoint that did not record them
                if value != reference[key]:
                    raise WeightsError(f"checkpoints {paths[0]} and {path} differ in {key} "
                                       f"({reference[key]} vs {value}); an ensemble needs members "
                                       "trained on the same inputs and regions.")
        if reference["modalities"] is None and not kwargs.get("modalities"):
            named = [_modalities_of(m) for m in modules if _modalities_of(m)]
            kwargs["modalities"] = named[0] if named else None
        return cls(modules, target, **kwargs)

    # -- the pieces of one prediction ------------------------------------------------------------
    def transform(self) -> tio.Compose:
        """The deterministic preprocessing of training; ``copy=False`` as the loaded subject is ours."""
        largest = tuple(max(s[i] for s in self.roi_sizes) for i in range(3))
        steps = self.record.transforms(largest) if self.record else preprocessing(largest)
        return tio.Compose(steps, copy=False)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Mean sigmoid probabilities ``(1, R, X, Y, Z)`` over checkpoints (and mirrorings) of ``x``.

        ``x`` is a preprocessed ``(1, C, X, Y, Z)`` volume. Runs under ``torch.inference_mode``.
        """
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            return sliding_window_probabilities(x.to(self.device), self.modules, self.roi_sizes,
                                                self.sw_batch_sizes, self.overlaps, tta=self.tta)

    def predict_case(self, case: CaseFiles, keep_image: bool = False) -> CasePrediction:
        """Segment one case and return its label map and probabilities on the input's own grid."""
        names = list(case.images)
        if len(names) != self.in_channels:
            raise DataError(f"subject {case.subject_id}: {len(names)} modalities but the network takes "
                            f"{self.in_channels}.")
        first = nib.load(str(case.images[names[0]]))
        subject = tio.Subject({name: tio.ScalarImage(path) for name, path in case.images.items()})
        try:
            subject.load()
        except Exception as err:  # nibabel and gzip raise many kinds for broken files
            raise DataError(f"subject {case.subject_id}: cannot read its images ({type(err).__name__}: "
                            f"{err}). Check the files {', '.join(map(str, case.images.values()))}.") from None
        original = subject[names[0]]
        shape, affine = tuple(original.spatial_shape), original.affine.copy()
        image = original.data[0].numpy().copy() if keep_image else None

        processed = self.transform()(subject)
        x = torch.cat([processed[name].data for name in names]).unsqueeze(0).float()
        probs = self.probabilities(x)[0].cpu()
        processed_affine = processed[names[0]].affine
        if tuple(probs.shape[1:]) != shape or not np.allclose(processed_affine, affine, atol=1e-4):
            # Back onto the input's grid (undoing reorientation, padding, resampling, cropping) by
            # linear interpolation of the probabilities (0 outside the processed volume), so the
            # threshold acts on the input's own voxels.
            back = tio.Resample((shape, affine), image_interpolation="linear")
            mapped = back(tio.Subject(p=tio.ScalarImage(tensor=probs, affine=processed_affine)))
            probs = mapped["p"].data
        label = self.scheme.to_label((probs > self.threshold).unsqueeze(0))[0, 0].numpy()
        spacing = tuple(float(z) for z in first.header.get_zooms()[:3])
        return CasePrediction(case.subject_id, label, probs.numpy().astype(np.float32, copy=False),
                              first.affine, first.header, spacing, image)
