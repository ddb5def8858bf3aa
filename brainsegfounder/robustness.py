"""How a model copes with missing modalities: Dice per region for every non-empty subset of its inputs.

::

    python -m brainsegfounder.robustness --ckpt runs/demo/finetune/version_0/checkpoints/last.ckpt \\
        --data data/synthetic_brats2021 --layout brats2021 --split_file runs/demo/finetune/version_0/split.json \\
        --out runs/robustness

For each labelled case and each non-empty subset of the model's modalities (15 for BraTS's four),
the absent ones are given to the model as missing (a channel of
:data:`~brainsegfounder.data.modality_dropout.MISSING_VALUE`, exactly what a missing file becomes
at prediction), and the Dice of each region is scored against the reference. A model trained
with modality dropout should lose little; a normally trained one, fed zeros, collapses.

Outputs in ``--out``: ``robustness.csv`` (one row per case and subset), ``robustness.md`` (the
mean per subset, the table the docs publish) and ``robustness.png`` (the same as a heat map).

Dice is measured on the model's grid (after the checkpoint's preprocessing: canonical
orientation, its spacing and crop, padding), as validation during training measures it.

From Python, any predictor fits the study (``predict_fn(case_images) -> label map``, with
``case_images`` a dict modality -> preprocessed ``(X, Y, Z)`` array or ``None`` when missing):

>>> import numpy as np
>>> from brainsegfounder.data.regions import get_scheme
>>> label = np.zeros((6, 6, 6), np.uint8); label[2:4, 2:4, 2:4] = 1
>>> cases = [("case0", {"t1": np.ones((6, 6, 6)), "flair": np.ones((6, 6, 6))}, label)]
>>> oracle = lambda images: label if images["flair"] is not None else np.zeros_like(label)
>>> rows = robustness_study(oracle, cases, ["t1", "flair"], get_scheme("lesion"))
>>> [(r["modalities"], r["dice_lesion"]) for r in rows]
[('t1+flair', 1.0), ('t1', 0.0), ('flair', 1.0)]
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brainsegfounder.utils.cli import command
from brainsegfounder.utils.errors import DataError, WeightsError

if TYPE_CHECKING:  # torch, TorchIO and MONAI load inside the functions: --help answers at once
    from brainsegfounder.data.regions import RegionScheme

__all__ = ["LoadedModel", "PredictFn", "load_model", "main", "module_predict_fn", "plot_study", "predictor_predict_fn",
           "robustness",
           "robustness_study", "summarise", "write_study"]

PredictFn = Callable[[Mapping[str, "np.ndarray | None"]], np.ndarray]
#: One labelled case as the study reads it: (case id, modality -> preprocessed array, label map).
StudyCase = tuple[str, Mapping[str, np.ndarray], np.ndarray]


def robustness_study(predict_fn: PredictFn, cases: Iterable[StudyCase], modalities: Sequence[str],
                     scheme: RegionScheme, subsets: Sequence[Sequence[str]] | None = None) -> list[dict]:
    """Dice per region of ``predict_fn`` on every case, for every subset of ``modalities``.

    Args:
        predict_fn: modality -> array (or ``None`` for a missing one) -> label map in ``scheme``'s values.
        cases: ``(case id, images, label)`` triples on one grid; read lazily, one case at a time.
        modalities: the model's modalities in channel order.
        scheme: the label scheme of the labels and the predictions.
        subsets: which subsets to try (default: all non-empty ones, fullest first).

    Returns:
        one row per case and subset: ``case``, ``modalities`` (``flair+t1``), ``n_modalities``,
        ``missing`` (``t1ce+t2``), ``dice_<REGION>`` for each region channel and ``dice_mean``.
    """
    from brainsegfounder.data.modality_dropout import nonempty_subsets
    from brainsegfounder.inference.subsets import subset_dice, subset_name

    subsets = [tuple(s) for s in subsets] if subsets is not None else nonempty_subsets(modalities)
    rows = []
    def predict_masks(given):
        return scheme.channel_masks(np.asarray(predict_fn(given)))

    for case_id, images, label in cases:
        per_subset = subset_dice(predict_masks, images, scheme.channel_masks(label), modalities, subsets)
        for subset in subsets:
            scores = {f"dice_{n}": d for n, d in zip(scheme.names, per_subset[subset_name(subset)], strict=True)}
            rows.append({"case": case_id, "modalities": subset_name(subset), "n_modalities": len(subset),
                         "missing": subset_name([m for m in modalities if m not in subset]), **scores,
                         "dice_mean": float(np.mean(list(scores.values())))})
    return rows


def summarise(rows: Sequence[dict]) -> list[dict]:
    """The mean of every ``dice_*`` column per subset, in the rows' subset order, with ``cases``."""
    summary: dict[str, dict] = {}
    for row in rows:
        entry = summary.setdefault(row["modalities"], {"modalities": row["modalities"],
                                                       "n_modalities": row["n_modalities"], "values": []})
        entry["values"].append(row)
    out = []
    for entry in summary.values():
        keys = [k for k in entry["values"][0] if k.startswith("dice_")]
        means = {k: float(np.mean([r[k] for r in entry["values"]])) for k in keys}
        out.append({"modalities": entry["modalities"], "n_modalities": entry["n_modalities"],
                    "cases": len(entry["values"]), **means})
    return out


