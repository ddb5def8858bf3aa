"""Write a SimpleITK volume as a DICOM MR series (pydicom), one file per slice, with realistic tags.

Used by the raw-study generator (:mod:`brainsegfounder.data.synthetic.raw`). Each slice is an
MR Image Storage instance, Explicit VR Little Endian, 12-bit unsigned pixels with
RescaleSlope/Intercept, patient geometry (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing, SliceThickness, FrameOfReferenceUID) and the MR sequence tags a reader uses to tell
the contrasts apart (ScanningSequence, SequenceVariant, RepetitionTime, EchoTime, InversionTime,
ContrastBolusAgent). Hand-written glue: pydicom builds and writes the files.

Example:
    >>> import SimpleITK as sitk, tempfile, pathlib
    >>> image = sitk.Image([8, 8, 3], sitk.sitkFloat32) + 100.0
    >>> study = Study("P1", uid("P1", "study"), uid("P1", "frame"))
    >>> files = write_series(image, pathlib.Path(tempfile.mkdtemp()), study, 2, SEQUENCES["t2"])
    >>> import pydicom; ds = pydicom.dcmread(files[0])
    >>> ds.SeriesDescription, ds.Rows, float(ds.EchoTime), len(files)
    ('AX T2 TSE', 8, 100.0, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainsegfounder.utils.optional import require

__all__ = ["Study", "SEQUENCES", "LOCALIZER", "uid", "write_series", "stored_values"]

#: What the scanner says about each contrast: descriptions and MR sequence tags.
SEQUENCES: dict[str, dict] = {
    "flair": {"SeriesDescription": "AX T2 FLAIR", "ProtocolName": "t2_tirm_tra_dark-fluid",
              "ScanningSequence": ["SE", "IR"], "SequenceVariant": ["SK", "SP", "MP"], "MRAcquisitionType": "2D",
              "RepetitionTime": 9000.0, "EchoTime": 81.0, "InversionTime": 2500.0, "FlipAngle": 150.0,
              "EchoTrainLength": 16},
    "t1ce": {"SeriesDescription": "SAG T1 MPRAGE POST GD", "ProtocolName": "t1_mprage_sag_p2_post",
             "ScanningSequence": ["GR", "IR"], "SequenceVariant": ["SP", "MP"], "MRAcquisitionType": "3D",
             "RepetitionTime": 2300.0, "EchoTime": 2.98, "InversionTime": 900.0, "FlipAngle": 9.0,
             "EchoTrainLength": 1, "ContrastBolusAgent": "GADOBUTROL"},
    "t1": {"SeriesDescription": "AX T1 MPRAGE", "ProtocolName": "t1_mprage_tra_p2",
           "ScanningSequence": ["GR", "IR"], "SequenceVariant": ["SP", "MP"], "MRAcquisitionType": "3D",
           "RepetitionTime": 2300.0, "EchoTime": 2.98, "InversionTime": 900.0, "FlipAngle": 9.0,
           "EchoTrainLength": 1},
    "t2": {"SeriesDescription": "AX T2 TSE", "ProtocolName": "t2_tse_tra",
           "ScanningSequence": ["SE"], "SequenceVariant": ["SK", "SP"], "MRAcquisitionType": "2D",
           "RepetitionTime": 5000.0, "EchoTime": 100.0, "FlipAngle": 150.0, "EchoTrainLength": 15},
}
#: A three-plane scout: readers must skip it.
LOCALIZER = {"SeriesDescription": "localizer", "ProtocolName": "AAHead_Scout",
             "ScanningSequence": ["GR"], "SequenceVariant": ["SP"], "MRAcquisitionType": "2D",
             "RepetitionTime": 8.6, "EchoTime": 4.0, "FlipAngle": 20.0, "EchoTrainLength": 1,
             "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER", "NONE"]}
_MAX_STORED = 4095  # 12 bits


def uid(*parts: object) -> str:
    """A DICOM UID derived from ``parts`` (the same parts give the same UID)."""
    require("pydicom")
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


@dataclass
class Study:
    """What every series of one study shares: patient, study and scanner frame of reference."""

    patient_id: str
    study_uid: str
    frame_uid: str
    patient_name: str = "SYNTHETIC^PATIENT"
    date: str = "20260101"
    extra: dict = field(default_factory=dict)


def _dataset(study: Study, series_uid: str, number: int, tags: dict, instance: int):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    ds = Dataset()
    sop = uid(series_uid, instance)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = study.patient_id, study.patient_name, "", "O"
    ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = study.study_uid, "1", ""
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.Manufacturer = "MR", "brainsegfounder synthetic"
    ds.BodyPartExamined, ds.PatientPosition, ds.MagneticFieldStrength = "BRAIN", "HFS", 3.0
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = series_uid, number, instance
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = study.frame_uid, ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.ScanOptions = ""  # type 2 in the MR Image module: present, empty (dciodvfy checks it)
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def write_series(image, folder: Path, study: Study, number: int, tags: dict, series_uid: str | None = None,
                 prefix: str = "IM", first: int = 1) -> list[Path]:
    """Write ``image`` (SimpleITK, any orientation) as one DICOM file per slice in ``folder``.

    Pixel values are stored as 12-bit integers; RescaleSlope maps them back to the image's scale
    (``stored * slope`` is what a reader gets). Instances are numbered from ``first``. Returns the
    files, in slice order.
    """
    pydicom = require("pydicom")
    series_uid = series_uid or uid(study.study_uid, number, tags.get("SeriesDescription"))
    stored, slope = _quantise(image)  # (slices, rows, columns)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing, origin = image.GetSpacing(), np.array(image.GetOrigin())
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(stored.shape[0]):
        ds = _dataset(study, series_uid, number, tags, first + k)
        position = origin + k * spacing[2] * direction[:, 2]
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*direction[:, 0], *direction[:, 1])]
        ds.SliceLocation = round(float(position @ direction[:, 2]), 4)
        ds.PixelSpacing = [round(spacing[1], 6), round(spacing[0], 6)]  # row spacing, column spacing
        ds.SliceThickness = ds.SpacingBetweenSlices = round(spacing[2], 6)
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", "0", "US"
        ds.WindowCenter, ds.WindowWidth = int(stored[k].max() // 2 or 1), int(stored[k].max() or 1)
        ds.PixelData = stored[k].tobytes()
        path = folder / f"{prefix}{first + k:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        files.append(path)
    return files


def _quantise(image) -> tuple[np.ndarray, float]:
    """The 12-bit values a series of ``image`` stores, and the RescaleSlope that maps them back."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image).astype(np.float64)
    slope = max(float(array.max()), 1e-6) / _MAX_STORED
    return np.clip(np.rint(array / slope), 0, _MAX_STORED).astype(np.uint16), slope


def stored_values(image):
    """``image`` as a reader of :func:`write_series`'s files gets it (12-bit rounding, times the slope)."""
    import SimpleITK as sitk

    stored, slope = _quantise(image)
    out = sitk.GetImageFromArray((stored * slope).astype(np.float32))
    out.CopyInformation(image)
    return out
