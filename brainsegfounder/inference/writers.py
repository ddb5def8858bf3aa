"""Writing predictions: label maps, probabilities and ``volumes.csv``, every file atomically.

Each file is written under a temporary name in ``<output>/.partial`` and renamed into place, so an
interrupted run never leaves a truncated file where a finished one is expected.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from brainsegfounder.data.layouts import CaseFiles
from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.errors import BrainSegFounderError
from brainsegfounder.inference.predictor import CasePrediction
from brainsegfounder.metrics import volume_ml

__all__ = ["PARTIAL_FOLDER", "PROBABILITY_FOLDER", "UNCERTAINTY_FOLDER", "VOLUMES_FILE", "check_output", "read_volumes", "region_volumes",
           "volumes_from_file", "write_label", "write_overlay", "write_probabilities", "write_uncertainty", "write_volumes"]

PROBABILITY_FOLDER = "probabilities"
UNCERTAINTY_FOLDER = "uncertainty"
VOLUMES_FILE = "volumes.csv"
PARTIAL_FOLDER = ".partial"



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


def write_label(result: CasePrediction, path: Path, partial_dir: Path) -> None:
    _atomic_save(_nifti(result.label.astype(np.uint8), result.affine, result.header, np.uint8), path, partial_dir)


def write_probabilities(result: CasePrediction, path: Path, partial_dir: Path) -> None:
    # Regions along the 4th axis; 8 bits with a 1/255 slope keep files small (resolution 0.004).
    data = np.moveaxis(result.probabilities, 0, -1)
    image = _nifti(np.clip(np.rint(data * 255), 0, 255).astype(np.uint8), result.affine, result.header, np.uint8)
    image.header.set_slope_inter(1 / 255, 0)
    _atomic_save(image, path, partial_dir)


def write_uncertainty(result: CasePrediction, folder: Path, partial_dir: Path) -> list[Path]:
    """``<case>_entropy.nii.gz`` (bits, 0..1) and, with several members, ``<case>_variance.nii.gz``.

    Both lie on the input's grid (its affine and header). The entropy is 3-D (the least sure
    region per voxel); the variance has one volume per region along the 4th axis. Float32: the
    values are small and their resolution matters.
    """
    if result.entropy is None:
        raise BrainSegFounderError(f"subject {result.case_id}: no uncertainty was computed; predict with "
                                   "uncertainty=True.")
    paths = [folder / f"{result.case_id}_entropy.nii.gz"]
    _atomic_save(_nifti(result.entropy.astype(np.float32), result.affine, result.header, np.float32),
                 paths[0], partial_dir)
    if result.variance is not None:
        paths.append(folder / f"{result.case_id}_variance.nii.gz")
        data = np.moveaxis(result.variance, 0, -1).astype(np.float32)
        _atomic_save(_nifti(data, result.affine, result.header, np.float32), paths[1], partial_dir)
    return paths


def region_volumes(label: np.ndarray, scheme: RegionScheme, spacing: Sequence[float]) -> dict[str, float]:
    """``{"<region>_ml": volume}`` of a label map with voxels of ``spacing`` mm (the ``volumes.csv`` columns)."""
    regions = scheme.to_regions(torch.from_numpy(np.asarray(label).astype(np.int16))[None, None])[0]
    return {f"{name}_ml": volume_ml(regions[i].numpy() > 0, spacing) for i, name in enumerate(scheme.names)}


def volumes_from_file(path: Path, scheme: RegionScheme) -> dict[str, float]:
    image = nib.load(str(path))
    return region_volumes(np.asanyarray(image.dataobj), scheme, image.header.get_zooms()[:3])


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_volumes(path: Path, rows: dict[str, dict[str, float]], columns: list[str], partial_dir: Path) -> None:
    """``volumes.csv``: one row per case id (sorted), mL per region with 4 decimals.

    Optional columns: ``missing_modalities`` (``+``-joined names the case was predicted without),
    ``quality`` (the quality score, bits) and ``flag`` (``1`` when the quality score is above the
    threshold) when the predictor computed them.
    """
    partial_dir.mkdir(parents=True, exist_ok=True)
    temporary = partial_dir / f"{os.getpid()}-{path.name}"
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case_id", *columns])
        writer.writeheader()
        for case_id in sorted(rows):
            writer.writerow({"case_id": case_id, **{c: _cell(rows[case_id].get(c, "")) for c in columns}})
    os.replace(temporary, path)


def read_volumes(path: Path, columns: list[str], overwrite: bool) -> dict[str, dict[str, float]]:
    """The rows of an earlier run's ``volumes.csv`` (none with ``overwrite``), so a rerun resumes."""
    if not path.exists() or overwrite:
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["case_id", *columns]:
            raise BrainSegFounderError(
                f"{path} exists with columns {reader.fieldnames}, not {['case_id', *columns]} (another task's "
                "predictions?). Choose another --output, or pass --overwrite to replace it.")
        return {row["case_id"]: {c: float(row[c]) if c.endswith("_ml") or (c == "quality" and row[c]) else row[c]
                                 for c in columns} for row in reader}


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(output: Path, inputs: Sequence[Path], cases: list[CaseFiles]) -> None:
    """Refuse an output folder inside an input folder, or one that is a file."""
    output = output.expanduser().resolve()
    folders = {Path(p).expanduser().resolve().parent for case in cases for p in case.images.values()}
    folders |= {Path(p).expanduser().resolve() for p in inputs if Path(p).is_dir()}
    for folder in sorted(folders):
        if _inside(output, folder):
            raise BrainSegFounderError(f"--output {output} lies inside the input folder {folder}; predictions "
                                       "are never written among the input data. Choose a folder elsewhere.")
    if output.exists() and not output.is_dir():
        raise BrainSegFounderError(f"--output {output} exists and is not a folder; choose a folder.")


def write_overlay(result: CasePrediction, scheme: RegionScheme, path: Path) -> None:
    from brainsegfounder.visualize import save_overlay  # matplotlib only when pictures are asked for

    measured = region_volumes(result.label, scheme, result.spacing)
    title = f"{result.case_id}   " + "  ".join(f"{k[:-3]} {v:.1f} mL" for k, v in measured.items())
    save_overlay(result.image, result.label, path, title=title, scheme=scheme, spacing=result.spacing)
