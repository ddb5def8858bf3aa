"""Rule sets: which metrics score each evaluated region of a label scheme, and how.

A label scheme (:mod:`brainsegfounder.data.regions`) says which regions a label map holds; a rule
set says how a challenge (or a lab, ``plain``) scores them. The two are chosen separately
(``evaluate --scheme ... --rules ...``); a scheme names its default rule set (``scheme.rules``).

================  ==============================================================================
rule set          columns per evaluated region R (units)
================  ==============================================================================
``brats2021``     ``dice_R``, ``hd95_vox_R`` (pooled 95th percentile, voxels); ``dice_mean``
``brats2023``     ``dice_R``, ``hd95_mm_R`` (area-weighted, 374 mm penalty), lesion-wise
                  ``lw_dice_R``, ``lw_hd95_mm_R``, ``lw_tp_R``, ``lw_fn_R``, ``lw_fp_R``
                  (dilation 3, lesions <= 50 mm^3 dropped); ``dice_mean``, ``lw_dice_mean``
``brats2024``     as 2023 with the 2024 parameters (337 mm penalty, per-region dilation and
                  minimum volume: :data:`~brainsegfounder.metrics.BRATS2024_LESION_RULES`)
``atlas``         ``dice``, ``volume_difference`` (voxels), ``simple_lesion_count``,
                  ``lesion_f1``, ``lesion_tp``/``fp``/``fn`` (6-connected); suffixed ``_R``
                  when the scheme has more than one region
``plain``         ``dice_R``, ``hd95_mm_R`` (MONAI, header spacing; one empty mask -> the image
                  diagonal in mm), ``volume_ml_pred_R``, ``volume_ml_ref_R`` (mL), lesion-wise
                  ``lw_dice_R``, ``lw_f1_R``, ``lw_tp_R``, ``lw_fn_R``, ``lw_fp_R``
                  (26-connected lesions, any-voxel overlap, no dilation, no size filter);
                  ``dice_mean``, ``lw_dice_mean``
================  ==============================================================================

A reference with no prediction is scored by :func:`score_missing`: the rule set's worst value in
every column, as the challenges count a missing case (BraTS: Dice 0 and HD95 the penalty).

>>> import numpy as np
>>> scheme, rules = resolve(scheme={"core": [1], "whole": [1, 2]})
>>> rules
'plain'
>>> label = np.zeros((6, 6, 6), np.uint8); label[1:4, 1:4, 1:4] = 2; label[2, 2, 2] = 1
>>> row = score_case(label, label, scheme, rules, (1.0, 1.0, 1.0))
>>> row["dice_core"], row["volume_ml_ref_whole"], row["lw_f1_core"]
(1.0, 0.027, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from brainsegfounder import metrics
from brainsegfounder.data.regions import RULES, SCHEMES, RegionScheme, get_scheme
from brainsegfounder.utils.errors import ConfigError

__all__ = ["TASKS", "UNITS", "missing_rule", "resolve", "score_case", "score_missing"]

#: ``--task`` shorthands: a scheme and its own rule set (``atlas`` = the lesion scheme, atlas rules).
TASKS: dict[str, str] = {"atlas": "lesion"}

#: Units of the columns whose name contains the key (written into the JSON summary).
UNITS: dict[str, str] = {"hd95_vox": "voxels", "hd95_mm": "mm", "volume_difference": "voxels",
                         "volume_ml": "mL"}

Row = dict[str, float]
Masks = Mapping[str, np.ndarray]


def resolve(task: str | None = None, scheme: object = None, rules: str | None = None) -> tuple[RegionScheme, str]:
    """The label scheme and rule set to score with, from ``--task`` or ``--scheme`` / ``--rules``.

    ``task`` is the shorthand ``--scheme task --rules task`` (``atlas``: the ``lesion`` scheme with
    the atlas rules); ``scheme`` is a registered name, a YAML/JSON file or a mapping; ``rules``
    defaults to the scheme's own (``scheme.rules``).

    >>> [(s.name, r) for s, r in (resolve("atlas"), resolve("brats2021"), resolve(None, "brats2024", "plain"))]
    [('lesion', 'atlas'), ('brats2021', 'brats2021'), ('brats2024', 'plain')]
    """
    if task is not None:
        if scheme is not None:
            raise ConfigError(f"--task {task} already chooses the label scheme; give --task or --scheme, not both.")
        name = TASKS.get(task, task)
        if name not in SCHEMES:
            raise ConfigError(f"unknown --task {task!r}; choose one of {sorted({*SCHEMES, *TASKS} - {'lesion'})}, "
                              "or give --scheme (a name or a YAML/JSON file {region: [label values]}) and --rules.")
        scheme = name
    if scheme is None:
        raise ConfigError("say what the labels mean: --task brats2021|brats2023|brats2024|atlas, or --scheme "
                          "NAME|FILE.yaml (with --rules " + "|".join(RULES) + ").")
    scheme = get_scheme(scheme)
    rules = rules or scheme.rules
    if rules not in RULES:
        raise ConfigError(f"unknown --rules {rules!r}; choose one of {', '.join(RULES)}.")
    return scheme, rules


def _mean(row: Row, prefix: str, names: Sequence[str]) -> float:
    return float(np.mean([row[f"{prefix}{n}"] for n in names]))


def _brats2021(pred: Masks, ref: Masks, names, spacing) -> Row:
    row = {f"dice_{n}": metrics.dice(pred[n], ref[n]) for n in names}
    row["dice_mean"] = _mean(row, "dice_", names)
    row.update({f"hd95_vox_{n}": metrics.hd95_brats2021(pred[n], ref[n]) for n in names})
    return row


def _lesionwise_columns(row: Row, name: str, scores: Mapping[str, float], hd95: bool = True) -> None:
    row[f"lw_dice_{name}"] = scores["dice"]
    if hd95:
        row[f"lw_hd95_mm_{name}"] = scores["hd95"]
    for count in ("tp", "fn", "fp"):
        row[f"lw_{count}_{name}"] = scores[count]


def _brats_lesionwise(hd95: Callable, lesionwise: Callable) -> Callable:
    # BraTS 2023 and 2024 share the table's shape; they differ in the HD95 penalty and the
    # lesion-wise parameters, which the two metric functions carry.
    def score(pred: Masks, ref: Masks, names, spacing) -> Row:
        row = {f"dice_{n}": metrics.dice(pred[n], ref[n]) for n in names}
        row["dice_mean"] = _mean(row, "dice_", names)
        row.update({f"hd95_mm_{n}": hd95(pred[n], ref[n], spacing) for n in names})
        for n in names:
            _lesionwise_columns(row, n, lesionwise(pred[n], ref[n], n, spacing))
        row["lw_dice_mean"] = _mean(row, "lw_dice_", names)
        return row

    return score


def _lesionwise_2023(pred, ref, name, spacing):
    return metrics.lesionwise_scores(pred, ref, spacing)


def _atlas(pred: Masks, ref: Masks, names, spacing) -> Row:
    row: Row = {}
    for n in names:
        suffix = "" if len(names) == 1 else f"_{n}"
        p, r = pred[n], ref[n]
        row[f"dice{suffix}"] = metrics.dice(p, r)
        row[f"volume_difference{suffix}"] = metrics.volume_difference(p, r)
        row[f"simple_lesion_count{suffix}"] = metrics.simple_lesion_count(p, r)
        counts = metrics.lesion_detection_counts(p, r)
        row[f"lesion_f1{suffix}"] = metrics.f1_from_counts(**counts)
        row.update({f"lesion_{k}{suffix}": v for k, v in counts.items()})
    return row


def _plain(pred: Masks, ref: Masks, names, spacing) -> Row:
    row = {f"dice_{n}": metrics.dice(pred[n], ref[n]) for n in names}
    row["dice_mean"] = _mean(row, "dice_", names)
    for n in names:
        row[f"hd95_mm_{n}"] = metrics.hd95_mm(pred[n], ref[n], spacing)
        row[f"volume_ml_pred_{n}"] = metrics.volume_ml(pred[n], spacing)
        row[f"volume_ml_ref_{n}"] = metrics.volume_ml(ref[n], spacing)
    for n in names:
        # Any-voxel overlap of 26-connected lesions, no dilation, no size filter; the HD95 penalty
        # is unused because plain reports no lesion-wise HD95.
        scores = metrics.lesionwise_scores(pred[n], ref[n], spacing, dilation_iterations=0,
                                           min_lesion_volume_mm3=0.0, penalty=0.0)
        _lesionwise_columns(row, n, scores, hd95=False)
        row[f"lw_f1_{n}"] = metrics.f1_from_counts(scores["tp"], scores["fp"], scores["fn"])
    row["lw_dice_mean"] = _mean(row, "lw_dice_", names)
    return row


_SCORERS: dict[str, Callable[..., Row]] = {
    "brats2021": _brats2021,
    "brats2023": _brats_lesionwise(metrics.hd95_brats2023, _lesionwise_2023),
    "brats2024": _brats_lesionwise(metrics.hd95_brats2024, metrics.lesionwise_brats2024_region),
    "atlas": _atlas,
    "plain": _plain,
}


def score_case(pred: np.ndarray, ref: np.ndarray, scheme: object, rules: str | None, spacing: Sequence[float]) -> Row:
    """All metrics of one case as a flat ``{column: value}`` dict (the CSV row without the case id).

    Args:
        pred, ref: label maps (X, Y, Z) in the scheme's labels.
        scheme: a :class:`~brainsegfounder.data.regions.RegionScheme`, its name, file or mapping;
            its ``evaluated_regions`` are scored.
        rules: a rule set (see the module table); ``None`` = the scheme's own.
        spacing: voxel size in mm along X, Y, Z (the prediction's header).
    """
    scheme = get_scheme(scheme)
    rules = rules or scheme.rules
    if rules not in _SCORERS:
        raise ConfigError(f"unknown rule set {rules!r}; choose one of {', '.join(RULES)}.")
    pred_masks, ref_masks = scheme.region_masks(pred), scheme.region_masks(ref)
    return _SCORERS[rules](pred_masks, ref_masks, scheme.evaluated_names, tuple(spacing))


def _worst_hd95(rules: str, shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The HD95 a rule set gives a region that was not found (its penalty)."""
    if rules == "brats2021":
        return metrics.image_diagonal(shape)  # voxels, as the 2021 column
    if rules == "brats2023":
        return metrics.BRATS2023_PENALTY_MM
    if rules == "brats2024":
        return metrics.BRATS2024_PENALTY_MM
    return metrics.image_diagonal(shape, spacing)  # plain: the image diagonal in mm


def missing_rule(rules: str, shape: Sequence[int] | None = None, spacing: Sequence[float] | None = None) -> str:
    """In words, how :func:`score_missing` scores a case with no prediction under ``rules``.

    >>> missing_rule("brats2023")
    'Dice 0, HD95 374 mm'
    """
    if rules == "atlas":
        return "Dice 0, lesion F1 0, every reference lesion missed"
    if rules == "brats2021":
        return "Dice 0, HD95 the image diagonal in voxels" + (
            f" ({metrics.image_diagonal(shape):.1f})" if shape is not None else "")
    if rules == "plain":
        return "Dice 0, lesion-wise Dice and F1 0, HD95 the image diagonal in mm"
    return f"Dice 0, HD95 {_worst_hd95(rules, (1, 1, 1), (1.0, 1.0, 1.0)):g} mm"


def score_missing(ref: np.ndarray, scheme: object, rules: str | None, spacing: Sequence[float]) -> Row:
    """The row of a reference case that has no prediction: the rule set's worst score, never left out.

    The challenges count a missing segmentation as a failure: every Dice-like column (Dice,
    lesion-wise Dice, lesion F1, their means) is 0 and every HD95 column the rule set's penalty
    (``brats2021``: the image diagonal in voxels; ``brats2023``: 374 mm; ``brats2024``: 337 mm;
    ``plain``: the image diagonal in mm), whatever the reference holds. The other columns are those
    of an empty prediction: volumes 0, every reference lesion missed (``lw_fn``, ``lesion_fn``),
    the volume and lesion-count differences of an empty map.

    >>> ref = np.zeros((8, 8, 8), np.uint8); ref[1:5, 1:5, 1:5] = 1
    >>> row = score_missing(ref, "brats2023", None, (1.0, 1.0, 1.0))
    >>> row["dice_WT"], row["dice_ET"], row["hd95_mm_ET"], row["lw_dice_mean"], row["lw_fn_TC"]
    (0.0, 0.0, 374.0, 0.0, 1)
    """
    scheme = get_scheme(scheme)
    rules = rules or scheme.rules
    row = score_case(np.zeros_like(ref), ref, scheme, rules, spacing)
    worst = _worst_hd95(rules, ref.shape, spacing)
    for column in row:
        if column.startswith(("dice", "lw_dice", "lesion_f1", "lw_f1")):
            row[column] = 0.0
        elif "hd95" in column:
            row[column] = float(worst)
    return row
