"""Segment new scans with trained checkpoints: NIfTI in, NIfTI out on the input's own voxel grid.

::

    python -m brainsegfounder.predict --ckpt runs/brats/fold0.ckpt --ckpt runs/brats/fold1.ckpt \\
        --input /data/BraTS2021_Validation --output runs/predictions --png runs/overlays

``--input`` is one of:

- a data set root in any registered layout (``brainsegfounder.data.layouts.LAYOUTS``: BraTS 2021,
  BraTS 2023, and whatever other readers register);
- one case folder (its files are matched to the checkpoint's modalities by their name endings,
  ``..._flair.nii.gz``; the case id is the folder's name);
- the image files of one case, one per modality, in the checkpoint's modality order
  (``--input a_flair.nii.gz a_t1ce.nii.gz a_t1.nii.gz a_t2.nii.gz``).

Each case is preprocessed as training did (canonical RAS, the training spacing and crop if any,
padding, z-score over the brain), segmented by MONAI Gaussian sliding-window inference (several
``--ckpt`` form an ensemble: the mean of their probabilities; ``--tta`` adds the mean over the
8 mirrorings), and its probabilities are mapped back onto the input's exact grid (same shape,
affine and orientation) before thresholding. The label convention comes from the checkpoint's
region scheme: BraTS 2021 writes 1 (NCR), 2 (ED), 4 (ET); BraTS 2023 1, 2, 3; a lesion task 1.

Outputs in ``--output``: ``<case_id>.nii.gz`` (what ``brainsegfounder.evaluate`` pairs on),
``probabilities/<case_id>.nii.gz`` with ``--probabilities`` (one channel per region, 0..1 stored in
8 bits), ``volumes.csv`` (mL per region and case) and with ``--png DIR`` one overlay per case.
Files are written under a temporary name and renamed; the output may not lie inside an input
case folder; nothing existing is replaced without ``--overwrite``, and cases already written are
skipped, so an interrupted run resumes where it stopped.

From Python:

>>> from brainsegfounder.predict import Predictor, find_inputs  # doctest: +SKIP
>>> predictor = Predictor.from_checkpoints(["fold0.ckpt"], device="cpu")  # doctest: +SKIP
>>> case = find_inputs(["/data/BraTS2021_00000"], predictor.modalities)[0]  # doctest: +SKIP
>>> result = predictor.predict_case(case)  # doctest: +SKIP
>>> result.label.shape, sorted(set(result.label.ravel()))  # doctest: +SKIP
((240, 240, 155), [0, 1, 2, 4])
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio
from jsonargparse import ActionConfigFile, ArgumentParser
from monai.inferers import sliding_window_inference
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from brainsegfounder.data.datamodule import as_triple
from brainsegfounder.data.layouts import LAYOUTS, CaseFiles, find_cases
from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.data.transforms import preprocessing
from brainsegfounder.data.validation import validate_cases
from brainsegfounder.errors import BrainSegFounderError, DataError, WeightsError
from brainsegfounder.metrics import volume_ml

__all__ = ["CasePrediction", "Predictor", "find_inputs", "main", "predict"]

_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
PROBABILITY_FOLDER = "probabilities"
VOLUMES_FILE = "volumes.csv"
_PARTIAL_FOLDER = ".partial"
_MAX_LISTED = 10


# --------------------------------------------------------------------------------------------------
# Checkpoints


def _scheme_key(scheme: RegionScheme) -> tuple:
    return scheme.names, scheme.labels, scheme.paint


def _load_module(path: Path, device: torch.device):
    # Imported here: Lightning and the network are only needed once checkpoints are read.
    from brainsegfounder.tasks.segmentation import SegmentationModule

    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist. Pass the .ckpt file a fit run wrote "
                           "(runs/<name>/finetune/version_N/checkpoints/best-*.ckpt or last.ckpt).")
    try:
        module = SegmentationModule.load_from_checkpoint(path, map_location=device, weights_only=True)
    except Exception as err:  # torch, pickle and Lightning raise many kinds for foreign files
        raise WeightsError(f"checkpoint {path} cannot be read as a segmentation checkpoint "
                           f"({type(err).__name__}: {err}). Pass a checkpoint written by "
                           "`python -m brainsegfounder.fit` with the segmentation task.") from None
    return module.eval().to(device)


def _modalities_of(module) -> tuple[str, ...] | None:
    names = module.preprocessing_settings.get("modalities") or module.hparams.get("modalities")
    return tuple(names) if names else None


# --------------------------------------------------------------------------------------------------
# Finding the cases


def _stem(path: Path) -> str:
    return _NIFTI.sub("", path.name)


def _ends_with_modality(stem: str, modality: str) -> bool:
    return re.search(rf"(^|[_-]){re.escape(modality)}$", stem, re.IGNORECASE) is not None


def _case_from_files(paths: list[Path], modalities: Sequence[str] | None, in_channels: int) -> CaseFiles:
    if len(paths) != in_channels:
        order = f" in the order {', '.join(modalities)}" if modalities else ""
        raise DataError(f"{len(paths)} image file(s) given but the checkpoint takes {in_channels} "
                        f"modalities{order}: pass one file per modality, or a case folder.")
    not_nifti = [p for p in paths if not _NIFTI.search(p.name)]
    if not_nifti:
        raise DataError(f"not NIfTI files (.nii or .nii.gz): {', '.join(map(str, not_nifti))}.")
    names = list(modalities) if modalities else [f"channel{i}" for i in range(in_channels)]
    if modalities:
        # A file named after another modality than its position says is the commonest slip.
        for position, path in enumerate(paths):
            named = [m for m in modalities if _ends_with_modality(_stem(path), m)]
            if named and names[position] not in named:
                raise DataError(f"{path} looks like modality {named[0]!r} but stands at position "
                                f"{position + 1}, where the checkpoint expects {names[position]!r}. "
                                f"Give the files in the order {', '.join(modalities)}.")
    stem = _stem(paths[0])
    case_id = re.sub(rf"[_-]{re.escape(names[0])}$", "", stem, flags=re.IGNORECASE) or stem
    return CaseFiles(case_id, dict(zip(names, paths, strict=True)))


def _case_from_folder(folder: Path, modalities: Sequence[str]) -> CaseFiles | None:
    files = sorted(p for p in folder.rglob("*") if _NIFTI.search(p.name) and p.is_file())
    images = {}
    for modality in modalities:
        found = [p for p in files if _ends_with_modality(_stem(p), modality)]
        if len(found) > 1:
            raise DataError(f"case folder {folder}: {len(found)} files end in '{modality}' "
                            f"({', '.join(p.name for p in found)}); keep one, or pass the files explicitly.")
        if not found:
            return None
        images[modality] = found[0]
    return CaseFiles(folder.name, images)


def find_inputs(inputs: Sequence[str | Path], modalities: Sequence[str] | None, in_channels: int | None = None,
                layout: str | None = None) -> list[CaseFiles]:
    """The cases to predict, from a data set root, one case folder, or one case's files.

    Args:
        inputs: one folder (a data set root in a registered layout, or one case folder), or the
            image files of one case in ``modalities`` order.
        modalities: the checkpoint's modality names in channel order (None if it does not record
            them: a data set root's layout then names them, files are taken in the order given).
        in_channels: the number of modalities the network takes (default: ``len(modalities)``).
        layout: force a layout by name instead of trying each registered one.

    Returns:
        One :class:`CaseFiles` per case, ``images`` in channel order.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "BraTS2021_00007"; folder.mkdir()
    >>> for m in ("flair", "t1", "t1ce", "t2"): _ = (folder / f"BraTS2021_00007_{m}.nii.gz").write_bytes(b"")
    >>> case = find_inputs([folder], ("flair", "t1ce", "t1", "t2"))[0]
    >>> case.subject_id, [p.name for p in case.images.values()][:2]
    ('BraTS2021_00007', ['BraTS2021_00007_flair.nii.gz', 'BraTS2021_00007_t1ce.nii.gz'])
    """
    if in_channels is None:
        if modalities is None:
            raise ValueError("give the modalities or the number of input channels")
        in_channels = len(modalities)
    paths = [Path(p).expanduser() for p in inputs]
    if not paths:
        raise DataError("no --input given: pass a data set root, a case folder, or one case's files.")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(f"input(s) not found: {', '.join(map(str, missing))}. Check the path(s).")
    if len(paths) > 1 or paths[0].is_file():
        if any(p.is_dir() for p in paths):
            raise DataError("pass either one folder or a list of image files to --input, not a mix.")
        return [_case_from_files(paths, modalities, in_channels)]

    folder = paths[0]
    if layout is not None and layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}.")
    problems = []
    for name in [layout] if layout else list(LAYOUTS):
        spec = LAYOUTS[name]
        fits = set(modalities) <= set(spec.modalities) if modalities else len(spec.modalities) == in_channels
        if not fits:
            continue
        try:
            cases = find_cases(name, folder)
        except DataError as err:
            problems.append(f"{name}: {err}")
            continue
        names = list(modalities or spec.modalities)
        return [CaseFiles(c.subject_id, {m: c.images[m] for m in names}, fold=c.fold) for c in cases]
    if modalities:
        case = _case_from_folder(folder, modalities)
        if case is not None:
            return [case]
    tried = "\n  ".join(problems) if problems else "no registered layout takes these modalities"
    wanted = f"files ending in {', '.join(modalities)}" if modalities else f"{in_channels} modality files"
    raise DataError(f"no cases found under {folder}. It is neither a data set root in a known layout "
                    f"({', '.join(sorted(LAYOUTS))}) nor one case folder with {wanted}.\n  {tried}\n"
                    "Pass --layout, or the case's files one per modality.")


# --------------------------------------------------------------------------------------------------
# Predicting one case


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
        self.modules = list(modules)
        self.device = torch.device(device)
        self.tta, self.overlap, self.sw_batch_size = tta, overlap, sw_batch_size
        self.roi_size = as_triple(roi_size) if roi_size is not None else None
        if precision not in ("32", "bf16"):
            raise BrainSegFounderError(f"--precision {precision!r}: choose 32 or bf16.")
        self.precision = precision
        first = self.modules[0]
        self.scheme: RegionScheme = first.scheme
        self.in_channels = int(first.hparams.in_channels)
        self.threshold = float(threshold if threshold is not None else first.hparams.threshold)
        settings = first.preprocessing_settings
        self.spacing = settings.get("spacing")
        self.crop_to_brain = bool(settings.get("crop_to_brain", False))
        self.layout = settings.get("layout")
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
        target = _device(device)
        modules = [_load_module(Path(p).expanduser(), target) for p in paths]
        first, first_path = modules[0], paths[0]

        def describe(module) -> dict:
            settings = module.preprocessing_settings
            return {"input channels": int(module.hparams.in_channels), "modalities": _modalities_of(module),
                    "regions": _scheme_key(module.scheme), "spacing": settings.get("spacing"),
                    "crop_to_brain": bool(settings.get("crop_to_brain", False))}

        reference = describe(first)
        for module, path in zip(modules[1:], paths[1:], strict=True):
            for key, value in describe(module).items():
                if key == "modalities" and (value is None or reference[key] is None):
                    continue  # an older checkpoint that did not record them
                if value != reference[key]:
                    raise WeightsError(f"checkpoints {first_path} and {path} differ in {key} "
                                       f"({reference[key]} vs {value}); an ensemble needs members "
                                       "trained on the same inputs and regions.")
        if reference["modalities"] is None:
            named = [_modalities_of(m) for m in modules if _modalities_of(m)]
            if named and not kwargs.get("modalities"):
                kwargs["modalities"] = named[0]
        return cls(modules, target, **kwargs)

    # -- the pieces of one prediction ------------------------------------------------------------
    def transform(self) -> tio.Compose:
        """The deterministic preprocessing of training; ``copy=False`` as the loaded subject is ours."""
        sizes = [self.roi_size or m.roi_size for m in self.modules]
        largest = tuple(max(s[i] for s in sizes) for i in range(3))
        return tio.Compose(preprocessing(largest, self.spacing, self.crop_to_brain), copy=False)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Mean sigmoid probabilities ``(1, R, X, Y, Z)`` over checkpoints (and mirrorings) of ``x``.

        ``x`` is a preprocessed ``(1, C, X, Y, Z)`` volume; MONAI's Gaussian-weighted sliding window
        does the tiling. Runs under ``torch.inference_mode``.
        """
        flips = [()] + [axes for n in (1, 2, 3) for axes in itertools.combinations((2, 3, 4), n)] \
            if self.tta else [()]
        total = None
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            x = x.to(self.device)
            for module in self.modules:
                roi = self.roi_size or module.roi_size
                batch = self.sw_batch_size or module.hparams.sw_batch_size
                overlap = module.hparams.sw_overlap if self.overlap is None else self.overlap
                for axes in flips:
                    inputs = torch.flip(x, axes) if axes else x
                    logits = sliding_window_inference(inputs, roi, batch, module, overlap=overlap,
                                                      mode="gaussian")
                    probs = torch.sigmoid(logits.float())
                    if axes:
                        probs = torch.flip(probs, axes)
                    total = probs if total is None else total.add_(probs)
        return total / (len(self.modules) * len(flips))

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


