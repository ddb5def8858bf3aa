"""Score a folder of predictions against reference segmentations, the way the challenges do.

::

    python -m brainsegfounder.evaluate --pred runs/predictions --ref /data/BraTS2021 \\
        --task brats2021 --out runs/metrics.csv --png runs/overlays

Predictions are ``<case_id>.nii.gz`` files in one flat folder (what ``brainsegfounder.predict``
writes), on the reference's voxel grid. References are either a data set root in its own layout or
a flat folder of ``<case_id>.nii.gz`` files:

- BraTS 2021: ``BraTS2021_00000/BraTS2021_00000_seg.nii.gz`` -> case ``BraTS2021_00000``
- BraTS 2023: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz`` -> ``BraTS-GLI-00000-000``
- ATLAS v2.0: ``.../sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz``
  -> ``sub-r001s001`` (the subject: ATLAS v2.0 has one session per subject; two masks of one
  subject are refused rather than silently merged).

Writes one CSV row per case (columns per metric and region), a JSON summary beside it
(``<out stem>_summary.json``: mean, std, median per column and the number of cases), prints a
summary table, and with ``--png DIR`` one overlay picture per case. Existing files are never
replaced unless ``--overwrite true``. Metrics and their rules: :mod:`brainsegfounder.metrics`.

From Python:

>>> from brainsegfounder.evaluate import main
>>> main(["--pred", "preds", "--ref", "refs", "--task", "atlas", "--out", "m.csv"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from jsonargparse import CLI
from rich.console import Console
from rich.markup import escape
from rich.progress import track
from rich.table import Table

from brainsegfounder import metrics
from brainsegfounder.errors import BrainSegFounderError, DataError

__all__ = ["case_id_from_reference", "evaluate", "main", "pair_cases", "score_case"]

Task = Literal["brats2021", "brats2023", "atlas"]

_NIFTI = re.compile(r"\.nii(\.gz)?$")
# Names that mark a file as a segmentation inside a data set's own layout.
_SEGMENTATION = re.compile(r"(_seg|-seg|_desc-[^_]*lesion_mask)\.nii(\.gz)?$")
_VALID_LABELS = {"brats2021": {0, 1, 2, 4}, "brats2023": {0, 1, 2, 3}}
# Background images for --png, found beside a reference in the data sets' own layouts.
_BACKGROUNDS = (("_seg", "_flair"), ("-seg", "-t2f"), ("_label-L_desc-T1lesion_mask", "_T1w"))
_MAX_LISTED = 20
_UNITS = {"hd95_vox": "voxels", "hd95_mm": "mm", "volume_difference": "voxels"}


# --------------------------------------------------------------------------------------------------
# Pairing predictions with references


def case_id_from_reference(path: str | Path) -> str:
    """The case id a segmentation file stands for, in any of the supported layouts.

    The same rule names predictions, so a prediction may also keep its reference's file name.

    >>> case_id_from_reference("BraTS2021_00000/BraTS2021_00000_seg.nii.gz")
    'BraTS2021_00000'
    >>> case_id_from_reference("BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz")
    'BraTS-GLI-00000-000'
    >>> case_id_from_reference(
    ...     "sub-r001s001/ses-1/anat/sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz")
    'sub-r001s001'
    >>> case_id_from_reference("predictions/BraTS2021_00000.nii.gz")
    'BraTS2021_00000'
    """
    name = _NIFTI.sub("", Path(path).name)
    if name.startswith("sub-"):
        return name.split("_", 1)[0]
    for suffix in ("_seg", "-seg"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _listing(paths: Sequence[object]) -> str:
    shown = "\n".join(f"  {p}" for p in paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def _by_case(files: list[Path], what: str, folder: Path) -> dict[str, Path]:
    cases: dict[str, list[Path]] = {}
    for path in files:
        cases.setdefault(case_id_from_reference(path), []).append(path)
    duplicates = {case: paths for case, paths in cases.items() if len(paths) > 1}
    if duplicates:
        lines = [f"{case}: {', '.join(str(p) for p in paths)}" for case, paths in sorted(duplicates.items())]
        raise DataError(
            f"{len(duplicates)} case id(s) name more than one {what} file under {folder}:\n"
            f"{_listing(lines)}\nKeep one file per case (for ATLAS, one session per subject)."
        )
    return {case: paths[0] for case, paths in cases.items()}


def _existing_dir(folder: str | Path, what: str, hint: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"the {what} folder {folder} does not exist or is not a folder; {hint}")
    return folder


def find_references(ref_dir: str | Path) -> dict[str, Path]:
    """Reference segmentations under ``ref_dir`` by case id.

    If any NIfTI file below ``ref_dir`` is named like a segmentation (``*_seg``, ``*-seg``,
    ``*_desc-*lesion_mask``), those are the references (a data set root); otherwise every NIfTI file
    directly in ``ref_dir`` is (a flat folder).
    """
    ref_dir = _existing_dir(ref_dir, "reference", "pass a data set root or a folder of <case_id>.nii.gz")
    segmentations = sorted(p for p in ref_dir.rglob("*") if _SEGMENTATION.search(p.name) and p.is_file())
    files = segmentations or sorted(p for p in ref_dir.iterdir() if _NIFTI.search(p.name) and p.is_file())
    if not files:
        raise DataError(
            f"no reference segmentations found under {ref_dir}: expected a data set root "
            "(BraTS2021_*/..._seg.nii.gz, BraTS-*/...-seg.nii.gz, sub-*/ses-*/anat/..._desc-T1lesion_mask.nii.gz) "
            "or a flat folder of <case_id>.nii.gz files."
        )
    return _by_case(files, "reference", ref_dir)


def find_predictions(pred_dir: str | Path) -> dict[str, Path]:
    """Prediction files (``<case_id>.nii.gz`` or ``.nii``) directly in ``pred_dir``, by case id."""
    pred_dir = _existing_dir(pred_dir, "prediction", "pass the folder the predict command wrote")
    files = sorted(p for p in pred_dir.iterdir() if _NIFTI.search(p.name) and p.is_file())
    if not files:
        raise DataError(f"no prediction files (<case_id>.nii.gz) found in {pred_dir}.")
    return _by_case(files, "prediction", pred_dir)


def _pair(pred_dir: str | Path, ref_dir: str | Path, strict: bool) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    predictions = find_predictions(pred_dir)
    references = find_references(ref_dir)
    orphans = sorted(set(predictions) - set(references))
    if orphans:
        raise DataError(
            f"{len(orphans)} prediction(s) in {pred_dir} have no reference under {ref_dir}:\n"
            f"{_listing([predictions[c].name for c in orphans])}\n"
            "Name each prediction <case_id>.nii.gz after its reference case (e.g. BraTS2021_00000.nii.gz, "
            "BraTS-GLI-00000-000.nii.gz, sub-r001s001.nii.gz), or point --ref at the right data set."
        )
    unscored = sorted(set(references) - set(predictions))
    if strict and unscored:
        raise DataError(
            f"{len(unscored)} reference(s) under {ref_dir} have no prediction in {pred_dir}:\n"
            f"{_listing([str(references[c]) for c in unscored])}\n"
            "Predict them, or drop --strict to score only the cases that have predictions."
        )
    pairs = [(case, predictions[case], references[case]) for case in sorted(predictions)]
    return pairs, unscored


def pair_cases(pred_dir: str | Path, ref_dir: str | Path, strict: bool = False) -> list[tuple[str, Path, Path]]:
    """Pair each prediction with its reference: ``[(case_id, prediction, reference), ...]`` by case id.

    Every prediction must have a reference (a :class:`DataError` lists those that do not).
    References without a prediction are left out (a data set root usually holds more cases than the
    fold that was predicted), unless ``strict``, which refuses them too.
    """
    return _pair(pred_dir, ref_dir, strict)[0]


# --------------------------------------------------------------------------------------------------
# Reading and scoring one case


def _load(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    try:
        image = nib.load(str(path))
        return image, np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel and gzip raise many types for unreadable files
        raise DataError(f"cannot read {path}: {err}. Is it a complete NIfTI file?") from err


def _labels(data: np.ndarray, path: Path, task: str) -> np.ndarray:
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
    if task in _VALID_LABELS:
        unexpected = sorted(set(np.unique(data).tolist()) - _VALID_LABELS[task])
        if unexpected:
            other = "brats2023" if task == "brats2021" else "brats2021"
            raise DataError(
                f"{path} holds label values {unexpected}, not part of --task {task} "
                f"(labels {sorted(_VALID_LABELS[task])}). If it uses the other labelling, pass --task {other}."
            )
    return data


def _load_case(case_id: str, pred_path: Path, ref_path: Path, task: str):
    (pred_image, pred_data), (ref_image, ref_data) = _load(pred_path), _load(ref_path)
    pred, ref = _labels(pred_data, pred_path, task), _labels(ref_data, ref_path, task)
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


def score_case(pred: np.ndarray, ref: np.ndarray, task: Task, spacing: Sequence[float]) -> dict[str, float]:
    """All metrics of one case as a flat ``{column: value}`` dict (the CSV row without the case id).

    - ``brats2021``: ``dice_<R>`` and ``hd95_vox_<R>`` (pooled, voxels) for R in TC, WT, ET, and
      ``dice_mean``.
    - ``brats2023``: ``dice_<R>``, ``hd95_mm_<R>`` (whole image), ``lw_dice_<R>``, ``lw_hd95_mm_<R>``,
      ``lw_tp_<R>``, ``lw_fn_<R>``, ``lw_fp_<R>``, and ``dice_mean``, ``lw_dice_mean``.
    - ``atlas``: ``dice``, ``volume_difference`` (voxels), ``simple_lesion_count``, ``lesion_f1``,
      ``lesion_tp``, ``lesion_fp``, ``lesion_fn``.
    """
    row: dict[str, float] = {}
    if task == "atlas":
        pred_mask, ref_mask = pred > 0, ref > 0
        row["dice"] = metrics.dice(pred_mask, ref_mask)
        row["volume_difference"] = metrics.volume_difference(pred_mask, ref_mask)
        row["simple_lesion_count"] = metrics.simple_lesion_count(pred_mask, ref_mask)
        row["lesion_f1"] = metrics.lesion_f1(pred_mask, ref_mask)
        counts = metrics.lesion_detection_counts(pred_mask, ref_mask)
        row.update({f"lesion_{k}": v for k, v in counts.items()})
        return row
    pred_regions = metrics.brats_regions(pred, task)
    ref_regions = metrics.brats_regions(ref, task)
    for i, region in enumerate(metrics.REGIONS):
        row[f"dice_{region}"] = metrics.dice(pred_regions[i], ref_regions[i])
    row["dice_mean"] = float(np.mean([row[f"dice_{r}"] for r in metrics.REGIONS]))
    if task == "brats2021":
        for i, region in enumerate(metrics.REGIONS):
            row[f"hd95_vox_{region}"] = metrics.hd95_brats2021(pred_regions[i], ref_regions[i])
        return row
    for i, region in enumerate(metrics.REGIONS):
        row[f"hd95_mm_{region}"] = metrics.hd95_brats2023(pred_regions[i], ref_regions[i], spacing)
    for i, region in enumerate(metrics.REGIONS):
        scores = metrics.lesionwise_scores(pred_regions[i], ref_regions[i], spacing)
        row[f"lw_dice_{region}"] = scores["dice"]
        row[f"lw_hd95_mm_{region}"] = scores["hd95"]
        for count in ("tp", "fn", "fp"):
            row[f"lw_{count}_{region}"] = scores[count]
    row["lw_dice_mean"] = float(np.mean([row[f"lw_dice_{r}"] for r in metrics.REGIONS]))
    return row


def _background(ref_path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    # Keep it simple: only the data sets' own layouts put an image beside the segmentation.
    name = ref_path.name
    for seg, image in _BACKGROUNDS:
        if seg in name:
            candidate = ref_path.with_name(name.replace(seg, image))
            if candidate.is_file():
                data = np.asanyarray(nib.load(str(candidate)).dataobj)
                return data if data.shape == shape else None
    return None


def _overlay(case_id: str, pred: np.ndarray, ref: np.ndarray, ref_path: Path, task: str,
             row: dict[str, float], spacing: Sequence[float], path: Path) -> None:
    from brainsegfounder.visualize import save_overlay  # matplotlib only when pictures are asked for

    score = f"Dice {row['dice']:.3f}" if task == "atlas" else "  ".join(
        f"Dice {r} {row[f'dice_{r}']:.3f}" for r in metrics.REGIONS)
    save_overlay(_background(ref_path, ref.shape), pred, path, title=f"{case_id}   prediction, {score}",
                 convention="binary" if task == "atlas" else task, reference=ref, spacing=spacing)


# --------------------------------------------------------------------------------------------------
# Summaries and the command line


def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (sample, ddof=1; 0 for one case) and median of every metric column."""
    columns = [c for c in rows[0] if c != "case_id"]
    summary = {}
    for column in columns:
        values = np.asarray([row[column] for row in rows], np.float64)
        summary[column] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "median": float(np.median(values)),
        }
    return summary


