"""The predictor: an ensemble of segmentation checkpoints that segments one case at a time.

Each case is preprocessed as training did (the checkpoint's
:class:`~brainsegfounder.data.transforms.PreprocessingRecord`: canonical RAS, the training spacing
and crop if any, padding, z-score over the brain), segmented by the one sliding-window function
(:func:`~brainsegfounder.models.sliding_window.sliding_window_probabilities`; several
checkpoints average their probabilities, ``tta`` adds the 8 mirrorings), and its probabilities are
mapped back onto the input's exact grid (same shape, affine and orientation) before thresholding.

A case may lack modalities when every checkpoint accepts them missing (trained with modality
dropout: ``PreprocessingRecord.accepts_missing``): they become the constant channels training
dropped to (:func:`~brainsegfounder.data.modality_dropout.missing_channels_tensor`). Checkpoints
calibrated by ``brainsegfounder.calibrate`` divide their logits by their per-region temperatures.
With ``uncertainty=True`` a case also gets its entropy map, the variance across members
(checkpoints x mirrorings) when there are several, and its quality score
(:mod:`~brainsegfounder.inference.uncertainty`).

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
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio

from brainsegfounder.checkpoints import modalities_of
from brainsegfounder.data.conform import CropToForeground, ZeroConstantBackground
from brainsegfounder.data.datamodule import as_triple
from brainsegfounder.data.layouts import CaseFiles
from brainsegfounder.data.modality_dropout import missing_channels_tensor, parse_modalities
from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.data.transforms import (
    PadToMinimumShape,
    ReplaceNonFinite,
    preprocessing,
)
from brainsegfounder.evaluation.postprocessing import postprocess as postprocess_label
from brainsegfounder.evaluation.postprocessing import resolve_rule
from brainsegfounder.inference.calibration import apply_temperature
from brainsegfounder.inference.case_prediction import CasePrediction
from brainsegfounder.inference.loading import (  # noqa: F401 - re-exported: predictor's public names
    _record,
    accepted_missing,
    check_ensemble,
    load_segmentation,
    resolve_device,
)
from brainsegfounder.inference.uncertainty import (
    combined_entropy,
    mean_subset_dice,
    quality_score,
    subset_reliability,
)
from brainsegfounder.models.sliding_window import (
    check_window,
    member_probabilities,
    sliding_window_probabilities,
)
from brainsegfounder.utils.errors import ConfigError, DataError, WeightsError

#: Windows per forward pass on a CPU when ``--sw_batch_size`` is not given. A batch of windows
#: multiplies the activations' memory (BraTS size, small preset, feature size 48, 96^3 windows: a
#: batch of 4, the paper's setting, peaks above 5 GB) and CPU cores gain little from it
#: (docs/benchmarks.md); the checkpoint's own value (a GPU setting) applies on a GPU.
CPU_SW_BATCH_SIZE = 1

__all__ = ["CasePrediction", "Predictor", "load_segmentation", "resolve_device"]


class _Calibrated(torch.nn.Module):
    """A network whose logits are divided by per-region temperatures (``brainsegfounder.calibrate``)."""

    def __init__(self, network: torch.nn.Module, temperature: Sequence[float]):
        super().__init__()
        self.network, self.temperature = network, [float(t) for t in temperature]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_temperature(self.network(x), self.temperature)


class Predictor:
    """An ensemble of segmentation checkpoints that segments one case at a time.

    Args:
        modules: :class:`~brainsegfounder.tasks.segmentation.SegmentationModule` s that agree on
            modalities, region scheme and preprocessing (:meth:`from_checkpoints` checks that).
        device: where the networks run.
        tta: also average over the 8 mirrorings of the volume (8x the time).
        overlap: sliding-window overlap (default: each checkpoint's ``sw_overlap``).
        sw_batch_size: windows per forward pass (default: each checkpoint's on a GPU, 1 on a CPU:
            see :data:`CPU_SW_BATCH_SIZE`).
        roi_size: window size in voxels (default: each checkpoint's ``roi_size``).
        threshold: probability above which a voxel belongs to a region (default: the checkpoint's).
        precision: ``"32"`` or ``"bf16"`` (autocast; meant for CUDA).
        modalities: modality names in channel order, if the checkpoints do not record them; for
            checkpoints that do, a subset of theirs forces the others missing (a robustness study).
        sources: where the checkpoints came from (for messages).
        bbox: crop to the non-zero voxels of all modalities (plus 2 voxels) before normalising,
            and run the sliding window there only: the window grid is anchored to the brain (as
            nnU-Net crops to the non-zero region), so empty space around the head changes
            nothing; background outside. ``False``: MONAI's grid over the whole volume (what
            validation during training and the exported MONAI Bundle run).
        fast: the brain's own box and overlap 0.25 (unless ``overlap`` is given): faster, not
            identical (docs/export.md states the measured difference).
        engine: ``torch``, or ``onnxruntime`` (the network exported once to ONNX and run by ONNX
            Runtime on the CPU; the same windows, logits within 1e-3).
        postprocess: ``none``, or ``largest``: keep only the largest connected lesion (one-lesion
            diseases such as glioma; :mod:`brainsegfounder.evaluation.postprocessing`), or ``auto``:
            the rule the checkpoints' validation chose (``largest`` only if every member chose it);
            :attr:`postprocess` holds the rule applied, :attr:`postprocess_reason` why.

    Attributes:
        replace_non_finite: set NaN/Inf input voxels to 0 before the preprocessing (``predict
            --non_finite zero`` sets it after counting them); off: they reach the network as they are.
    """

    replace_non_finite: bool = False

    def __init__(self, modules: Sequence, device: str | torch.device = "cpu", tta: bool = False,
                 overlap: float | None = None, sw_batch_size: int | None = None,
                 roi_size: int | Sequence[int] | None = None, threshold: float | None = None,
                 precision: str = "32", modalities: Sequence[str] | None = None,
                 sources: Sequence[str] | None = None, bbox: bool = True, fast: bool = False,
                 engine: str = "torch", postprocess: str = "none"):
        if not modules:
            raise WeightsError("no checkpoint given: pass at least one --ckpt.")
        if precision not in ("32", "bf16"):
            raise ConfigError(f"--precision {precision!r}: choose 32 or bf16.")
        self.modules = list(modules)
        self.device = resolve_device(device)
        self.tta, self.precision = tta, precision
        self.postprocess, self.postprocess_reason = resolve_rule(  # refuses an unknown rule now
            postprocess, [getattr(m, "postprocess_choice", None) for m in self.modules])
        first = self.modules[0]
        self.roi_sizes = [as_triple(roi_size) if roi_size is not None else m.roi_size for m in self.modules]
        default_batch = CPU_SW_BATCH_SIZE if self.device.type == "cpu" else None
        self.sw_batch_sizes = [sw_batch_size or default_batch or m.hparams.sw_batch_size for m in self.modules]
        if engine not in ("torch", "onnxruntime"):
            raise ConfigError(f"--engine {engine!r}: choose torch or onnxruntime.")
        # --fast: the brain's own box (not the full volume's window grid) at a lower overlap.
        self.bbox, self.align, self.engine = bool(bbox or fast), not fast, engine
        if fast and overlap is None:
            from brainsegfounder.models.brain_box import FAST_OVERLAP

            overlap = FAST_OVERLAP
        self.overlaps = [m.hparams.sw_overlap if overlap is None else overlap for m in self.modules]
        check_window(self.roi_sizes, self.overlaps)
        self.scheme: RegionScheme = first.scheme
        self.in_channels = int(first.hparams.in_channels)
        self.threshold = float(threshold if threshold is not None else first.hparams.threshold)
        self.record = _record(first)
        self.spacing = self.record.spacing if self.record else None
        self.crop_to_brain = bool(self.record.crop_to_brain) if self.record else False
        recorded = modalities_of(first)
        self.sources = [str(s) for s in sources] if sources else [f"checkpoint {i}" for i in range(len(self.modules))]
        # What every member can do without; an ensemble accepts only what all of its members accept.
        self.accepts_missing = tuple(m for m in (recorded or ())
                                     if all(m in accepted_missing(module) for module in self.modules))
        self.subset: tuple[str, ...] | None = None
        if modalities:  # "t1,flair" or ["t1", "flair"]
            listed = [modalities] if isinstance(modalities, str) else modalities
            modalities = [n.strip() for m in listed for n in str(m).split(",") if n.strip()]
        if modalities and recorded:
            chosen = parse_modalities(modalities, recorded)
            self.subset = chosen if len(chosen) < len(recorded) else None
            modalities = None
        self.modalities: tuple[str, ...] | None = tuple(modalities) if modalities else recorded
        self.temperatures = [getattr(m, "temperature", None) for m in self.modules]
        runners = self.modules
        if engine == "onnxruntime":
            from brainsegfounder.inference.engines import OnnxRuntimeNetwork

            runners = [OnnxRuntimeNetwork(m) for m in self.modules]
        self.networks = [_Calibrated(r, t) if t else r for r, t in zip(runners, self.temperatures, strict=True)]
        thresholds = [getattr(m, "flag_threshold", None) for m in self.modules]
        known = [t for t in thresholds if t is not None]
        #: The quality score above which a case is flagged (the calibrated one; the largest of an ensemble's).
        self.flag_threshold: float | None = max(known) if known else None
        #: The same read the way people read it: the expected Dice below which a case is flagged.
        self.flag_below: float | None = None if self.flag_threshold is None else 1.0 - self.flag_threshold
        #: How many validation cases that threshold was fitted on (None: not recorded).
        self.flag_cases: int | None = next((getattr(m, "flag_cases", None) for m, t in zip(self.modules, thresholds,
                                                                                         strict=True)
                                            if t is not None and t == self.flag_threshold), None)
        #: Whether every member's probabilities were calibrated (temperatures): only then is the
        #: expected Dice of a case an expected Dice.
        self.calibrated: bool = all(t is not None for t in self.temperatures)
        #: Validation Dice per region for each modality subset (``calibrate``), averaged over the
        #: members that measured it; ``{}`` when none did.
        self.subset_dice: dict[str, list[float]] = mean_subset_dice(
            [getattr(m, "subset_dice", None) for m in self.modules])
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
        check_ensemble(modules, paths)
        if not kwargs.get("modalities") and modalities_of(modules[0]) is None:
            named = [modalities_of(m) for m in modules if modalities_of(m)]
            kwargs["modalities"] = named[0] if named else None
        kwargs.setdefault("sources", [str(p) for p in paths])
        return cls(modules, target, **kwargs)

    # -- the pieces of one prediction ------------------------------------------------------------
    def transform(self) -> tio.Compose:
        """The deterministic preprocessing of training; ``copy=False`` as the loaded subject is ours.

        Before it: a constant non-zero background is set to 0 (:mod:`brainsegfounder.data.conform`);
        with the brain box (the default), every image is cropped to the non-zero voxels of all
        modalities before padding and normalisation, so the window grid is anchored to the brain
        and padding the input with empty space does not change the label map.
        """
        largest = tuple(max(s[i] for s in self.roi_sizes) for i in range(3))
        if self.record:
            steps = self.record.transforms(largest, self.replace_non_finite)
        else:
            steps = [ReplaceNonFinite()] if self.replace_non_finite else []
            steps += preprocessing(largest)
        if self.bbox:
            at = next(i for i, t in enumerate(steps) if isinstance(t, (PadToMinimumShape, tio.ZNormalization)))
            steps.insert(at, CropToForeground())
        first = 1 if self.replace_non_finite else 0  # after NaN -> 0, so a NaN border is no "value"
        steps.insert(first, ZeroConstantBackground())
        return tio.Compose(steps, copy=False)

    def probabilities(self, x: torch.Tensor, variance: bool = False):
        """Mean sigmoid probabilities ``(1, R, X, Y, Z)`` over checkpoints (and mirrorings) of ``x``.

        ``x`` is a preprocessed ``(1, C, X, Y, Z)`` volume. Runs under ``torch.inference_mode``.
        With ``variance``, returns ``(mean, variance across members)``; the members (checkpoints
        x mirrorings) are summed as they come (sum and sum of squares), so memory does not grow
        with their number. The variance is ``None`` for a single member.
        """
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            x = x.to(self.device)
            if not variance:
                return sliding_window_probabilities(x, self.networks, self.roi_sizes, self.sw_batch_sizes,
                                                    self.overlaps, tta=self.tta, bbox=self.bbox, align=self.align)
            total = squares = None
            count = 0
            for p in member_probabilities(x, self.networks, self.roi_sizes, self.sw_batch_sizes, self.overlaps,
                                          tta=self.tta, bbox=self.bbox, align=self.align):
                total = p.clone() if total is None else total.add_(p)
                squares = p * p if squares is None else squares.add_(p * p)
                count += 1
            mean = total / count
            spread = (squares / count - mean * mean).clamp_(min=0) if count > 1 else None
            return mean, spread

    def missing_of(self, case: CaseFiles) -> tuple[str, ...]:
        """The modalities ``case`` is predicted without (absent files, or left out by a forced subset)."""
        names = self.modalities or tuple(case.images)
        return tuple(m for m in names if case.images.get(m) is None or (self.subset is not None and m not in self.subset))

    def check_case(self, case: CaseFiles) -> tuple[str, ...]:
        """The case's missing modalities; a :class:`DataError` when the checkpoints need them.

        The message names the missing files, the checkpoints and how to train a model that does
        without them.
        """
        missing = self.missing_of(case)
        refused = [m for m in missing if m not in self.accepts_missing]
        if not refused:
            if len(missing) == len(self.modalities or case.images):
                raise DataError(f"subject {case.subject_id}: none of the model's modalities "
                                f"{list(self.modalities or ())} is there; at least one is needed.")
            return missing
        expected = case.extra.get("expected", {}) if isinstance(case.extra, dict) else {}
        files = ", ".join(f"{m} ({expected[m]})" if m in expected else m for m in refused)
        absent = [m for m in refused if case.images.get(m) is None]
        why = "lacks" if absent else "is asked (--modalities) to do without"
        raise DataError(
            f"subject {case.subject_id} {why} modality {files}, and {', '.join(self.sources)} "
            f"{'was' if len(self.sources) == 1 else 'were'} trained with all of {', '.join(self.modalities or ())} "
            "(no modality dropout), so it cannot predict without it. Add the file(s), or use a checkpoint "
            "trained with data.modality_dropout: python -m brainsegfounder.fit --config "
            "experiments/brats_anymodal.yaml (or experiments/demo_anymodal.yaml on CPU).")

    def reliability(self, missing: Sequence[str]) -> list[float] | None:
        """Per region, the share of validation Dice kept without ``missing`` (``subset_reliability``)."""
        return subset_reliability(self.subset_dice, self.modalities or (), missing)

    def predict_case(self, case: CaseFiles, keep_image: bool = False, uncertainty: bool = False) -> CasePrediction:
        """Segment one case and return its label map and probabilities on the input's own grid.

        ``uncertainty`` adds the entropy map, the member variance and the quality score.
        """
        missing = self.check_case(case)
        channels = list(self.modalities or case.images)
        if len(channels) != self.in_channels:
            raise DataError(f"subject {case.subject_id}: {len(channels)} modalities but the network takes "
                            f"{self.in_channels}.")
        names = [m for m in channels if m not in missing]
        first = nib.load(str(case.images[names[0]]))
        subject = tio.Subject({name: tio.ScalarImage(case.images[name]) for name in names})
        try:
            subject.load()
        except Exception as err:  # nibabel and gzip raise many kinds for broken files
            raise DataError(f"subject {case.subject_id}: cannot read its images ({type(err).__name__}: "
                            f"{err}). Check the files {', '.join(map(str, case.images.values()))}.") from None
        original = subject[names[0]]
        shape, affine = tuple(original.spatial_shape), original.affine.copy()
        image = original.data[0].numpy().copy() if keep_image else None

        processed = self.transform()(subject)
        # Missing channels: the constant training's modality dropout used (after the z-score).
        x = missing_channels_tensor({m: processed[m].data for m in names}, channels,
                                    case=f"subject {case.subject_id}").unsqueeze(0)
        if uncertainty:
            mean, spread = self.probabilities(x, variance=True)
        else:
            mean, spread = self.probabilities(x), None
        probs = mean[0].cpu()
        regions = probs.shape[0]
        if spread is not None:
            probs = torch.cat([probs, spread[0].cpu()])  # mapped back together, in one resampling
        processed_affine = processed[names[0]].affine
        if tuple(probs.shape[1:]) != shape or not np.allclose(processed_affine, affine, atol=1e-4):
            # Back onto the input's grid (undoing reorientation, padding, resampling, cropping) by
            # linear interpolation of the probabilities (0 outside the processed volume), so the
            # threshold acts on the input's own voxels.
            back = tio.Resample((shape, affine), image_interpolation="linear")
            mapped = back(tio.Subject(p=tio.ScalarImage(tensor=probs, affine=processed_affine)))
            probs = mapped["p"].data
        probs, variance = probs[:regions], (probs[regions:].numpy() if spread is not None else None)
        label = postprocess_label(self.scheme.to_label((probs > self.threshold).unsqueeze(0))[0, 0].numpy(),
                                  self.postprocess)
        spacing = tuple(float(z) for z in first.header.get_zooms()[:3])
        entropy = combined_entropy(probs).numpy() if uncertainty else None
        quality = quality_score(probs, self.threshold, reliability=self.reliability(missing)) if uncertainty else None
        return CasePrediction(case.subject_id, label, probs.numpy().astype(np.float32, copy=False),
                              first.affine, first.header, spacing, image, missing, entropy, variance, quality)