def plot_study(summary: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """A heat map: subsets (rows) x regions and their mean (columns), Dice written in each cell (PNG)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed on servers

    columns = [k for k in summary[0] if k.startswith("dice_")]
    values = np.array([[row[c] for c in columns] for row in summary])
    figure = Figure(figsize=(1.1 * len(columns) + 2.6, 0.32 * len(summary) + 1.2), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(columns)), [c.removeprefix("dice_") for c in columns])
    axes.set_yticks(range(len(summary)), [row["modalities"] for row in summary])
    for (i, j), value in np.ndenumerate(values):
        axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                  color="black" if value > 0.6 else "white")
    axes.set_title(title or "Dice by available modalities")
    figure.colorbar(image, ax=axes, label="Dice")
    figure.savefig(path, dpi=120)
    return Path(path)


def write_study(rows: Sequence[dict], out: str | Path, title: str = "") -> dict[str, Path]:
    """Write ``robustness.csv`` (all rows), ``robustness.md`` (means per subset) and ``robustness.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "robustness.csv", "md": out / "robustness.md", "png": out / "robustness.png"}
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    columns = [k for k in summary[0] if k.startswith("dice_")]
    lines = ["| modalities | cases | " + " | ".join(c.removeprefix("dice_") for c in columns) + " |",
             "| --- | --- |" + " --- |" * len(columns)]
    lines += [f"| {row['modalities']} | {row['cases']} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |"
              for row in summary]
    paths["md"].write_text((f"{title}\n\n" if title else "") + "\n".join(lines) + "\n")
    plot_study(summary, paths["png"], title)
    return paths


# --------------------------------------------------------------------------------------------------
# Checkpoints as a predict_fn, through the one predictor that ``predict`` uses


@dataclass
class LoadedModel:
    """What the study needs of a model.

    Attributes:
        predict_fn: see :func:`robustness_study`.
        modalities: the model's modalities in channel order.
        scheme: its label scheme.
        transform: the preprocessing each case (images and label) goes through before ``predict_fn``.
        name: how the model is called in titles (the checkpoint's file name).
    """

    predict_fn: PredictFn
    modalities: tuple[str, ...]
    scheme: RegionScheme
    transform: Callable | None = None
    name: str = ""


def module_predict_fn(module, modalities: Sequence[str], threshold: float | None = None) -> PredictFn:
    """A :class:`~brainsegfounder.tasks.segmentation.SegmentationModule` as a ``predict_fn``.

    The module is wrapped in a one-member :class:`~brainsegfounder.inference.predictor.Predictor`
    (see :func:`predictor_predict_fn`) on the module's device.
    """
    from brainsegfounder.inference.predictor import Predictor

    device = next(module.parameters()).device
    return predictor_predict_fn(Predictor([module], device=device, threshold=threshold, modalities=modalities))


def predictor_predict_fn(predictor) -> PredictFn:
    """A :class:`~brainsegfounder.inference.predictor.Predictor` as a ``predict_fn``.

    Missing modalities become constant channels (:func:`missing_channels_tensor`), whatever the
    checkpoints accept (a normal model fed constants is the study's baseline); the predictor's
    sliding window, ensemble, mirrorings and calibrated temperatures apply; probabilities above
    its threshold are painted into a label map by its scheme.
    """
    modalities = list(predictor.modalities)

    from brainsegfounder.data.modality_dropout import missing_channels_tensor

    def predict(images: Mapping[str, np.ndarray | None]) -> np.ndarray:
        x = missing_channels_tensor(images, modalities).unsqueeze(0)
        probabilities = predictor.probabilities(x)[0].cpu()
        return predictor.scheme.label_from_channels((probabilities > predictor.threshold).numpy())

    return predict


