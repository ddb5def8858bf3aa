"""Check every subject before training starts, and say exactly what is wrong where.

A data set with one truncated download or one mis-registered modality should fail in seconds with
a message naming the subject and the file, not after an hour of training with a traceback.

Example:
    >>> from brainsegfounder.data.validation import validate_cases  # doctest: +SKIP
    >>> validate_cases(cases, label_values={0, 1, 2, 4})  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from brainsegfounder.data.layouts import CaseFiles
from brainsegfounder.utils.errors import DataError

__all__ = ["validate_case", "validate_cases"]

MAX_REPORTED = 20


class NotOneVolume(ValueError):
    """A readable image that is not one 3-D volume (a 4-D series, a 2-D slice)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__(f"expected a 3-D volume, got shape {shape}")
        self.shape = shape


def _load(path: Path, read_data: bool, whole_stream: bool = False) -> tuple[tuple[int, ...], np.ndarray, np.ndarray | None]:
    if whole_stream and read_data and str(path).lower().endswith(".gz"):
        # nibabel stops reading after the last voxel, before the gzip trailer, so a corrupted stream
        # whose damage still inflates would pass unseen; reading to the end checks the trailer's CRC
        # (OSError/EOFError/zlib.error, reported as unreadable), and the image is parsed from
        # these bytes: one read of the file for both.
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
        kind = nib.Nifti2Image if int.from_bytes(raw[:4], "little") == 540 or int.from_bytes(raw[:4], "big") == 540 \
            else nib.Nifti1Image  # sizeof_hdr: 348 for NIfTI-1, 540 for NIfTI-2
        image = kind.from_bytes(raw)
    else:
        image = nib.load(str(path))
    shape = tuple(int(s) for s in image.shape)
    # A 4-D file with one volume is a 3-D image (some tools write X,Y,Z,1).
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise NotOneVolume(shape)
    data = np.asanyarray(image.dataobj) if read_data else None
    return shape, image.affine, data


def validate_case(
    case: CaseFiles,
    label_values: Iterable[int] | None = None,
    affine_tolerance: float = 1e-3,
    read_data: bool = True,
    allow_non_finite: bool = False,
    allow_constant: bool = False,
    whole_stream: bool = False,
    non_finite_counts: dict[str, int] | None = None,
    background_notes: list[str] | None = None,
) -> list[str]:
    """Problems of one case, each a sentence naming the subject and the file (empty if none).

    Args:
        case: the case's files.
        label_values: allowed label values (background 0 included); None skips the check.
        affine_tolerance: largest difference allowed between the modalities' affines (mm).
        read_data: decompress every voxel (finds truncated files, NaN/Inf voxels and constant
            images); ``False`` reads headers only.
        allow_non_finite: accept NaN/Inf voxels in images (the caller replaces them and says so).
        allow_constant: accept an image whose voxels are all one value (a missing modality, for a
            model trained to accept missing ones).
        whole_stream: read each ``.nii.gz`` to its end so that the gzip CRC is checked (predict).
        non_finite_counts: if given, receives ``{subject_id: NaN/Inf voxels over its images}``.
        background_notes: if given, receives one sentence per image whose background is not the
            0 the model was trained on (:func:`background_note`).
    """
    problems: list[str] = []
    sid = case.subject_id
    reference: tuple[str, Path, tuple[int, ...], np.ndarray] | None = None
    files = list(case.images.items()) + ([("label", case.label)] if case.label is not None else [])
    for name, path in files:
        path = Path(path)
        if not path.exists():
            problems.append(f"subject {sid}: {name} file {path} does not exist. Check the path or the layout.")
            continue
        try:
            shape, affine, data = _load(path, read_data=read_data, whole_stream=whole_stream)
        except NotOneVolume as err:
            kind = (f"{err.shape[3]} volumes of shape {err.shape[:3]} (a 4-D series)" if len(err.shape) == 4
                    else f"an image of shape {err.shape}")
            problems.append(f"subject {sid}: {name} file {path} holds {kind}; one 3-D volume per modality file is "
                            "expected. Keep the volume you mean in its own file (e.g. fslroi or nibabel's slicer).")
            continue
        except Exception as err:  # nibabel, gzip and zlib raise many kinds for broken files
            problems.append(f"subject {sid}: {name} file {path} cannot be read ({type(err).__name__}: {err}). "
                            "It may be truncated, corrupt or not NIfTI: download or convert it again.")
            continue
        if reference is None:
            reference = (name, path, shape, affine)
        else:
            ref_name, ref_path, ref_shape, ref_affine = reference
            if shape != ref_shape:
                problems.append(f"subject {sid}: {name} file {path} has shape {shape} but {ref_name} "
                                f"({ref_path.name}) has {ref_shape}. Resample the modalities to one grid "
                                "(co-register them) first: predict --preprocess, or python -m "
                                "brainsegfounder.preprocess, does it (docs/clinical.md).")
            elif not np.allclose(affine, ref_affine, atol=affine_tolerance):
                problems.append(f"subject {sid}: {name} file {path} has another affine (position or orientation) "
                                f"than {ref_name} ({ref_path.name}); largest difference "
                                f"{np.abs(affine - ref_affine).max():.4g} mm. Co-register the modalities: predict "
                                "--preprocess, or python -m brainsegfounder.preprocess, does it (docs/clinical.md).")
        if name != "label" and data is not None:
            found, bad = _intensity_problems(sid, name, path, data, allow_non_finite, allow_constant)
            problems += found
            if non_finite_counts is not None:
                non_finite_counts[sid] = non_finite_counts.get(sid, 0) + bad
            note = background_note(sid, name, path, data) if background_notes is not None else None
            if note:
                background_notes.append(note)
        if name == "label" and data is not None and label_values is not None:
            values = np.unique(data)
            if not np.all(np.equal(np.mod(values, 1), 0)):
                problems.append(f"subject {sid}: label file {path} holds non-integer values; a label map "
                                "must hold integer classes.")
            else:
                unexpected = sorted(set(values.astype(int).tolist()) - set(label_values))
                if unexpected:
                    problems.append(f"subject {sid}: label file {path} holds unexpected values {unexpected} "
                                    f"(allowed: {sorted(label_values)}). Check the label convention "
                                    "(data.regions) or fix the file.")
    return problems