def _summary_path(out: Path) -> Path:
    return out.with_name(out.stem + "_summary.json")


def _refuse_overwrite(paths: list[Path]) -> None:
    existing = [p for p in paths if p.exists()]
    if existing:
        raise BrainSegFounderError(
            f"{len(existing)} output file(s) already exist:\n{_listing(existing)}\n"
            "Pass --overwrite true to replace them, or choose another --out / --png."
        )


def evaluate(
    pred: Path,
    ref: Path,
    task: Task,
    out: Path,
    png: Path | None = None,
    overwrite: bool = False,
    strict: bool = False,
) -> dict:
    """Score predictions against references as the BraTS 2021, BraTS 2023 or ATLAS 2022 challenge did.

    Args:
        pred: folder of predictions, one <case_id>.nii.gz label map per case, on the reference grid.
        ref: data set root in its own layout, or a flat folder of <case_id>.nii.gz references.
        task: brats2021 (labels 1, 2, 4; Dice and pooled HD95 in voxels), brats2023 (labels 1, 2, 3;
            Dice, HD95 in mm, lesion-wise Dice and HD95) or atlas (binary; Dice, volume difference,
            lesion count difference, lesion-wise F1).
        out: CSV file to write, one row per case; the summary goes to <out stem>_summary.json.
        png: folder for one overlay picture per case (<case_id>.png); none if not given.
        overwrite: replace existing output files.
        strict: refuse references that have no prediction (default: score only predicted cases).

    Returns:
        The summary written to the JSON file.
    """
    out, summary_path = Path(out), _summary_path(Path(out))
    pairs, unscored = _pair(pred, ref, strict)
    if not overwrite:
        pngs = [Path(png) / f"{case}.png" for case, _, _ in pairs] if png is not None else []
        _refuse_overwrite([out, summary_path, *pngs])

    console = Console(stderr=True)
    rows = []
    for case_id, pred_path, ref_path in track(pairs, description="scoring", console=console, transient=True):
        pred_labels, ref_labels, spacing = _load_case(case_id, pred_path, ref_path, task)
        row = score_case(pred_labels, ref_labels, task, spacing)
        rows.append({"case_id": case_id, **row})
        if png is not None:
            _overlay(case_id, pred_labels, ref_labels, ref_path, task, row, spacing, Path(png) / f"{case_id}.png")

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "task": task,
        "n_cases": len(rows),
        "n_references_without_prediction": len(unscored),
        "units": {key: unit for key, unit in _UNITS.items() if any(key in column for column in rows[0])},
        "metrics": summarise(rows),
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")

    table = Table(title=f"{task}: {len(rows)} case(s)")
    for heading in ("metric", "mean", "std", "median"):
        table.add_column(heading, justify="left" if heading == "metric" else "right")
    for column, stats in summary["metrics"].items():
        table.add_row(column, *(f"{stats[k]:.4f}" for k in ("mean", "std", "median")))
    Console().print(table)
    if unscored:
        console.print(f"{len(unscored)} reference(s) have no prediction and were not scored "
                      "(--strict true refuses this).")
    console.print(f"wrote {out} and {summary_path}" + (f" and overlays in {png}" if png is not None else ""))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a problem with the inputs)."""
    try:
        CLI(evaluate, args=argv, as_positional=False, prog="python -m brainsegfounder.evaluate")
    except BrainSegFounderError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(err))}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
