"""Writing synthetic subjects to disk THROUGH the layouts: each file goes where the layout names it.

Files are written aside and renamed, existing cases are kept unless asked, and a BraTS 2021 set
also gets the MONAI fold file the original Swin UNETR release trained with.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from brainsegfounder.data.synthetic.subjects import (
    check_args,
    check_timepoints,
    series_case_id,
    synthesize_subject,
)
from brainsegfounder.data.synthetic.variety import check_variety
from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["FOLD_FILES", "TRUTH_FILE", "generate", "save_nifti"]

#: The true lesion volumes of a longitudinal series, one row per scan (written beside the cases).
TRUTH_FILE = "timepoints_truth.csv"

_FOLDS = 5
#: Layouts whose releases came with a MONAI fold file: (file name, image order in each entry).
#: The original Swin UNETR fold file lists BraTS 2021 images as flair, t1ce, t1, t2 (checked on a
#: copy of brats21_folds.json).
FOLD_FILES = {"brats2021": ("brats21_folds.json", ("flair", "t1ce", "t1", "t2"))}


def _fold_file(cases: list, out: Path, image_order: tuple[str, ...]) -> dict:
    entries = []
    for i, case in enumerate(cases):
        entries.append({"fold": i % _FOLDS,
                        "image": [case.images[m].relative_to(out).as_posix() for m in image_order],
                        "label": case.label.relative_to(out).as_posix()})
    return {"training": entries}


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write a volume with its affine as both sform and qform (MNI, mm), atomically."""
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code="mni")
    image.set_qform(affine, code="mni")
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so an interrupted run never leaves a truncated file in place.
    partial = path.with_name(f".partial-{path.name}")
    nib.save(image, partial)
    os.replace(partial, path)