def background_note(sid: str, name: str, path: Path, data: np.ndarray) -> str | None:
    """One sentence when an image's background is not the 0 of skull-stripped training images.

    A constant non-zero background is set to 0 by predict (:mod:`brainsegfounder.data.conform`);
    an image with (almost) no voxel at 0 does not look skull-stripped, which nothing here fixes.
    """
    from brainsegfounder.data.conform import MIN_ZERO_FRACTION, border_constant, zero_fraction

    value = border_constant(data)
    if value is not None:
        return (f"subject {sid}: {name} file {path} has a constant background of {value:g}, not 0: "
                "subtracted from the image before normalising (an intensity offset), so the background is 0 "
                "as in the skull-stripped images the model was trained on.")
    share = zero_fraction(data)
    if share < MIN_ZERO_FRACTION:
        return (f"subject {sid}: {name} file {path} does not look skull-stripped: {100 * share:.1f}% of its voxels "
                "are 0 (prepared BraTS images: about 80%). The model was trained on skull-stripped images; "
                "check its labels, or skull-strip first (predict --preprocess does it: docs/clinical.md).")
    return None


def _intensity_problems(sid: str, name: str, path: Path, data: np.ndarray, allow_non_finite: bool,
                        allow_constant: bool) -> tuple[list[str], int]:
    """NaN/Inf voxels and constant images: both turn silently into wrong segmentations downstream.

    Returns the problems and the number of NaN/Inf voxels (one pass over the data for both)."""
    problems = []
    finite = np.isfinite(data)
    bad = int(finite.size - np.count_nonzero(finite))
    if bad and not allow_non_finite:
        problems.append(f"subject {sid}: {name} file {path} holds {bad} NaN/Inf voxel(s) of {data.size}. Fix the "
                        "export: training needs finite voxels (predict can replace them by 0 when asked: "
                        "--non_finite zero).")
    values = data[finite] if bad else data
    if not allow_constant and (values.size == 0 or values.min() == values.max()):
        value = float(values.flat[0]) if values.size else float("nan")
        problems.append(f"subject {sid}: {name} file {path} is constant (every voxel is {value:g}): an empty or "
                        "failed export, which cannot be normalised. Replace the file, or leave the subject out.")
    return problems, bad


def validate_cases(
    cases: list[CaseFiles],
    label_values: Iterable[int] | None = None,
    affine_tolerance: float = 1e-3,
    read_data: bool = True,
    workers: int = 4,
    allow_non_finite: bool = False,
    allow_constant: bool = False,
    whole_stream: bool = False,
    background_notes: list[str] | None = None,
) -> dict[str, int]:
    """Validate every case; raise one :class:`DataError` listing all problems found.

    Files are read in a few threads (decompression releases the GIL). Returns the NaN/Inf voxel
    count of each subject's images (zeros when ``read_data`` is off).
    """
    label_values = None if label_values is None else set(label_values)
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.subject_id] = seen.get(case.subject_id, 0) + 1
    problems = [f"subject id {sid} appears {n} times; ids must be unique." for sid, n in seen.items() if n > 1]
    counts: dict[str, int] = {}  # each thread writes its own subject's key
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(lambda c: validate_case(c, label_values, affine_tolerance, read_data,
                                                      allow_non_finite, allow_constant, whole_stream,
                                                      counts, background_notes), cases):
            problems.extend(found)
    if problems:
        shown = problems[:MAX_REPORTED]
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise DataError(f"{len(problems)} problem(s) in the data ({len(cases)} subjects checked):\n  "
                        + "\n  ".join(shown) + more)
    return {case.subject_id: counts.get(case.subject_id, 0) for case in cases}
