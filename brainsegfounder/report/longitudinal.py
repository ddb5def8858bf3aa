"""Time points from case ids, and each region's volume over time per subject.

BraTS 2023+ names a subject's scans ``BraTS-GLI-00001-000``, ``-001``; BIDS data name sessions
(``sub-01_ses-2``); anything else is one time point of its own subject. Volumes come in mL
(``volumes.csv``); changes are between consecutive scans of one subject, in time-point order.

Example:
    >>> subject_and_timepoint("BraTS-GLI-00001-001")
    ('BraTS-GLI-00001', '001')
    >>> subject_and_timepoint("sub-r001s001_ses-2")
    ('sub-r001s001', 'ses-2')
    >>> subject_and_timepoint("BraTS2021_00000")
    ('BraTS2021_00000', None)
    >>> rows = longitudinal_rows({"BraTS-GLI-00001-000": {"WT_ml": 10.0}, "BraTS-GLI-00001-001": {"WT_ml": 12.5}},
    ...                          ["WT_ml"])
    >>> [(r["timepoint"], r["WT_ml_change_ml"], r["WT_ml_change_pct"]) for r in rows]
    [('000', None, None), ('001', 2.5, 25.0)]
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from brainsegfounder.data.layouts.names import subject_and_timepoint

__all__ = ["subject_and_timepoint", "timepoint_order", "longitudinal_rows", "write_longitudinal_csv",
           "volume_plot_svg"]

def timepoint_order(timepoint: str | None) -> tuple:
    """Sort key: numbers inside a time point compare as numbers (``ses-2`` before ``ses-10``)."""
    if timepoint is None:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", timepoint) if p)


def longitudinal_rows(volumes: Mapping[str, Mapping[str, float]], columns: Sequence[str],
                      timepoints: Mapping[str, tuple[str, str | None]] | None = None) -> list[dict]:
    """One row per scan of every subject with two or more time points, in time order.

    Args:
        volumes: case id -> {column: mL}.
        columns: the volume columns to follow (``TC_ml``, ...).
        timepoints: case id -> (subject, time point) overriding :func:`subject_and_timepoint`
            (a manifest's ``session`` column).

    Each row has ``subject``, ``timepoint``, ``case_id``, each column, ``<column>_change_ml``
    (this scan minus the previous one) and ``<column>_change_pct`` (relative to the previous one,
    None where that was 0 mL or for the first scan).
    """
    by_subject: dict[str, list[tuple[str | None, str]]] = {}
    for case_id in volumes:
        subject, timepoint = (timepoints or {}).get(case_id) or subject_and_timepoint(case_id)
        by_subject.setdefault(subject, []).append((timepoint, case_id))
    rows = []
    for subject in sorted(by_subject):
        scans = sorted(by_subject[subject], key=lambda s: (timepoint_order(s[0]), s[1]))
        if len(scans) < 2:
            continue
        previous = None
        for timepoint, case_id in scans:
            row: dict = {"subject": subject, "timepoint": timepoint, "case_id": case_id}
            for column in columns:
                value = float(volumes[case_id][column])
                row[column] = value
                before = None if previous is None else float(volumes[previous][column])
                row[f"{column}_change_ml"] = None if before is None else round(value - before, 6)
                row[f"{column}_change_pct"] = (None if not before else round(100.0 * (value - before) / before, 4))
            rows.append(row)
            previous = case_id
    return rows


def write_longitudinal_csv(rows: Sequence[Mapping], columns: Sequence[str], path: str | Path) -> Path:
    """Write :func:`longitudinal_rows` as CSV (empty cells where a change is undefined)."""
    path = Path(path)
    fields = ["subject", "timepoint", "case_id"]
    for column in columns:
        fields += [column, f"{column}_change_ml", f"{column}_change_pct"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in fields})
    return path


def volume_plot_svg(rows: Sequence[Mapping], columns: Sequence[str], colours: Mapping[str, str],
                    width: int = 420, height: int = 220) -> str:
    """An inline SVG line plot of each column (mL) over one subject's time points (``rows`` in order)."""
    left, right, top, bottom = 48, 90, 12, 30
    values = [float(r[c]) for r in rows for c in columns]
    high = max(values + [1e-9]) * 1.1
    n = len(rows)

    def x(i: int) -> float:
        return left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - v / high)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
             f'role="img" aria-label="volume over time">',
             f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{y(0):.1f}" stroke="#888"/>']
    for fraction in (0.0, 0.5, 1.0):
        v = high / 1.1 * fraction
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:.3g}</text>')
    parts.append(f'<text x="10" y="{top + 8}" font-size="10">mL</text>')
    for i, row in enumerate(rows):
        parts.append(f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="middle" font-size="10">'
                     f'{row["timepoint"]}</text>')
    for k, column in enumerate(columns):
        colour = colours.get(column, "#333")
        points = " ".join(f"{x(i):.1f},{y(float(r[column])):.1f}" for i, r in enumerate(rows))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts += [f'<circle cx="{x(i):.1f}" cy="{y(float(r[column])):.1f}" r="3" fill="{colour}"/>'
                  for i, r in enumerate(rows)]
        parts.append(f'<text x="{width - right + 8}" y="{top + 12 + 14 * k}" font-size="11" fill="{colour}">'
                     f'{column.removesuffix("_ml")}</text>')
    parts.append("</svg>")
    return "".join(parts)