def generate(layout: str, out: str | Path, subjects: int = 24, seed: int = 0,
             spacing: float = 2.0, overwrite: bool = False, cohort: str | None = None,
             variety: str = "default", timepoints: int = 1, raw: str | Path | None = None,
             raw_grids: str = "clinical") -> list[Path]:
    """Write ``subjects`` synthetic subjects to ``out`` exactly as the real data set lays them out.

    Args:
        layout: a registered layout's name: brats2021, brats2023, brats2024, ukb, atlas, or one
            you registered (``brainsegfounder.data.layouts.register_layout``).
        out: output folder (created if needed).
        subjects: how many subjects; subject ``i`` is the same whatever the count.
        seed: random seed (>= 0).
        spacing: isotropic voxel size in mm; 2.0 is fast (about a second per subject), 1.0 realistic.
        overwrite: rewrite existing files. Otherwise a case whose files all exist is skipped, and a
            case with only some of them (or a different fold file) is an error.
        cohort: BraTS 2023+ cohort for the case names: GLI (default), MET, MEN, PED or SSA.
        variety: ``default`` (the demo's data) or ``high`` (more inter-subject and inter-site
            variation, for transfer studies; :mod:`~brainsegfounder.data.synthetic.variety`).
        timepoints: scans per subject (brats2023, brats2024: ``-000``, ``-001``...; atlas:
            ``ses-1``, ``ses-2``...): the same person with the lesion growing or shrinking. Also
            writes ``timepoints_truth.csv``: per scan, the nominal volume factor and the true
            volume (mL) of every evaluated region of the written label map.
        raw: also write each case as a raw clinical study under this folder: a head around the
            brain, each series on its own grid and orientation after a known head motion, as DICOM
            and NIfTI, with the truth beside it (:mod:`~brainsegfounder.data.synthetic.raw`).
        raw_grids: the raw series' grids: ``clinical`` (FLAIR 0.9 x 0.9 x 5 mm axial, T1ce 1 mm
            sagittal, T1 1 mm axial, T2 0.5 x 0.5 x 4 mm axial) or ``small`` (coarser, for tests).

    Returns:
        One folder per subject: ``BraTS2021_00000``, ``BraTS-GLI-00000-000``, ``<eid>_20252_2_0``
        (the T1's; the FLAIR is in ``<eid>_20253_2_0``) or ``Training/R001/sub-r001s001``.

    Also writes ``brats21_folds.json`` (5 folds, round robin, paths relative to ``out``) for
    ``brats2021``.

    >>> generate("ukb", "/tmp/ukb_demo", subjects=2, spacing=4.0)  # doctest: +SKIP
    [PosixPath('/tmp/ukb_demo/1000000_20252_2_0'), PosixPath('/tmp/ukb_demo/1000001_20252_2_0')]
    """
    spec = check_args(layout, 0, seed, spacing)
    check_variety(variety)
    check_timepoints(spec, 0, int(timepoints))
    if int(subjects) < 1:
        raise ConfigError(f"subjects must be >= 1 (got {subjects}).")
    if cohort is not None:
        from brainsegfounder.data.layouts import BRATS_COHORTS

        if cohort not in BRATS_COHORTS:
            raise ConfigError(f"unknown BraTS cohort {cohort!r}; choose one of {', '.join(BRATS_COHORTS)}.")
    started = time.perf_counter()
    out = Path(out)
    scans = [(i, t) for i in range(int(subjects)) for t in range(int(timepoints))]
    cases = [spec.case_files(out, series_case_id(spec, i, cohort, t, int(timepoints))) for i, t in scans]
    plans, partial = [], []
    for (i, t), case in zip(scans, cases, strict=True):
        # A layout may name a label file; only a scheme's subjects have one to write.
        files = case.files if spec.scheme else list(case.images.values())
        present = [f.exists() for f in files]
        if any(present) and not all(present) and not overwrite:
            partial.append(f"{case.subject_id} (has {sum(present)} of {len(present)} files)")
        plans.append(((i, t), case, all(present) and not overwrite))
    if partial:
        raise DataError(f"{out}: incomplete synthetic cases {', '.join(partial[:5])}"
                        f"{' ...' if len(partial) > 5 else ''}; delete them or pass overwrite=True.")
    folds = folds_path = None
    if spec.name in FOLD_FILES:
        name, order = FOLD_FILES[spec.name]
        folds_path, folds = out / name, _fold_file(cases, out, order)
        if folds_path.exists() and not overwrite and json.loads(folds_path.read_text()) != folds:
            raise DataError(f"{folds_path} exists and lists other cases than these {subjects} subjects; "
                            "delete it or pass overwrite=True.")

    from rich.console import Console
    from rich.progress import track

    console = Console(highlight=False, soft_wrap=True)
    written = skipped = 0
    truth = []
    for (i, t), case, skip in track(plans, description=f"Synthesising {spec.name}", transient=True,
                               console=console, disable=not console.is_terminal):
        if skip:
            skipped += 1
            continue
        subject = synthesize_subject(spec, i, seed=seed, spacing=spacing, cohort=cohort, variety=variety,
                                     timepoint=t, timepoints=int(timepoints))
        if int(timepoints) > 1:
            truth.append(_truth_row(subject, spec, i))
        for modality, path in case.images.items():
            save_nifti(subject.images[modality], subject.affine, path)
        if case.label is not None and subject.label is not None:
            save_nifti(subject.label, subject.affine, case.label)
        written += 1
    if truth:
        _write_truth(out / TRUTH_FILE, truth)
    if raw is not None:
        from brainsegfounder.data.synthetic.raw import write_raw_studies

        studies = write_raw_studies(cases, raw, seed=seed, grids=raw_grids, overwrite=overwrite)
        console.print(f"raw studies (DICOM, NIfTI, truth): {len(studies)} -> {raw}")
    if folds is not None and (overwrite or not folds_path.exists()):
        folds_path.parent.mkdir(parents=True, exist_ok=True)
        folds_path.write_text(json.dumps(folds, indent=2) + "\n")
    console.print(
        f"[bold]synthetic {spec.name}[/]: wrote {written}, skipped {skipped} existing "
        f"(seed {seed}, {spacing:g} mm, variety {variety}) in {time.perf_counter() - started:.1f} s -> {out}")
    folders = [case.folder or next(iter(case.images.values())).parent for case in cases]
    return list(dict.fromkeys(folders))


def _truth_row(subject, spec, index: int) -> dict:
    from brainsegfounder.data.layouts import subject_and_timepoint
    from brainsegfounder.data.regions import get_scheme

    voxel_ml = float(abs(np.linalg.det(subject.affine[:3, :3]))) / 1000.0
    masks = get_scheme(spec.scheme).region_masks(subject.label)
    name, timepoint = subject_and_timepoint(subject.case_id)
    return {"case_id": subject.case_id, "subject": name, "timepoint": timepoint, "index": index,
            "scan": subject.timepoint, "volume_factor": round(subject.volume_factor, 6),
            **{f"{region}_ml": round(float(mask.sum()) * voxel_ml, 6) for region, mask in masks.items()}}


def _write_truth(path: Path, rows: list[dict]) -> None:
    """Merge with an existing truth file (skipped scans keep their rows), sorted by case id."""
    import csv

    by_case = {}
    if path.exists():
        with path.open(newline="") as handle:
            by_case = {row["case_id"]: row for row in csv.DictReader(handle)}
    by_case.update({row["case_id"]: row for row in rows})
    columns = list(dict.fromkeys(k for row in by_case.values() for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(by_case[c] for c in sorted(by_case))
