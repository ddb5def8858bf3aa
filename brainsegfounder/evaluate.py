"""Score a folder of predictions against reference segmentations, the way the challenges do.

::

    python -m brainsegfounder.evaluate --pred runs/predictions --ref /data/BraTS2021 \\
        --task brats2021 --out runs/metrics.csv --png runs/overlays
    python -m brainsegfounder.evaluate --pred preds --ref refs --scheme my_labels.yaml --out m.csv

What the labels mean is a label scheme (``--scheme brats2021|brats2023|brats2024|lesion|FILE.yaml``,
:mod:`brainsegfounder.data.regions`; a file ``{region: [label values], ...}`` for a lab's own
labels); how they are scored is a rule set (``--rules brats2021|brats2023|brats2024|atlas|plain``,
default: the scheme's own; columns and rules: :mod:`brainsegfounder.evaluation.rules`).
``--task X`` is the shorthand for ``--scheme X --rules X`` (``atlas``: the lesion scheme).

Predictions are ``<case_id>.nii.gz`` files in one flat folder (what ``brainsegfounder.predict``
writes), on the reference's voxel grid. References are either a data set root in its own layout or
a flat folder of ``<case_id>.nii.gz`` files:

- BraTS 2021: ``BraTS2021_00000/BraTS2021_00000_seg.nii.gz`` -> case ``BraTS2021_00000``
- BraTS 2023/2024: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz`` -> ``BraTS-GLI-00000-000``
- ATLAS v2.0: ``.../sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz``
  -> ``sub-r001s001`` (the subject: ATLAS v2.0 has one session per subject; two masks of one
  subject are refused rather than silently merged).

Every reference case counts: one with no prediction is scored as the rule set scores a missing
case (BraTS: Dice 0 and HD95 the penalty; :func:`brainsegfounder.evaluation.rules.score_missing`),
marked ``missing_prediction`` 1 in the CSV and named on screen and in the summary ("scored 3 of 3
cases, 1 missing prediction counted as failure"); ``--missing error`` refuses instead. To score part
of a data set root (a held-out fold), name its cases with ``--subjects``. A prediction with no
reference is named and not scored.

Writes one CSV row per case (columns per metric and region), a JSON summary beside it
(``<out stem>_summary.json``: mean, std, median per column, the number of cases and which had no
prediction), prints a summary table, and with ``--png DIR`` one overlay picture per predicted case.
Existing files are never replaced unless ``--overwrite``. Label values the scheme does not know are
refused, naming the file.

From Python:

>>> from brainsegfounder.evaluate import main
>>> main(["--pred", "preds", "--ref", "refs", "--task", "atlas", "--out", "m.csv"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

# Case pairing and naming live in one swappable module (see its docstring); re-exported here.
from brainsegfounder.evaluation.pairing import (
    _listing,
    background_image,
    case_id_from_reference,
    find_predictions,
    find_references,
    match_cases,
    pair_cases,
)
from brainsegfounder.utils.errors import BrainSegFounderError, ConfigError, DataError

__all__ = ["case_id_from_reference", "evaluate", "find_predictions", "find_references", "main",
           "pair_cases", "score_case", "summarise"]

_PROG = "python -m brainsegfounder.evaluate"


def score_case(pred, ref, task: object, spacing: Sequence[float], rules: str | None = None) -> dict[str, float]:
    """All metrics of one case as a flat ``{column: value}`` dict (the CSV row without the case id).

    ``task`` is a ``--task`` name (``brats2021``, ``brats2023``, ``brats2024``, ``atlas``) or a label
    scheme; ``rules`` overrides the rule set. Columns: :mod:`brainsegfounder.evaluation.rules`.
    """
    from brainsegfounder.evaluation import rules as rule_sets

    if isinstance(task, str) and (task in rule_sets.TASKS or task in rule_sets.SCHEMES):
        scheme, chosen = rule_sets.resolve(task=task, rules=rules)
    else:
        scheme, chosen = rule_sets.resolve(scheme=task, rules=rules)
    return rule_sets.score_case(pred, ref, scheme, chosen, spacing)


# --------------------------------------------------------------------------------------------------
# Reading one case


def _load(path: Path):
    import nibabel as nib
    import numpy as np

    try:
        image = nib.load(str(path))
        return image, np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel and gzip raise many types for unreadable files
        raise DataError(f"cannot read {path}: {err}. Is it a complete NIfTI file?") from err


def _unknown_labels_hint(values: list[int], scheme, task: str | None) -> str:
    from brainsegfounder.data.regions import SCHEMES

    present = set(values)
    fits = [n for n, s in SCHEMES.items() if n != scheme.name and present <= s.label_values]
    option = "--task" if task is not None else "--scheme"
    if fits:
        return f"If it uses another labelling, pass {option} " + " or ".join(fits) + "."
    return "Give --scheme FILE.yaml ({region: [label values]}) describing its labels."


def _labels(data, path: Path, scheme, task: str | None):
    import numpy as np

    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path} holds a {data.ndim}D array of shape {data.shape}; expected one 3D label map.")
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise DataError(
                f"{path} holds non-integer values (e.g. {data[data != rounded].flat[0]:g}): it looks like "
                "probabilities; write a thresholded label map instead."
            )
        data = rounded
    data = data.astype(np.int16)
    unexpected = scheme.invalid_values(np.unique(data))
    if unexpected:
        raise DataError(
            f"{path} holds label values {unexpected}, not part of label scheme {scheme.name} "
            f"(labels {sorted(scheme.label_values)}). {_unknown_labels_hint(np.unique(data).tolist(), scheme, task)}"
        )
    return data


def _load_case(case_id: str, pred_path: Path, ref_path: Path, scheme, task: str | None):
    import numpy as np

    (pred_image, pred_data), (ref_image, ref_data) = _load(pred_path), _load(ref_path)
    pred, ref = _labels(pred_data, pred_path, scheme, task), _labels(ref_data, ref_path, scheme, task)
    if pred.shape != ref.shape:
        raise DataError(
            f"case {case_id}: prediction {pred_path} has shape {pred.shape} but reference {ref_path} has "
            f"{ref.shape}. Write predictions on the reference's voxel grid (resample or undo any cropping)."
        )
    if not np.allclose(pred_image.affine, ref_image.affine, atol=1e-3):
        raise DataError(
            f"case {case_id}: prediction {pred_path} and reference {ref_path} have different affines\n"
            f"{np.array2string(pred_image.affine, precision=3)}\nvs\n"
            f"{np.array2string(ref_image.affine, precision=3)}\n"
            "They are not on the same voxel grid: save the prediction with the reference image's affine "
            "(after undoing any reorientation)."
        )
    spacing = tuple(float(z) for z in pred_image.header.get_zooms()[:3])
    return pred, ref, spacing


def _calibration(case_id: str, folder: Path, ref, ref_path: Path, scheme) -> dict[str, float]:
    """``ece_<R>`` and ``brier_<R>`` of ``<folder>/<case_id>.nii.gz`` (X, Y, Z, R) against ``ref``'s regions."""
    import numpy as np

    from brainsegfounder.evaluation.pairing import background_image
    from brainsegfounder.inference.calibration import calibration_per_region

    path = folder / f"{case_id}.nii.gz"
    if not path.is_file():
        raise DataError(f"case {case_id}: no probability map {path}; predict with --probabilities into the "
                        "same --output, or leave --probabilities out.")
    data = np.asarray(_load(path)[1], dtype=np.float32)
    expected = (*ref.shape, len(scheme.names))
    if data.shape != expected:
        raise DataError(f"case {case_id}: probability map {path} has shape {data.shape}, expected {expected} "
                        f"(regions {', '.join(scheme.names)} along the 4th axis, on the reference grid).")
    image = background_image(ref_path, ref.shape)
    mask = image != 0 if image is not None else None
    return calibration_per_region(np.moveaxis(data, -1, 0), scheme.channel_masks(ref), scheme.names, mask=mask)