def _device(name: str | torch.device) -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BrainSegFounderError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu "
                                   "or install a CUDA build of torch.")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise BrainSegFounderError(f"--device {name!r}: choose auto, cpu or cuda.")
    return torch.device(name)


# --------------------------------------------------------------------------------------------------
# Writing


def _atomic_save(image: nib.Nifti1Image, path: Path, partial_dir: Path) -> None:
    """Write under a temporary name in the output folder, then rename: never a truncated file in place."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    temporary = partial_dir / f"{os.getpid()}-{path.name}"
    nib.save(image, temporary)
    os.replace(temporary, path)


def _nifti(data: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header, dtype) -> nib.Nifti1Image:
    header = header.copy()
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(data, affine, header)
    image.header.set_xyzt_units("mm")
    return image


def _save_label(result: CasePrediction, path: Path, partial_dir: Path) -> None:
    _atomic_save(_nifti(result.label.astype(np.uint8), result.affine, result.header, np.uint8), path, partial_dir)


def _save_probabilities(result: CasePrediction, path: Path, partial_dir: Path) -> None:
    # Regions along the 4th axis; 8 bits with a 1/255 slope keep files small (resolution 0.004).
    data = np.moveaxis(result.probabilities, 0, -1)
    image = _nifti(np.clip(np.rint(data * 255), 0, 255).astype(np.uint8), result.affine, result.header, np.uint8)
    image.header.set_slope_inter(1 / 255, 0)
    _atomic_save(image, path, partial_dir)


def _volumes(label: np.ndarray, scheme: RegionScheme, spacing: Sequence[float]) -> dict[str, float]:
    regions = scheme.to_regions(torch.from_numpy(np.asarray(label).astype(np.int16))[None, None])[0]
    return {f"{name}_ml": volume_ml(regions[i].numpy() > 0, spacing) for i, name in enumerate(scheme.names)}


def _volumes_from_file(path: Path, scheme: RegionScheme) -> dict[str, float]:
    image = nib.load(str(path))
    return _volumes(np.asanyarray(image.dataobj), scheme, image.header.get_zooms()[:3])


def _write_volumes(path: Path, rows: dict[str, dict[str, float]], columns: list[str], partial_dir: Path) -> None:
    partial_dir.mkdir(parents=True, exist_ok=True)
    temporary = partial_dir / f"{os.getpid()}-{path.name}"
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case_id", *columns])
        writer.writeheader()
        for case_id in sorted(rows):
            writer.writerow({"case_id": case_id, **{c: f"{rows[case_id][c]:.4f}" for c in columns}})
    os.replace(temporary, path)


def _read_volumes(path: Path, columns: list[str], overwrite: bool) -> dict[str, dict[str, float]]:
    if not path.exists() or overwrite:
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["case_id", *columns]:
            raise BrainSegFounderError(
                f"{path} exists with columns {reader.fieldnames}, not {['case_id', *columns]} (another task's "
                "predictions?). Choose another --output, or pass --overwrite to replace it.")
        return {row["case_id"]: {c: float(row[c]) for c in columns} for row in reader}


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_output(output: Path, inputs: Sequence[Path], cases: list[CaseFiles]) -> None:
    output = output.expanduser().resolve()
    folders = {Path(p).expanduser().resolve().parent for case in cases for p in case.images.values()}
    folders |= {Path(p).expanduser().resolve() for p in inputs if Path(p).is_dir()}
    for folder in sorted(folders):
        if _inside(output, folder):
            raise BrainSegFounderError(f"--output {output} lies inside the input folder {folder}; predictions "
                                       "are never written among the input data. Choose a folder elsewhere.")
    if output.exists() and not output.is_dir():
        raise BrainSegFounderError(f"--output {output} exists and is not a folder; choose a folder.")


def _overlay(result: CasePrediction, scheme: RegionScheme, path: Path) -> None:
    from brainsegfounder.visualize import save_overlay  # matplotlib only when pictures are asked for

    volumes = _volumes(result.label, scheme, result.spacing)
    title = f"{result.case_id}   " + "  ".join(f"{k[:-3]} {v:.1f} mL" for k, v in volumes.items())
    save_overlay(result.image, result.label, path, title=title, scheme=scheme, spacing=result.spacing)


# --------------------------------------------------------------------------------------------------
# The command


def predict(
    ckpt: Sequence[str | Path],
    input: Sequence[str | Path],
    output: str | Path,
    probabilities: bool = False,
    png: str | Path | None = None,
    overwrite: bool = False,
    tta: bool = False,
    overlap: float | None = None,
    sw_batch_size: int | None = None,
    roi_size: int | None = None,
    threshold: float | None = None,
    device: str = "auto",
    precision: str = "32",
    layout: str | None = None,
    modalities: Sequence[str] | None = None,
    console: Console | None = None,
) -> dict[str, dict[str, float]]:
    """Segment every case of ``input`` with the ensemble of ``ckpt`` and write the results to ``output``.

    Returns the volumes (mL per region) of every case in ``volumes.csv``, by case id. Arguments are
    those of the command line (``python -m brainsegfounder.predict --help``).
    """
    console = console or Console(stderr=True)
    output = Path(output).expanduser()
    predictor = Predictor.from_checkpoints(ckpt, device=device, tta=tta, overlap=overlap,
                                           sw_batch_size=sw_batch_size, roi_size=roi_size,
                                           threshold=threshold, precision=precision, modalities=modalities)
    cases = find_inputs(input, predictor.modalities, predictor.in_channels, layout or None)
    _check_output(output, [Path(p) for p in input], cases)
    # Headers of every case before any work: a broken or mismatched file stops the run up front.
    validate_cases(cases, read_data=False)

    columns = [f"{name}_ml" for name in predictor.scheme.names]
    volumes_path = output / VOLUMES_FILE
    output.mkdir(parents=True, exist_ok=True)
    partial_dir = output / _PARTIAL_FOLDER
    volumes = _read_volumes(volumes_path, columns, overwrite)
    png_dir = Path(png).expanduser() if png is not None else None

    def targets(case_id: str) -> list[Path]:
        paths = [output / f"{case_id}.nii.gz"]
        if probabilities:
            paths.append(output / PROBABILITY_FOLDER / f"{case_id}.nii.gz")
        if png_dir is not None:
            paths.append(png_dir / f"{case_id}.png")
        return paths

    todo = [c for c in cases if overwrite or not all(p.exists() for p in targets(c.subject_id))]
    skipped = [c for c in cases if c not in todo]
    if probabilities:
        (output / PROBABILITY_FOLDER).mkdir(exist_ok=True)
    columns_progress = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns_progress, console=console, transient=True) as progress:
        task = progress.add_task("predicting", total=len(todo))
        for case in todo:
            progress.update(task, description=f"predicting {escape(case.subject_id)}")
            label_path, *_ = paths = targets(case.subject_id)
            result = predictor.predict_case(case, keep_image=png_dir is not None)
            for path in paths:
                if path.exists() and not overwrite:
                    continue  # a file of an earlier run: kept; only the missing ones are written
                if path == label_path:
                    _save_label(result, path, partial_dir)
                elif path.suffix == ".png":
                    _overlay(result, predictor.scheme, path)
                else:
                    _save_probabilities(result, path, partial_dir)
            volumes[case.subject_id] = _volumes(result.label, predictor.scheme, result.spacing)
            # Rewritten after every case, so an interrupted run leaves a consistent table behind.
            _write_volumes(volumes_path, volumes, columns, partial_dir)
            progress.advance(task)
    for case in skipped:
        if case.subject_id not in volumes:
            volumes[case.subject_id] = _volumes_from_file(output / f"{case.subject_id}.nii.gz", predictor.scheme)
    _write_volumes(volumes_path, volumes, columns, partial_dir)
    shutil.rmtree(partial_dir, ignore_errors=True)

    if skipped:
        console.print(f"skipped {len(skipped)} case(s) already predicted in {output} "
                      "(pass --overwrite to predict them again)", soft_wrap=True)
    console.print(f"wrote {len(todo)} prediction(s) to {output} and volumes to {volumes_path}"
                  + (f", overlays to {png_dir}" if png_dir is not None else ""), soft_wrap=True)
    return volumes


def build_parser() -> ArgumentParser:
    """The command line (jsonargparse: ``--config`` YAML files and ``--print_config`` work too)."""
    parser = ArgumentParser(prog="python -m brainsegfounder.predict", default_env=False,
                            description="Segment NIfTI scans with trained BrainSegFounder checkpoints; "
                                        "outputs are written on each input's own voxel grid.")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of these options")
    parser.add_argument("--ckpt", type=str, nargs="+", action="append", required=True,
                        help="segmentation checkpoint(s); several (repeat --ckpt, or list them) form an "
                             "ensemble, e.g. the 5 folds")
    parser.add_argument("--input", type=str, nargs="+", action="append", required=True,
                        help="a data set root in any supported layout, one case folder, or one case's "
                             "files in the checkpoint's modality order")
    parser.add_argument("--output", type=str, required=True,
                        help="folder for <case_id>.nii.gz, volumes.csv and probabilities/")
    flag = {"type": bool, "nargs": "?", "const": True, "default": False}
    parser.add_argument("--probabilities", **flag, help="also write probabilities/<case_id>.nii.gz")
    parser.add_argument("--png", type=str | None, default=None, help="folder for one overlay picture per case")
    parser.add_argument("--overwrite", **flag, help="predict cases again and replace their files")
    parser.add_argument("--tta", **flag, help="average over the 8 mirrorings (8x slower)")
    parser.add_argument("--overlap", type=float | None, default=None,
                        help="sliding-window overlap (default: the checkpoint's)")
    parser.add_argument("--sw_batch_size", type=int | None, default=None,
                        help="windows per forward pass (default: the checkpoint's)")
    parser.add_argument("--roi_size", type=int | None, default=None,
                        help="window side in voxels (default: the checkpoint's)")
    parser.add_argument("--threshold", type=float | None, default=None,
                        help="region probability threshold (default: the checkpoint's, usually 0.5)")
    parser.add_argument("--device", type=str, default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", type=str, default="32", help="32, or bf16 (autocast, for GPUs)")
    parser.add_argument("--layout", type=str | None, default=None,
                        help=f"force a data set layout ({', '.join(sorted(LAYOUTS))}); default: detect")
    parser.add_argument("--modalities", type=list[str] | None, default=None,
                        help="modality names in channel order, for checkpoints that do not record them")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a problem with the inputs)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("config", "__default_config__")}
    options["ckpt"] = [p for group in options["ckpt"] for p in group]
    options["input"] = [p for group in options["input"] for p in group]
    try:
        predict(**options)
    except BrainSegFounderError as err:
        # soft_wrap: paths in messages stay on one line, whole for copying.
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
