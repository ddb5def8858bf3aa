"""Read one study: a folder of DICOM files (any tree) or of NIfTI series, as :class:`Series` objects.

DICOM files are grouped by SeriesInstanceUID from their headers alone (pydicom, no pixel data);
localizers, derived series (ADC, MPR, subtractions) and non-image objects are skipped with one line
each; what is left is checked before any pixel is read: one patient and one study per folder,
slices of one orientation at an even spacing (a gap is a missing slice), a sane size. The pixels
are read by SimpleITK's ImageSeriesReader, in the slice order of their positions. A series in one
multi-frame file (Enhanced MR) is checked frame by frame the same way and read by
:mod:`.multiframe`. Hand-written glue: pydicom reads headers, SimpleITK reads volumes.

Example:
    >>> from brainsegfounder.clinical.study import scan_dicom  # doctest: +SKIP
    >>> series, skipped = scan_dicom("study/")  # doctest: +SKIP
    >>> [s.label for s in series], skipped  # doctest: +SKIP
    (["3 'AX T2 FLAIR'", ...], ["1 'localizer' (a localizer)"])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainsegfounder.clinical.multiframe import frame_headers, is_multiframe, mr_tags, read_multiframe
from brainsegfounder.utils.errors import DataError
from brainsegfounder.utils.folders import files_below
from brainsegfounder.utils.optional import require

__all__ = ["Series", "scan_dicom", "read_series", "is_dicom_folder", "MAX_VOXELS"]

#: A series with more voxels than this is refused (float32: 1 GB), before its pixels are read.
MAX_VOXELS = 256 * 1024 * 1024
#: Words in a series' description or image type that mark a localizer.
_LOCALIZER_WORDS = ("localizer", "localiser", "scout", "survey", "3-plane", "3plane", "aahead", "tripilot")
#: Body parts a brain series may be labelled with (BodyPartExamined; empty is accepted).
_BRAIN_PARTS = ("", "BRAIN", "HEAD", "HEADNECK", "SKULL", "CRANIUM")
#: Slice gaps this much wider than the median spacing count as a missing slice.
_GAP = 1.5


@dataclass
class Series:
    """One series of a study: what its headers say, its files in slice order, or one NIfTI file."""

    uid: str
    number: int | None
    description: str
    files: list[Path]
    tags: dict = field(default_factory=dict)
    nifti: Path | None = None
    #: One multi-frame file (Enhanced MR): its frames' indices in position order (:mod:`.multiframe`).
    frames: list[int] | None = None

    @property
    def label(self) -> str:
        """How messages name the series: ``3 'AX T2 FLAIR'`` (DICOM) or the NIfTI file's name."""
        if self.nifti is not None:
            return self.nifti.name
        return f"{self.number if self.number is not None else '?'} {self.description!r}"

    @property
    def is_dicom(self) -> bool:
        return self.nifti is None


def is_dicom_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds DICOM files (a 128-byte preamble then ``DICM``) and no NIfTI file."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    for path in files_below(folder):
        if path.is_file():
            if path.name.endswith((".nii", ".nii.gz")):
                return False
            with path.open("rb") as handle:
                head = handle.read(132)
            if head[128:132] == b"DICM":
                return True
    return False


def _text(ds, key: str) -> str:
    value = ds.get(key, "")
    return "\\".join(map(str, value)) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" \
        else str(value or "")


def _skip_reason(ds, description: str, geometry=None) -> str | None:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    words = (description + " " + _text(ds, "ProtocolName")).lower()
    if "LOCALIZER" in image_type or any(w in words for w in _LOCALIZER_WORDS):
        return "a localizer"
    if image_type and image_type[0] == "DERIVED":
        return f"derived ({'/'.join(image_type[2:4]) or 'DERIVED'})"
    geometry = ds if geometry is None else geometry
    if not all(hasattr(geometry, key) for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")):
        return "not an image series with patient geometry"
    return None


def scan_dicom(folder: str | Path, max_voxels: int = MAX_VOXELS) -> tuple[list[Series], list[str]]:
    """The image series of the DICOM study in ``folder`` and one line per skipped series.

    Raises :class:`DataError` naming the series for: files of several patients or studies, a
    series with slices of several orientations (not a volume), a missing slice (uneven spacing),
    repeated slice positions, a series larger than ``max_voxels``, a body part that is not the head.
    """
    pydicom = require("pydicom")
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    groups: dict[str, list] = {}
    for path in sorted(p for p in files_below(folder) if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError):
            continue
        if "SeriesInstanceUID" in ds:
            groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    if not groups:
        raise DataError(f"{folder}: no DICOM series found (no file with a SeriesInstanceUID). Pass the folder "
                        "the scanner or PACS exported, or NIfTI files.")
    series, skipped = [], []
    for series_uid, members in groups.items():
        ds = members[0][1]
        description = _text(ds, "SeriesDescription") or _text(ds, "ProtocolName") or "(no description)"
        number = int(ds.SeriesNumber) if ds.get("SeriesNumber") not in (None, "") else None
        item = Series(series_uid, number, description, [p for p, _ in members], tags=_tags(ds))
        headers = [d for _, d in members]
        if is_multiframe(ds):
            if len(members) > 1:
                raise DataError(f"series {item.label} (SeriesInstanceUID {series_uid}): {len(members)} multi-frame "
                                "files in one series; export it as one Enhanced MR file, or as single slices.")
            headers, item.frames = frame_headers(ds), []
            item.tags.update({k: v for k, v in mr_tags(ds).items() if item.tags.get(k) is None})
        reason = _skip_reason(ds, description, headers[0])
        if reason is None and str(ds.get("Modality", "MR")) != "MR":
            reason = f"modality {ds.Modality}, not MR"
        if reason is not None:
            skipped.append(f"{item.label} ({reason})")
            continue
        _check_slices(item, headers, max_voxels)
        series.append(item)
    _check_one_study(series, folder)
    series.sort(key=lambda s: (s.number if s.number is not None else 10**9, s.uid))
    return series, skipped


def _tags(ds) -> dict:
    out = {}
    for key in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "ProtocolName", "ScanningSequence",
                "SequenceVariant", "MRAcquisitionType", "ContrastBolusAgent", "BodyPartExamined", "ImageType",
                "Modality", "SOPClassUID"):
        out[key] = _text(ds, key)
    for key in ("RepetitionTime", "EchoTime", "InversionTime"):
        value = ds.get(key)
        out[key] = float(value) if value not in (None, "") else None
    return out


