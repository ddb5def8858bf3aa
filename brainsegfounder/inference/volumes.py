"""Region volumes in mL and the cells of volumes.csv: computed from a label map, read back from a file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.metrics import volume_ml

__all__ = ["region_volumes", "volume_columns", "volumes_from_file"]


def region_volumes(label: np.ndarray, scheme: RegionScheme, spacing: Sequence[float]) -> dict[str, float]:
    """``{"<region>_ml": volume}`` of a label map with voxels of ``spacing`` mm (the ``volumes.csv`` columns)."""
    regions = scheme.to_regions(torch.from_numpy(np.asarray(label).astype(np.int16))[None, None])[0]
    return {f"{name}_ml": volume_ml(regions[i].numpy() > 0, spacing) for i, name in enumerate(scheme.names)}


def volume_columns(scheme: RegionScheme) -> list[str]:
    """``<region>_ml`` per output channel, the region columns of ``volumes.csv``."""
    return [f"{name}_ml" for name in scheme.names]


def volumes_from_file(path: Path, scheme: RegionScheme) -> dict[str, float]:
    """:func:`region_volumes` of a label map on disk (its own voxel spacing)."""
    image = nib.load(str(path))
    return region_volumes(np.asanyarray(image.dataobj), scheme, image.header.get_zooms()[:3])


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _parse(column: str, text: str):
    """A ``volumes.csv`` cell back to its value: mL and expected Dice (or an older file's quality) as
    floats, counts as ints, else text."""
    if column.endswith("_ml"):
        return float(text or 0)
    if column in ("expected_dice", "quality") and text:
        return float(text)
    if column == "non_finite_voxels" and text:
        return int(float(text))
    return text


def _table_columns(rows: dict[str, dict], columns: list[str]) -> list[str]:
    """``columns``, then any other column a row carries (another run's optional columns are kept)."""
    extra = dict.fromkeys(c for row in rows.values() for c in row if c not in columns and c != "case_id")
    return [*columns, *extra]


