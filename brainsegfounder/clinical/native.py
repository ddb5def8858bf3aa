"""Results where the radiologist looks: the label map on every input series' own grid, and a DICOM SEG.

:func:`native_labels` maps a label map of the prepared grid back onto each series of the study
(the inverse of the series' registration transform, nearest neighbour), on the series' exact
voxel grid as its DICOM files (or NIfTI file) define it. :func:`write_dicom_seg` writes one of
them as a DICOM Segmentation (highdicom) whose frames reference the source series' instances, one
segment per label value of the region scheme (BraTS 2021: necrotic core 1, oedema 2, enhancing
tumour 4), made for a DICOM viewer to show over that series (read back with highdicom in the
tests). Glue over SimpleITK and highdicom.

Example:
    >>> from brainsegfounder.clinical.native import native_labels  # doctest: +SKIP
    >>> maps = native_labels(prepared_case, "runs/pred/BraTS2021_00000.nii.gz")  # doctest: +SKIP
    >>> sorted(maps)  # doctest: +SKIP
    ['flair', 't1', 't1ce', 't2']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainsegfounder.clinical.multiframe import frame_order, is_multiframe
from brainsegfounder.clinical.prepare import PreparedCase, write_image
from brainsegfounder.data.geometry import image_of_geometry
from brainsegfounder.utils.optional import require

__all__ = ["native_labels", "write_dicom_seg", "read_dicom_seg", "write_back", "NATIVE_FOLDER", "SEG_FOLDER"]

#: Under predict's --output: label maps on each series' own grid, and the DICOM SEGs.
NATIVE_FOLDER = "native"
SEG_FOLDER = "dicom_seg"


def native_labels(case: PreparedCase, label_path: str | Path) -> dict:
    """``{modality: SimpleITK uint8 label map on that series' own grid}`` from the prepared-grid labels."""
    import SimpleITK as sitk

    label = sitk.ReadImage(str(label_path))
    out = {}
    for modality, info in case.record["series"].items():
        grid = image_of_geometry(info["native_grid"])
        to_prepared = case.transform(modality).GetInverse()  # native points -> prepared points
        out[modality] = sitk.Resample(label, grid, to_prepared, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return out


def _segment(number: int, name: str, value: int, hd):
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name="brainsegfounder", version=_version(),
                                                   family=codes.DCM.ArtificialIntelligence)
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=f"{name} (label {value})",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_uid=hd.UID(), tracking_id=f"{name} {value}")


def _version() -> str:
    from brainsegfounder import __version__

    return __version__


def write_dicom_seg(label, source_files: list[Path], path: str | Path, label_names: dict[int, str],
                    series_number: int = 900) -> Path:
    """Write ``label`` (on the grid of the series whose files are ``source_files``) as a DICOM SEG.

    Args:
        label: SimpleITK label map on the source series' grid (slices in ``source_files`` order).
        source_files: the series' DICOM files, in slice order (as the study reader sorted them), or its
            one multi-frame file (its frames are put in position order here too).
        path: the ``.dcm`` file to write (written aside and renamed).
        label_names: label value -> name (the region scheme's), one segment each, in this order.
        series_number: the SEG series' number.
    """
    import os

    import SimpleITK as sitk

    hd = require("highdicom")
    pydicom = require("pydicom")
    sources = [pydicom.dcmread(p) for p in source_files]
    array = sitk.GetArrayFromImage(label)  # (slices, rows, columns), slices in position order
    order = frame_order(sources[0]) if len(sources) == 1 and is_multiframe(sources[0]) else None
    count = len(order) if order is not None else len(sources)
    if array.shape != (count, int(sources[0].Rows), int(sources[0].Columns)):
        raise ValueError(f"label map {array.shape} does not match the series' {count} slices of "
                         f"{sources[0].Rows} x {sources[0].Columns}")
    values = [v for v in label_names if v != 0]
    segments = np.zeros(array.shape, np.uint8)
    for number, value in enumerate(values, start=1):
        segments[array == value] = number
    if order is not None:  # one multi-frame file: the SEG's frames follow the file's frame numbers
        in_file = np.empty_like(segments)
        in_file[order] = segments
        segments = in_file
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=segments, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(n, label_names[v], v, hd) for n, v in enumerate(values, start=1)],
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="brainsegfounder", manufacturer_model_name="BrainSegFounder (Swin UNETR)",
        software_versions=_version(), device_serial_number="0", series_description="brainsegfounder tumour labels",
        omit_empty_frames=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{path.name}")
    seg.save_as(partial)
    os.replace(partial, path)
    return path


def read_dicom_seg(path: str | Path, source_files: list[Path]) -> np.ndarray:
    """The label values of a SEG that :func:`write_dicom_seg` wrote, per source slice (slices, rows, columns).

    Each segment's label value is read back from its label (``... (label 4)``).
    """
    import re

    hd = require("highdicom")
    pydicom = require("pydicom")
    seg = hd.seg.segread(str(path))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in source_files]
    numbers = seg.get_segment_numbers()
    if len(headers) == 1 and is_multiframe(headers[0]):  # frames of one multi-frame file, in position order
        pixels = seg.get_pixels_by_source_frame(source_sop_instance_uid=str(headers[0].SOPInstanceUID),
                                                source_frame_numbers=[k + 1 for k in frame_order(headers[0])],
                                                segment_numbers=numbers)
    else:
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[str(h.SOPInstanceUID) for h in headers],
                                                   segment_numbers=numbers)
    out = np.zeros(pixels.shape[:3], np.uint8)
    for k, number in enumerate(numbers):
        label = seg.get_segment_description(number).segment_label
        out[pixels[..., k] > 0] = int(re.search(r"label (\d+)", label).group(1))
    return out


def write_back(case: PreparedCase, label_path: str | Path, output: str | Path, legend: dict[int, str],
               seg_on: str = "flair", overwrite: bool = False) -> list[Path]:
    """Write ``output/native/<case_id>_<modality>.nii.gz`` for every series and, for a DICOM study,
    ``output/dicom_seg/<case_id>_<series>.dcm`` on ``seg_on``'s series (else the reference's).

    Files that exist are kept unless ``overwrite``. Returns the files written.
    """
    output = Path(output)
    maps = native_labels(case, label_path)
    written = []
    for modality, image in maps.items():
        path = output / NATIVE_FOLDER / f"{case.case_id}_{modality}.nii.gz"
        if overwrite or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(image, path)
            written.append(path)
    if case.record.get("source_kind") == "dicom":
        on = seg_on if seg_on in maps else case.record["reference"]
        path = output / SEG_FOLDER / f"{case.case_id}_{on}.dcm"
        if overwrite or not path.exists():
            files = [Path(case.record["source"]) / f for f in case.record["series"][on]["files"]]
            written.append(write_dicom_seg(maps[on], files, path, legend,
                                           series_number=900 + (case.record["series"][on]["series_number"] or 0)))
    return written