def _check_slices(item: Series, headers: Sequence, max_voxels: int) -> None:
    name = f"series {item.label} (SeriesInstanceUID {item.uid})"
    part = item.tags.get("BodyPartExamined", "").upper()
    if part not in _BRAIN_PARTS:
        raise DataError(f"{name}: BodyPartExamined is {part!r}, not the head; this tool segments brain MRI. "
                        "Remove the series from the folder (or choose the brain series with --series).")
    orientations = {tuple(np.round(np.array(d.ImageOrientationPatient, float), 3)) for d in headers}
    if len(orientations) > 1:
        raise DataError(f"{name}: its {len(headers)} slices have {len(orientations)} orientations, so it is not one "
                        "volume (a multi-plane scout or a mixed export). Export the volume series alone.")
    iop = np.array(headers[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    positions = np.array([np.array(d.ImagePositionPatient, float) @ normal for d in headers])
    order = np.argsort(positions)
    if item.frames is not None:
        item.frames = [int(i) for i in order]
    else:
        item.files = [item.files[i] for i in order]
    rows, columns = int(headers[0].Rows), int(headers[0].Columns)
    voxels = rows * columns * len(headers)
    if voxels > max_voxels:
        raise DataError(f"{name}: {rows} x {columns} x {len(headers)} = {voxels:,} voxels, more than this tool reads "
                        f"({max_voxels:,}). Export a brain series at a clinical resolution, or leave this one out.")
    if len(headers) < 3:
        raise DataError(f"{name}: {len(headers)} slice(s); a volume needs at least 3. Export the whole series.")
    gaps = np.diff(positions[order])
    step = float(np.median(gaps))
    if np.min(gaps) < 1e-3 or step < 1e-3:
        raise DataError(f"{name}: two slices at the same position ({positions[order][int(np.argmin(gaps))]:.2f} mm): "
                        "several acquisitions or a duplicated file. Export each acquisition as its own series.")
    wide = np.flatnonzero(gaps > _GAP * step)
    if wide.size:
        k = int(wide[0])
        raise DataError(f"{name}: slices are {step:.2f} mm apart but slices {k + 1} and {k + 2} (in position order) "
                        f"are {gaps[k]:.2f} mm apart: a slice is missing. Export the series again, complete.")


def _check_one_study(series: list[Series], folder: Path) -> None:
    for key, what in (("PatientID", "patients"), ("StudyInstanceUID", "studies")):
        values: dict[str, list[str]] = {}
        for item in series:
            values.setdefault(item.tags.get(key, ""), []).append(item.label)
        if len(values) > 1:
            listing = "; ".join(f"{key} {v or '(empty)'}: {', '.join(labels)}" for v, labels in values.items())
            raise DataError(f"{folder} holds series of {len(values)} {what} ({listing}). Pass one study per --input "
                            "folder.")


def read_series(item: Series):
    """The series as one SimpleITK float32 volume (rescale slope/intercept applied), or its NIfTI file."""
    import SimpleITK as sitk

    try:
        if item.nifti is not None:
            image = sitk.ReadImage(str(item.nifti))
        elif item.frames is not None:
            image = read_multiframe(item.files[0], item.frames or None)
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames([str(p) for p in item.files])
            image = reader.Execute()
    except RuntimeError as err:
        first = item.nifti or item.files[0]
        raise DataError(f"series {item.label}: cannot read its pixels ({str(err).strip().splitlines()[-1]}); "
                        f"first file {first}. Export it again.") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"series {item.label}: not one 3-D grey-level volume (dimension {image.GetDimension()}, "
                        f"{image.GetNumberOfComponentsPerPixel()} component(s)). Pass one volume per series.")
    return sitk.Cast(image, sitk.sitkFloat32)
