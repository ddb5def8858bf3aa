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

from brainsegfounder.data.synthetic.subjects import check_args, synthesize_subject
from brainsegfounder.data.synthetic.variety import check_variety
from brainsegfounder.errors import ConfigError, DataError

__all__ = ["FOLD_FILES", "generate", "save_nifti"]

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
             variety: str = "default") -> list[Path]:
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
    if int(subjects) < 1:
        raise ConfigError(f"subjects must be >= 1 (got {subjects}).")
    if cohort is not None:
        from brainsegfounder.data.layouts import BRATS_COHORTS

        if cohort not in BRATS_COHORTS:
            raise ConfigError(f"unknown BraTS cohort {cohort!r}; choose one of {', '.join(BRATS_COHORTS)}.")
    started = time.perf_counter()
    out = Path(out)
    cases = [spec.case_files(out, spec.case_id(i, cohort)) for i in range(int(subjects))]
    plans, partial = [], []
    for i, case in enumerate(cases):
        # A layout may name a label file; only a scheme's subjects have one to write.
        files = case.files if spec.scheme else list(case.images.values())
        present = [f.exists() for f in files]
        if any(present) and not all(present) and not overwrite:
            partial.append(f"{case.subject_id} (has {sum(present)} of {len(present)} files)")
        plans.append((i, case, all(present) and not overwrite))
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
    for i, case, skip in track(plans, description=f"Synthesising {spec.name}", transient=True,
                               console=console, disable=not console.is_terminal):
        if skip:
            skipped += 1
            continue
        subject = synthesize_subject(spec, i, seed=seed, spacing=spacing, cohort=cohort, variety=variety)
        for modality, path in case.images.items():
            save_nifti(subject.images[modality], subject.affine, path)
        if case.label is not None and subject.label is not None:
            save_nifti(subject.label, subject.affine, case.label)
        written += 1
    if folds is not None and (overwrite or not folds_path.exists()):
        folds_path.parent.mkdir(parents=True, exist_ok=True)
        folds_path.write_text(json.dumps(folds, indent=2) + "\n")
    console.print(
        f"[bold]synthetic {spec.name}[/]: wrote {written}, skipped {skipped} existing "
        f"(seed {seed}, {spacing:g} mm, variety {variety}) in {time.perf_counter() - started:.1f} s -> {out}")
    return [case.folder or next(iter(case.images.values())).parent for case in cases]
