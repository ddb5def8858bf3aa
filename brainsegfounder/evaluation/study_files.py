"""The low-label study's files: reading a sweep's ``lowlabel.csv`` back, the paired outputs, merging pieces.

A study run in pieces (settings apart, SLURM array tasks) writes one ``lowlabel.csv`` per folder;
:func:`collect` merges them into one folder with every table and plot
(``python -m brainsegfounder.lowlabel --collect A B --out ALL``).

Example:
    >>> from brainsegfounder.evaluation.study_files import collect
    >>> collect(["runs/study/lowlabel_scratch", "runs/study/lowlabel_stage2"], "runs/study/all")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from brainsegfounder.evaluation import paired
from brainsegfounder.utils.errors import DataError

__all__ = ["collect"]


def _read_rows(path: Path) -> list[dict]:
    """A ``lowlabel.csv`` back as rows: numbers as numbers, names and fingerprints as text."""
    with path.open(newline="") as handle:
        return [{k: v if k in ("setting", "train_subset", "run_dir") else paired._number(v) for k, v in row.items() if v != ""}
                for row in csv.DictReader(handle)]


def _paired_outputs(rows: list[dict], out: Path, metric: str, interval: str) -> list[dict]:
    """``lowlabel_paired.csv``/``.md``/``.png`` in ``out`` once some setting pairs with its baseline."""
    entries = paired.paired_differences(rows, metric, interval)
    if entries:
        paired.write_paired(entries, out)
        paired.plot_paired(entries, out / "lowlabel_paired.png")
    return entries


def collect(folders: Sequence[str | Path], out: str | Path, metric: str | None = None,
            interval: str = "t") -> list[dict]:
    """Merge the ``lowlabel.csv`` of several sweeps (settings run apart, SLURM array tasks) into ``out``.

    Writes ``lowlabel.csv``/``.md`` (every run), ``lowlabel_summary.csv``/``.md`` (mean and spread
    per setting and size), ``lowlabel.png`` and, when pretrained settings and ``scratch`` share
    seeds, ``lowlabel_paired.csv``/``.md``/``.png`` (:func:`~brainsegfounder.evaluation.paired.paired_differences`); returns the rows.

    >>> collect(["runs/study/lowlabel_scratch", "runs/study/lowlabel_stage2"], "runs/study/all")  # doctest: +SKIP
    """
    rows: list[dict] = []
    for folder in folders:
        path = Path(folder) / "lowlabel.csv"
        if not path.is_file():
            raise DataError(f"{path} does not exist; pass folders written by python -m brainsegfounder.lowlabel.")
        rows += _read_rows(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metric = paired._default_metric(rows, metric)
    paired.paired_differences(rows, metric, interval)  # a run collected twice or pieces that do not pair: stop before writing
    paired.write_table(rows, out)
    paired.write_table(paired.summarise(rows), out, stem="lowlabel_summary")
    paired.plot_curve(rows, out / "lowlabel.png", metric)
    _paired_outputs(rows, out, metric, interval)
    return rows