def load_model(ckpt: str | Path | Sequence[str | Path], device: str = "cpu", tta: bool = False) -> LoadedModel:
    """Read segmentation checkpoint(s) (``weights_only``) into a :class:`LoadedModel` by the real predictor.

    Several checkpoints form an ensemble; ``tta`` adds the 8 mirrorings; temperatures of a
    calibrated checkpoint apply.
    """
    import torchio as tio

    from brainsegfounder.inference.predictor import Predictor

    paths = [ckpt] if isinstance(ckpt, str | Path) else list(ckpt)
    predictor = Predictor.from_checkpoints(paths, device=device, tta=tta)
    if not predictor.modalities:
        raise WeightsError(f"checkpoint {paths[0]} does not record its modalities; it was written by an older "
                           "version. Re-save it from a fit run of this version.")
    return LoadedModel(predictor_predict_fn(predictor), tuple(predictor.modalities), predictor.scheme,
                       tio.Compose(predictor.transform().transforms), ", ".join(Path(p).name for p in paths))


def read_cases(data: str | Path, layout: str, modalities: Sequence[str], transform: Callable | None = None,
               subjects: Sequence[str] | None = None) -> Iterable[StudyCase]:
    """Labelled cases of ``data`` (one at a time) as ``(id, images, label)`` after ``transform``."""
    from brainsegfounder.data.layouts import cases_to_subjects, find_cases

    cases = find_cases(layout, data)
    if subjects is not None:
        wanted = set(subjects)
        unknown = sorted(wanted - {c.subject_id for c in cases})
        if unknown:
            raise DataError(f"subjects {unknown[:5]} are not {layout} cases of {data}; check --subjects or "
                            "--split_file (it must belong to this data set).")
        cases = [c for c in cases if c.subject_id in wanted]
    missing = [m for m in modalities if any(m not in c.images for c in cases)]
    unlabelled = [c.subject_id for c in cases if c.label is None]
    if missing or unlabelled:
        raise DataError(f"the robustness study needs every case complete and labelled; {data}: modalities "
                        f"{missing} absent from some cases, no label for {unlabelled[:5]}.")
    for case in cases:
        case.images = {m: case.images[m] for m in modalities}
        subject = cases_to_subjects([case])[0]
        subject.load()
        if transform is not None:
            subject = transform(subject)
        images = {m: subject[m].data[0].numpy() for m in modalities}
        yield case.subject_id, images, subject["label"].data[0].numpy()


def robustness(ckpt: str, data: str, layout: str = "brats2021", out: str = "runs/robustness",
               split_file: str | None = None, subjects: list[str] | None = None, max_cases: int | None = None,
               subsets: list[str] | None = None, device: str = "cpu", tta: bool = False) -> dict[str, Path]:
    """Dice per region for every non-empty subset of a checkpoint's modalities on a labelled set.

    Args:
        ckpt: a segmentation checkpoint (``.ckpt`` written by ``brainsegfounder.fit``).
        data: the labelled data set root.
        layout: its folder layout (``brats2021``, ``brats2023``, ``atlas``, ...).
        out: folder for ``robustness.csv``, ``robustness.md`` and ``robustness.png``.
        split_file: a run's ``split.json``: only its validation (``val``) subjects are scored.
        subjects: only these subject ids.
        max_cases: at most this many cases (the first ones, after the filters).
        subsets: only these subsets, each comma-separated (``--subsets '[flair, "t1,flair"]'``);
            default: every non-empty subset.
        device: ``cpu``, ``cuda`` or ``auto``.
        tta: average over the 8 mirrorings (8x slower).
    """
    model = load_model(ckpt, device, tta)
    wanted = list(subjects) if subjects else None
    if split_file:
        held_out = json.loads(Path(split_file).read_text()).get("val")
        if not held_out:
            raise DataError(f"split file {split_file} lists no validation subjects ('val'); pass the "
                            "split.json a fit run wrote, or --subjects.")
        wanted = [s for s in held_out if wanted is None or s in wanted]
    cases = itertools.islice(read_cases(data, layout, model.modalities, model.transform, wanted), max_cases)
    from brainsegfounder.data.modality_dropout import parse_modalities

    chosen = [parse_modalities(s, model.modalities) for s in subsets] if subsets else None
    rows = robustness_study(model.predict_fn, cases, model.modalities, model.scheme, chosen)
    if not rows:
        raise DataError(f"no case of {data} was scored; check --subjects, --split_file and --max_cases.")
    paths = write_study(rows, out, title=f"Dice by available modalities: {model.name}")
    print(paths["md"].read_text(), end="")
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    return command(robustness, argv, prog="python -m brainsegfounder.robustness")


if __name__ == "__main__":
    main()
