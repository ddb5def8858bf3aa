"""Prepare a raw study as the model was trained: co-registered, on one grid, skull-stripped, NIfTI.

:func:`prepare_study` takes one study (a folder of DICOM series, or of NIfTI series each on its
own grid) and writes a BraTS-style case folder that predict reads unchanged::

    <out>/<case_id>/<case_id>_flair.nii.gz ... _t2.nii.gz      the prepared images
    <out>/<case_id>/preparation/preparation.json               what was done (below)
    <out>/<case_id>/preparation/<modality>.tfm                 prepared grid -> that series (SimpleITK)
    <out>/<case_id>/preparation/brain_mask.nii.gz              when the skull was stripped

Steps: read the series (:mod:`.study`) and name them (:mod:`.modalities`); pick the reference
series (the finest, most isotropic; T1ce first on a tie) unless ``reference`` names one; register
every other series rigidly to it (:mod:`.registration`, with its similarity check); resample
every series onto the prepared grid (:func:`resample_series`: cubic B-spline by default, as nnU-Net
resamples images; ``linear`` on request): the reference's field of view, axes along the
scanner's (RAS when written), at ``spacing`` mm (the checkpoint's training spacing; 1 mm when it
records none); extract the brain (:mod:`.brain`) when ``skull_strip`` says so, and set everything
outside it to 0, as in BraTS. ``preparation.json`` records the source (and a digest of its files),
each series (UID, number, description, files, native grid, registration figures, transform file),
the grid, the skull-stripping method, and the software. Glue over SimpleITK.

Example:
    >>> from brainsegfounder.clinical.prepare import prepare_study  # doctest: +SKIP
    >>> case = prepare_study("dicom/BraTS2021_00000", "prepared", ("flair", "t1ce", "t1", "t2"))  # doctest: +SKIP
    >>> sorted(case.images)  # doctest: +SKIP
    ['flair', 't1', 't1ce', 't2']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainsegfounder.clinical.modalities import CONTRAST_OF, assign
from brainsegfounder.clinical.study import Series, is_dicom_folder, read_series, scan_dicom
from brainsegfounder.data.geometry import corners, geometry_of, grid_covering
from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["PreparedCase", "prepare_study", "load_prepared", "find_series", "digest_of", "write_image",
           "resample_series", "thick_series", "INTERPOLATIONS", "PREPARATION", "RECORD_FILE", "THICK_SLICE_MM"]

PREPARATION = "preparation"
RECORD_FILE = "preparation.json"
#: Tie-break of the reference series (after voxel volume and isotropy).
_REFERENCE_ORDER = ("t1ce", "t1", "t2", "flair")
#: How series may be resampled onto the prepared grid: ``--interpolation`` -> SimpleITK interpolator.
#: Cubic B-spline keeps a 1 mm series' edges where linear interpolation blurs them by up to half a
#: voxel; on the raw-study benchmark it moved this model's reading closer to the BraTS-way case on
#: every region (docs/clinical.md, "Resampling with cubic B-splines").
INTERPOLATIONS = {"bspline": "sitkBSpline", "linear": "sitkLinear"}
#: A series with voxels longer than this (mm) along an axis is thick-sliced: between its slices the
#: prepared images are interpolated, and what is seen mainly on it (the oedema, on a FLAIR) is less
#: certain than from thin slices (docs/clinical.md, "Thick slices"). Said, and kept in volumes.csv.
THICK_SLICE_MM = 3.0
#: Brain masks outside this range (mL) do not look like an adult brain: said, not refused.
_BRAIN_ML = (500.0, 2500.0)


@dataclass
class PreparedCase:
    """A prepared case on disk: its folder, its images and what ``preparation.json`` says."""

    case_id: str
    folder: Path
    images: dict[str, Path]
    record: dict

    def transform(self, modality: str):
        """The SimpleITK transform from the prepared grid to ``modality``'s native series."""
        import SimpleITK as sitk

        return sitk.ReadTransform(str(self.folder / self.record["series"][modality]["transform"]))

    def to_reference(self):
        """Prepared grid points -> reference series points: the atlas registration (``--atlas``), else the identity."""
        import SimpleITK as sitk

        atlas = self.record.get("atlas")
        return sitk.ReadTransform(str(self.folder / atlas["transform"])) if atlas else sitk.Euler3DTransform()

    def series_transform(self, modality: str):
        """Reference series points -> ``modality``'s series points: that series' registration alone."""
        from brainsegfounder.clinical.atlas import chain

        return chain(self.to_reference().GetInverse(), self.transform(modality))


