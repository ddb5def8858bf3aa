"""Enhanced (multi-frame) MR DICOM: one file holds the whole series, its geometry in functional groups.

Newer scanners (Siemens XA, Philips) export a series as one Enhanced MR Image (or a Legacy
Converted Enhanced MR Image) file: no top-level ImagePositionPatient; each frame's position sits in
``PerFrameFunctionalGroupsSequence[i].PlanePositionSequence``, the orientation, pixel spacing and
rescale in the shared (or per-frame) groups, the echo and repetition times in ``MREchoSequence`` and
``MRTimingAndRelatedParametersSequence`` (or, converted from single frames, in the unassigned
converted attributes). :func:`frame_headers` gives one header per frame with
the attributes a single-frame slice carries, so the study reader checks frames exactly as it
checks slices (orientation, missing frame, repeated position, size); :func:`read_multiframe` reads
the voxels with pydicom in position order, rescaled, as a SimpleITK volume on the frames' grid; and
:func:`frame_order` is that order (what the DICOM SEG maps back to the file's frame numbers).

Example:
    >>> from brainsegfounder.clinical.multiframe import is_multiframe  # doctest: +SKIP
    >>> is_multiframe(pydicom.dcmread("IM0001.dcm", stop_before_pixels=True))  # doctest: +SKIP
    True
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

__all__ = ["is_multiframe", "frame_headers", "frame_order", "mr_tags", "read_multiframe"]


def is_multiframe(ds) -> bool:
    """Whether ``ds`` is a multi-frame image with per-frame functional groups (Enhanced MR and kin)."""
    return int(ds.get("NumberOfFrames", 1) or 1) > 1 and "PerFrameFunctionalGroupsSequence" in ds


def _group(ds, index: int, sequence: str):
    """The first item of ``sequence`` in frame ``index``'s groups, else in the shared groups, else None."""
    for groups in (ds.PerFrameFunctionalGroupsSequence[index], (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if groups is not None and sequence in groups and len(groups[sequence].value):
            return groups[sequence][0]
    return None


def frame_headers(ds) -> list[SimpleNamespace]:
    """One header per frame: ImageOrientationPatient, ImagePositionPatient, PixelSpacing, Rows, Columns."""
    headers = []
    for k in range(int(ds.NumberOfFrames)):
        orientation, position = _group(ds, k, "PlaneOrientationSequence"), _group(ds, k, "PlanePositionSequence")
        measures = _group(ds, k, "PixelMeasuresSequence")
        header = SimpleNamespace(Rows=int(ds.Rows), Columns=int(ds.Columns))
        if orientation is not None and position is not None and measures is not None:
            header.ImageOrientationPatient = [float(v) for v in orientation.ImageOrientationPatient]
            header.ImagePositionPatient = [float(v) for v in position.ImagePositionPatient]
            header.PixelSpacing = [float(v) for v in measures.PixelSpacing]
        headers.append(header)
    return headers


def frame_order(ds) -> list[int]:
    """The frames' indices (0-based) sorted by position along the slice normal."""
    headers = frame_headers(ds)
    iop = np.array(headers[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    return [int(i) for i in np.argsort([np.array(h.ImagePositionPatient, float) @ normal for h in headers])]


def mr_tags(ds) -> dict:
    """The sequence tags the modality rules read, from the functional groups where the top level lacks them."""
    out = {}
    echo, timing = _group(ds, 0, "MREchoSequence"), _group(ds, 0, "MRTimingAndRelatedParametersSequence")
    modifier = _group(ds, 0, "MRModifierSequence")
    if echo is not None and echo.get("EffectiveEchoTime") not in (None, ""):
        out["EchoTime"] = float(echo.EffectiveEchoTime)
    if timing is not None and timing.get("RepetitionTime") not in (None, ""):
        out["RepetitionTime"] = float(timing.RepetitionTime)
    if modifier is not None and modifier.get("InversionTimes"):
        out["InversionTime"] = float(modifier.InversionTimes[0])
    for sequence in ("UnassignedSharedConvertedAttributesSequence", "UnassignedPerFrameConvertedAttributesSequence"):
        converted = _group(ds, 0, sequence)  # a Legacy Converted Enhanced MR keeps the old tags here
        for key in ("EchoTime", "RepetitionTime", "InversionTime"):
            if key not in out and converted is not None and converted.get(key) not in (None, ""):
                out[key] = float(converted.get(key))
    return out


def read_multiframe(path, order: list[int] | None = None):
    """The series in one multi-frame file as a SimpleITK float32 volume, frames in position order,
    each rescaled by its (or the shared) PixelValueTransformation."""
    import pydicom
    import SimpleITK as sitk

    ds = pydicom.dcmread(path)
    order = frame_order(ds) if order is None else order
    stored = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    voxels = np.empty(stored.shape, np.float32)
    for k, frame in enumerate(order):
        rescale = _group(ds, frame, "PixelValueTransformationSequence")
        slope = float(rescale.get("RescaleSlope", 1) if rescale is not None else ds.get("RescaleSlope", 1))
        intercept = float(rescale.get("RescaleIntercept", 0) if rescale is not None else ds.get("RescaleIntercept", 0))
        voxels[k] = stored[frame] * slope + intercept
    headers = frame_headers(ds)
    first, rows_cols = headers[order[0]], np.array(headers[0].ImageOrientationPatient, float)
    normal = np.cross(rows_cols[:3], rows_cols[3:])
    positions = [np.array(headers[i].ImagePositionPatient, float) @ normal for i in order]
    step = float(np.median(np.diff(positions))) if len(order) > 1 else 1.0
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((first.PixelSpacing[1], first.PixelSpacing[0], step))  # columns, rows, slices
    image.SetOrigin(first.ImagePositionPatient)
    image.SetDirection(np.column_stack([rows_cols[:3], rows_cols[3:], normal]).ravel().tolist())
    return image
