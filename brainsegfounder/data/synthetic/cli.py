"""The command line: ``python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 24 --out DIR``."""

from __future__ import annotations

from pathlib import Path

from brainsegfounder.utils.cli import command

__all__ = ["main"]


def main(argv: list[str] | None = None) -> list[Path]:
    """Command line for :func:`~brainsegfounder.data.synthetic.generate`.

    Options: ``--layout`` (required), ``--out`` (required), ``--subjects N`` (24), ``--seed S`` (0),
    ``--spacing MM`` (2.0), ``--overwrite true``, ``--cohort GLI|MET|MEN|PED|SSA``, ``--variety default|high``,
    ``--timepoints N`` (a longitudinal series; brats2023, brats2024, atlas), ``--raw DIR`` (also raw
    clinical studies: head, own grids, motion, DICOM + NIfTI + truth; ``--raw_grids clinical|small``);
    ``--help`` lists them.
    """
    from brainsegfounder.data.synthetic.writers import generate

    return command(generate, argv, prog="python -m brainsegfounder.data.synthetic")