def find_series(source: str | Path, modalities: Sequence[str], overrides: dict[str, str] | None = None,
                allow_missing: Sequence[str] = ()) -> tuple[dict[str, Series], list[str], str]:
    """The series of one study by modality, the skipped ones (one line each), and ``dicom`` or ``nifti``."""
    from brainsegfounder.data.layouts.base import is_nifti

    source = Path(source).expanduser()
    if not source.is_dir():
        raise DataError(f"{source}: a study is a folder (of DICOM files, or of one NIfTI file per series).")
    if is_dicom_folder(source):
        found, skipped = scan_dicom(source)
        kind = "dicom"
    else:
        files = sorted(p for p in source.iterdir() if p.is_file() and is_nifti(p))
        found = [Series(uid=p.name, number=None, description=p.name, files=[p], nifti=p) for p in files
                 if not p.name.split(".")[0].lower().endswith(("_seg", "-seg", "_mask", "-mask"))]
        skipped, kind = [], "nifti"
        if not found:
            raise DataError(f"{source}: neither DICOM files nor NIfTI series in it. Pass a study folder.")
    return assign(found, modalities, overrides, allow_missing), skipped, kind


def digest_of(chosen: dict[str, Series]) -> str:
    """sha256 over the chosen series' files (names and bytes), modality by modality."""
    sha = hashlib.sha256()
    for path in (p for name in sorted(chosen) for p in chosen[name].files):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def _reference(images: dict, chosen: str | None) -> str:
    if chosen is not None:
        if chosen not in images:
            raise DataError(f"--reference {chosen}: not one of this study's series ({', '.join(images)}).")
        return chosen

    def key(name):
        spacing = np.array(images[name].GetSpacing())
        order = CONTRAST_OF.get(name.lower(), name)
        rank = _REFERENCE_ORDER.index(order) if order in _REFERENCE_ORDER else len(_REFERENCE_ORDER)
        return round(float(np.prod(spacing)), 2), round(float(spacing.max() / spacing.min()), 1), rank

    return min(images, key=key)


def resample_series(image, grid, transform, interpolation: str = "bspline"):
    """One series on ``grid`` (float32, 0 outside the series), through ``transform`` (grid points ->
    series points), interpolated as ``interpolation`` says (:data:`INTERPOLATIONS`).

    A cubic B-spline overshoots at sharp edges; the result is clipped to the series' own intensity
    range, so an MRI stays non-negative and no new extreme is made.

    >>> import SimpleITK as sitk
    >>> series = sitk.GetImageFromArray(__import__("numpy").arange(64, dtype="float32").reshape(4, 4, 4))
    >>> out = resample_series(series, series, sitk.Euler3DTransform())
    >>> float(sitk.GetArrayViewFromImage(out).max()) == 63.0
    True
    """
    import SimpleITK as sitk

    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"--interpolation {interpolation!r}: choose {' or '.join(INTERPOLATIONS)}.")
    moved = sitk.Resample(image, grid, transform, getattr(sitk, INTERPOLATIONS[interpolation]), 0.0, sitk.sitkFloat32)
    if interpolation == "linear":
        return moved
    values = sitk.MinimumMaximumImageFilter()
    values.Execute(image)
    return sitk.Clamp(moved, sitk.sitkFloat32, min(values.GetMinimum(), 0.0), values.GetMaximum())


def write_image(image, path: Path) -> None:
    """Write a SimpleITK image (compressed), aside then renamed: never a truncated file in place."""
    import SimpleITK as sitk

    partial = path.with_name(f".partial-{path.name}")
    sitk.WriteImage(image, str(partial), useCompression=True)
    os.replace(partial, path)