def _overlay(case_id: str, pred, ref, ref_path: Path, scheme, row: dict[str, float],
             spacing: Sequence[float], path: Path) -> None:
    from brainsegfounder.report.overlays import save_overlay  # matplotlib only when pictures are asked for

    score = f"Dice {row['dice']:.3f}" if "dice" in row else "  ".join(
        f"Dice {r} {row[f'dice_{r}']:.3f}" for r in scheme.evaluated_names if f"dice_{r}" in row)
    save_overlay(background_image(ref_path, ref.shape), pred, path, title=f"{case_id}   prediction, {score}",
                 scheme=scheme, reference=ref, spacing=spacing)


# --------------------------------------------------------------------------------------------------
# Summaries and the command


#: CSV column that marks a reference case scored without a prediction (1), not a metric.
MISSING_COLUMN = "missing_prediction"


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (sample, ddof=1; 0 for one case) and median of every metric column."""
    import numpy as np

    columns = [c for c in rows[0] if c not in ("case_id", MISSING_COLUMN)]
    summary = {}
    for column in columns:
        values = np.asarray([row[column] for row in rows], np.float64)
        summary[column] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "median": float(np.median(values)),
        }
    return summary


def _refuse_overwrite(paths: list[Path]) -> None:
    existing = [p for p in paths if p.exists()]
    if existing:
        raise BrainSegFounderError(
            f"{len(existing)} output file(s) already exist:\n{_listing(existing)}\n"
            "Pass --overwrite to replace them, or choose another --out / --png."
        )


def _write(out: Path, summary_path: Path, rows: list[dict], summary: dict) -> None:
    import csv
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")


def _print_table(summary: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for heading in ("metric", "mean", "std", "median"):
        table.add_column(heading, justify="left" if heading == "metric" else "right")
    for column, stats in summary["metrics"].items():
        table.add_row(column, *(f"{stats[k]:.4f}" for k in ("mean", "std", "median")))
    Console().print(table)


def evaluate(
    pred: Path,
    ref: Path,
    task: str | None = None,
    out: Path | None = None,
    png: Path | None = None,
    overwrite: bool = False,
    strict: bool = False,
    scheme: str | None = None,
    rules: str | None = None,
    probabilities: Path | None = None,
    report: Path | None = None,
    missing: str = "fail",
    subjects: list[str] | None = None,
) -> dict:
    """Score predictions against references with a label scheme and a challenge's rule set.

    Args:
        pred: folder of predictions, one <case_id>.nii.gz label map per case, on the reference grid.
        ref: data set root in its own layout, or a flat folder of <case_id>.nii.gz references.
        task: shorthand for --scheme TASK --rules TASK: brats2021 (Dice and pooled HD95 in
            voxels), brats2023 (Dice, HD95 in mm, lesion-wise Dice and HD95), brats2024
            (post-treatment: six regions, the 2024 lesion-wise rules) or atlas (binary lesion;
            Dice, volume difference, lesion count difference, lesion-wise F1).
        out: CSV file to write, one row per case; the summary goes to <out stem>_summary.json.
        png: folder for one overlay picture per case (<case_id>.png); none if not given.
        overwrite: replace existing output files (--overwrite, or --overwrite true).
        strict: the same as --missing error (kept for older scripts).
        scheme: what the labels mean, instead of --task: brats2021, brats2023, brats2024, lesion,
            or a YAML/JSON file {region: [label values], ...} for your own labels.
        rules: how to score: brats2021, brats2023, brats2024, atlas or plain (per region Dice,
            HD95 in mm, volumes in mL, lesion-wise Dice and F1); default: the scheme's own.
        probabilities: folder of probability maps, <case_id>.nii.gz with one region per volume along
            the 4th axis (what predict --probabilities writes): adds ece_<REGION> and
            brier_<REGION> columns (15 equal-width bins; over the brain, the non-zero voxels of the
            layout's background image beside the reference, else the whole image).
        report: also write this offline HTML report (brainsegfounder.report): the case table with
            these metrics, per-case viewers over the reference's background, provenance.
        missing: a reference case with no prediction: fail (the challenge rule, the default: scored
            as a failure, the rule set's worst value: BraTS Dice 0 and HD95 the penalty, and named)
            or error (refuse, listing them).
        subjects: score only these reference cases (e.g. the held-out fold of a data set root:
            --subjects '[BraTS2021_00003,BraTS2021_00007]'); default: every reference under --ref.

    Returns:
        The summary written to the JSON file.
    """
    from rich.console import Console
    from rich.progress import track

    from brainsegfounder.evaluation.rules import UNITS, missing_rule, resolve, score_missing
    from brainsegfounder.evaluation.rules import score_case as score

    if out is None:
        raise ConfigError("--out is required: the CSV file to write (e.g. --out runs/metrics.csv).")
    if missing not in ("fail", "error"):
        raise ConfigError(f"--missing {missing!r}: choose fail (a reference with no prediction scores as a "
                          "failure, the challenge rule; the default) or error (refuse).")
    missing = "error" if strict else missing
    label_scheme, rule_set = resolve(task, scheme, rules)
    out = Path(out)
    summary_path = out.with_name(out.stem + "_summary.json")
    pairs, absent, orphans = match_cases(pred, ref, subjects)
    if absent and missing == "error":
        raise DataError(f"{len(absent)} reference case(s) under {ref} have no prediction in {pred}: "
                        f"{_names([case for case, _ in absent])}. Predict them, or leave out --missing error "
                        "to score them as failures (the challenge rule); --subjects scores part of a data set.")
    if not overwrite:
        pngs = [Path(png) / f"{case}.png" for case, _, _ in pairs] if png is not None else []
        _refuse_overwrite([out, summary_path, *pngs])

    console = Console(stderr=True)
    if orphans:
        console.print(f"{len(orphans)} prediction(s) have no reference under {ref} and were not scored: "
                      f"{_names([case for case, _ in orphans])}", soft_wrap=True, highlight=False)
    jobs = [(case, pred_path, ref_path) for case, pred_path, ref_path in pairs]
    jobs += [(case, None, ref_path) for case, ref_path in absent]
    rows = []
    for case_id, pred_path, ref_path in track(sorted(jobs, key=lambda job: job[0]), description="scoring",
                                              console=console, transient=True):
        if pred_path is None:  # no prediction: the rule set's worst score, as the challenges count it
            image, ref_data = _load(ref_path)
            ref_labels = _labels(ref_data, ref_path, label_scheme, task)
            row = score_missing(ref_labels, label_scheme, rule_set, tuple(float(z) for z in image.header.get_zooms()[:3]))
            if probabilities is not None:
                row.update({f"{kind}_{name}": 1.0 for name in label_scheme.names for kind in ("ece", "brier")})
            rows.append({"case_id": case_id, MISSING_COLUMN: 1, **row})
            continue
        pred_labels, ref_labels, spacing = _load_case(case_id, pred_path, ref_path, label_scheme, task)
        row = score(pred_labels, ref_labels, label_scheme, rule_set, spacing)
        if probabilities is not None:
            row.update(_calibration(case_id, Path(probabilities), ref_labels, ref_path, label_scheme))
        rows.append({"case_id": case_id, MISSING_COLUMN: 0, **row})
        if png is not None:
            _overlay(case_id, pred_labels, ref_labels, ref_path, label_scheme, row, spacing,
                     Path(png) / f"{case_id}.png")

    counted = (f"{len(absent)} missing prediction(s) counted as failure ({missing_rule(rule_set)})"
               if absent else "every case predicted")
    summary = {
        "task": task,
        "scheme": label_scheme.name,
        "rules": rule_set,
        "regions": {name: list(values) for name, values in label_scheme.evaluated_regions},
        "n_cases": len(rows),
        "n_predicted": len(pairs),
        "n_references_without_prediction": len(absent),
        "missing_predictions": [case for case, _ in absent],
        "missing_prediction_scored_as": missing_rule(rule_set) if absent else None,
        "predictions_without_reference": [case for case, _ in orphans],
        "units": {key: unit for key, unit in UNITS.items() if any(key in column for column in rows[0])},
        "metrics": summarise(rows),
    }
    _write(out, summary_path, rows, summary)
    _print_table(summary, f"{task or label_scheme.name} ({rule_set} rules): {len(rows)} case(s), {counted}")
    console.print(f"scored {len(rows)} of {len(rows)} cases, {counted}"
                  + (f": {_names([case for case, _ in absent])}" if absent else ""), soft_wrap=True, highlight=False)
    console.print(f"wrote {out} and {summary_path}" + (f" and overlays in {png}" if png is not None else ""),
                  soft_wrap=True)  # paths whole, never broken at the console's width
    if report is not None:
        from brainsegfounder.report import write_report

        written = write_report(pred, out=report, inputs=ref, metrics=out, scheme=label_scheme, overlays=png)
        console.print(f"wrote the report {written.get('report', report)}", soft_wrap=True)
    return summary


def _names(cases: list[str], shown: int = 10) -> str:
    return ", ".join(cases[:shown]) + (f" and {len(cases) - shown} more" if len(cases) > shown else "")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a problem with the inputs)."""
    from brainsegfounder.utils.cli import command

    try:
        command(evaluate, argv, prog=_PROG)
    except SystemExit as stop:  # a refused input (cli.fail) or a parser error; --help exits 0
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