def prepare_study(source: str | Path, out: str | Path, modalities: Sequence[str], spacing: float = 1.0,
                  skull_strip: str = "auto", overrides: dict[str, str] | None = None, reference: str | None = None,
                  case_id: str | None = None, brain_method: str = "auto", allow_missing: Sequence[str] = (),
                  say: Callable[[str], None] | None = None, found: tuple | None = None,
                  options: dict | None = None, atlas: str | None = None,
                  interpolation: str = "bspline") -> PreparedCase:
    """Prepare one study into ``out/<case_id>/`` (see the module's text) and return it.

    Args:
        source: the study folder (DICOM files in any tree, or NIfTI series).
        out: where the case folder goes (``out/<case_id>/``).
        modalities: the checkpoint's modality names in channel order.
        spacing: the prepared grid's isotropic voxel size (mm).
        skull_strip: ``auto`` (strip when the reference does not look skull-stripped), ``yes``, ``no``.
        overrides: modality -> series (``--series``).
        reference: the modality to register to (default: the finest series).
        case_id: the case's name (default: the study folder's name).
        brain_method: ``auto`` (HD-BET if installed, else the fallback), ``hd-bet`` or ``fallback``.
        allow_missing: modalities the checkpoint can do without.
        say: receives one line per thing worth telling (skipped series, registrations, stripping).
        found: :func:`find_series`'s answer when the caller has it already.
        options: the options to record (``preparation.json``'s ``options``; compared on reuse).
        atlas: ``mni152`` or a template file: prepare onto that atlas's grid (:mod:`.atlas`); default
            the reference series' frame.
        interpolation: how the series are resampled onto the prepared grid: ``bspline`` (cubic) or
            ``linear`` (:func:`resample_series`).
    """
    import SimpleITK as sitk

    from brainsegfounder.clinical.brain import brain_mask, needs_stripping
    from brainsegfounder.clinical.registration import check_registration, normalised_mi, register
    from brainsegfounder.data.conform import zero_fraction

    say = say or (lambda line: None)
    source, out = Path(source).expanduser(), Path(out).expanduser()
    case_id = case_id or source.name
    chosen, skipped, kind = found or find_series(source, modalities, overrides, allow_missing)
    for line in skipped:
        say(f"{case_id}: skipped series {line}")
    native = {name: read_series(item) for name, item in chosen.items()}
    for name, image in native.items():
        if max(image.GetSpacing()) > THICK_SLICE_MM:
            say(f"{case_id}: {name} ({chosen[name].label}) has {max(image.GetSpacing()):g} mm slices: between them the "
                f"prepared images are interpolated, so what is seen mainly on it is less certain than from thin slices")
    ref = _reference(native, reference)
    direction = np.diag([-1.0, -1.0, 1.0])  # LPS axes of a RAS-ordered grid
    grid = grid_covering(corners(native[ref]), direction, (float(spacing),) * 3)
    folder = out / case_id
    (folder / PREPARATION).mkdir(parents=True, exist_ok=True)
    series_record, prepared, transforms = {}, {}, {}
    for name, item in chosen.items():
        if name == ref:
            transform, figures = sitk.Euler3DTransform(), {"reference": True}
        else:
            result = register(native[ref], native[name])
            moved = sitk.Resample(native[name], native[ref], result.transform, sitk.sitkLinear, 0.0)
            nmi = normalised_mi(sitk.GetArrayViewFromImage(native[ref]), sitk.GetArrayViewFromImage(moved))
            check_registration(result, nmi, f"{name} ({item.label})", f"{ref} ({chosen[ref].label})")
            transform, figures = result.transform, {**result.to_dict(), "normalised_mi": round(nmi, 4)}
            say(f"{case_id}: {name} ({item.label}) registered to {ref}: {result.rotation_deg:.2f} degrees, "
                f"{result.shift_mm:.2f} mm, normalised MI {nmi:.3f}")
        prepared[name] = resample_series(native[name], grid, transform, interpolation)
        transforms[name] = transform
        series_record[name] = {
            "series_instance_uid": item.uid if item.is_dicom else None, "series_number": item.number,
            "description": item.description, "contrast": CONTRAST_OF.get(name.lower(), name),
            "files": [str(p.relative_to(source)) for p in item.files], "native_grid": geometry_of(native[name]),
            "transform": f"{PREPARATION}/{name}.tfm", "registration": figures}
    share = zero_fraction(sitk.GetArrayViewFromImage(native[ref]))
    strip = needs_stripping(native[ref], skull_strip)
    stripping = {"setting": skull_strip, "stripped": strip, "reference_zero_fraction": round(share, 4)}
    t1w = next((n for n in chosen if CONTRAST_OF.get(n.lower()) == "t1"), None) or \
        next((n for n in chosen if CONTRAST_OF.get(n.lower()) == "t1ce"), ref)
    mask = None
    if strip:
        mask, method = brain_mask(prepared[t1w], brain_method)
        volume_ml = float(sitk.GetArrayViewFromImage(mask).sum()) * float(spacing) ** 3 / 1000
        stripping.update(method=method, on=t1w, brain_ml=round(volume_ml, 1), mask=f"{PREPARATION}/brain_mask.nii.gz")
        prepared = {n: sitk.Mask(img, mask) for n, img in prepared.items()}
        say(f"{case_id}: brain extracted on {t1w} by {method}: {volume_ml:.0f} mL")
        if not _BRAIN_ML[0] <= volume_ml <= _BRAIN_ML[1]:
            say(f"{case_id}: the brain mask holds {volume_ml:.0f} mL, outside {_BRAIN_ML[0]:.0f}-{_BRAIN_ML[1]:.0f} mL: "
                "check that the study is a brain MRI and look at the prepared images")
    atlas_record, volumes_on = None, f"the prepared grid ({spacing:g} mm isotropic)"
    if atlas:
        from brainsegfounder.clinical.atlas import to_atlas

        prepared, grid, transforms, atlas_record, mask, to_reference = to_atlas(
            atlas, native, transforms, prepared[t1w], mask, spacing, interpolation)
        sitk.WriteTransform(to_reference, str(folder / PREPARATION / "atlas.tfm"))
        volumes_on = f"the {atlas_record['name']} atlas grid ({spacing:g} mm isotropic; rigid: the patient's own volumes)"
        figures = atlas_record["registration"]
        say(f"{case_id}: {t1w} registered to the atlas {atlas_record['name']}: {figures['rotation_deg']:.1f} degrees, "
            f"{figures['shift_mm']:.1f} mm, brain over the template's Dice {figures['brain_dice']:.3f}")
    for name, transform in transforms.items():
        sitk.WriteTransform(transform, str(folder / PREPARATION / f"{name}.tfm"))
    if mask is not None:
        write_image(mask, folder / PREPARATION / "brain_mask.nii.gz")
    images = {}
    for name, image in prepared.items():
        images[name] = folder / f"{case_id}_{name}.nii.gz"
        write_image(image, images[name])
    from brainsegfounder import __version__

    record = {"case_id": case_id, "source": str(source), "source_kind": kind,
              "source_digest": digest_of(chosen), "options": options,
              "modalities": list(chosen), "reference": ref, "spacing_mm": float(spacing),
              "interpolation": interpolation, "grid": geometry_of(grid), "atlas": atlas_record,
              "skull_strip": stripping, "series": series_record,
              "skipped": skipped, "volumes_on": volumes_on, "software": f"brainsegfounder {__version__}"}
    partial = folder / PREPARATION / f".partial-{RECORD_FILE}"
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, folder / PREPARATION / RECORD_FILE)
    return PreparedCase(case_id, folder, images, record)


def thick_series(record: dict) -> dict[str, float]:
    """Modality -> its largest voxel side (mm), for the series of a preparation record thicker than
    :data:`THICK_SLICE_MM` (``volumes.csv``'s ``thick_slices``).

    >>> thick_series({"series": {"flair": {"native_grid": {"spacing": [0.9, 0.9, 5.0]}},
    ...                          "t1": {"native_grid": {"spacing": [1.0, 1.0, 1.0]}}}})
    {'flair': 5.0}
    """
    sides = {name: max(series["native_grid"]["spacing"]) for name, series in record["series"].items()}
    return {name: round(float(side), 2) for name, side in sides.items() if side > THICK_SLICE_MM}


def load_prepared(folder: str | Path) -> PreparedCase:
    """A case :func:`prepare_study` wrote, from its folder."""
    folder = Path(folder)
    path = folder / PREPARATION / RECORD_FILE
    if not path.exists():
        raise DataError(f"{folder}: no {PREPARATION}/{RECORD_FILE}; it was not prepared by this tool.")
    record = json.loads(path.read_text())
    images = {m: folder / f"{record['case_id']}_{m}.nii.gz" for m in record["modalities"]}
    return PreparedCase(record["case_id"], folder, images, record)
