"""The presentation of :mod:`benchmarks.clinical_raw`'s runs: a table over several runs
(``--summarize``) and the native FLAIR under its labels (``--picture``)."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk


def raw_folder(out: Path, case_id: str, create: bool = False) -> Path:
    """The folder predict on the raw studies wrote ``case_id``'s outputs to: ``pred_raw``, or with
    ``--atlas case`` (one predict per case, each onto its own case's grid) ``pred_raw/by_case/<case_id>``;
    ``create`` makes the latter."""
    by_case = out / "pred_raw" / "by_case" / case_id
    if create:
        by_case.parent.mkdir(parents=True, exist_ok=True)
    return by_case if create or by_case.is_dir() else out / "pred_raw"


def summarize(runs: list[Path]) -> str:
    """A Markdown table of several runs' figures over their cases (``--summarize``): one column per run,
    so that checkpoints measured on the same cases (``--cases_from``) sit side by side. Each figure is
    the mean over the cases, and for the acceptance's two rows also the worst case."""
    import numpy as np

    rows = (("volume_relative_difference", "volume raw vs BraTS-way, mean absolute difference %", np.mean),
            ("volume_relative_difference", "volume raw vs BraTS-way, largest absolute difference %", np.max),
            ("region_dice_raw_vs_brats", "Dice raw vs BraTS-way, mean", np.mean),
            ("region_dice_raw_vs_brats", "Dice raw vs BraTS-way, lowest", np.min),
            ("region_dice_raw_vs_brats_nearest", "the same carried by nearest neighbour, mean", np.mean),
            ("region_dice_raw_vs_brats_nearest", "the same carried by nearest neighbour, lowest", np.min),
            ("raw_vs_truth_dice", "raw predict vs truth, mean", np.mean),
            ("brats_vs_truth_dice", "BraTS-way predict vs truth, mean", np.mean))
    figures = [json.loads((run / "clinical_raw.json").read_text())["cases"] for run in runs]
    lines = ["| | " + " | ".join(run.name for run in runs) + " |", "| --- |" + " --- |" * len(runs)]
    for key, title, over_cases in rows:
        volume, cells = key.startswith("volume"), []
        for cases in figures:
            per_case = [row[key] for row in cases.values() if key in row]
            if not per_case:
                cells.append("-")
                continue
            values = [over_cases([abs(v[k]) * 100 if volume else v[k] for v in per_case]) for k in per_case[0]]
            # Four decimals: a Dice of 0.9496 printed as 0.950 would read as meeting a 0.95 target.
            cells.append(" / ".join(f"{v:.1f}" if volume else f"{v:.4f}" for v in values))
        lines.append(f"| {title} (TC / WT / ET) | " + " | ".join(cells) + " |")
    cases = sorted({cid for c in figures for cid in c})
    lines.append(f"\n{len(cases)} case(s): {', '.join(cases)}.")
    return "\n".join(lines)


def picture(out: Path, case_id: str, path: Path) -> Path:
    """The native FLAIR (its own 5 mm axial slices) at the slice with the most tumour, under the labels
    predict wrote on that grid (BraTS colours: 1 red, 2 green, 4 yellow) beside the FLAIR alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    flair = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "raw" / "nifti" / case_id / f"{case_id}_flair.nii.gz")))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(raw_folder(out, case_id) / "native" / f"{case_id}_flair.nii.gz")))
    k = int(np.argmax((label > 0).sum(axis=(1, 2))))
    image, labels = flair[k], label[k]  # LPS rows and columns: anterior up, the patient's left on the right
    colours = ListedColormap(["#e41a1c", "#4daf4a", "#ffd92f"])
    shown = np.ma.masked_where(labels == 0, np.select([labels == 1, labels == 2, labels == 4], [0, 1, 2], 0))
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for axis, overlay in zip(axes, (False, True), strict=True):
        axis.imshow(image, cmap="gray", vmax=np.percentile(flair, 99.5))
        if overlay:
            axis.imshow(shown, cmap=colours, vmin=0, vmax=2, alpha=0.45, interpolation="nearest")
        axis.set_axis_off()
    axes[0].set_title(f"native FLAIR, slice {k + 1} of {flair.shape[0]} (skull on)", fontsize=9)
    axes[1].set_title("predict's labels on this grid (NCR red, ED green, ET yellow)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def agreement_picture(out: Path, case_id: str, path: Path) -> Path:
    """With ``--atlas case`` (both predicts on the BraTS-way grid): the axial slice where the two whole
    tumours differ most; the BraTS-way FLAIR under its labels, the raw path's prepared FLAIR (made from
    the thick-slice series) under its labels, and the voxels only one of them calls tumour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    def read(file: Path):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(file)))

    folder = raw_folder(out, case_id)
    images = {"BraTS-way": read(out / "cases" / case_id / f"{case_id}_flair.nii.gz"),
              "raw DICOM, prepared": read(folder / "prepared" / case_id / f"{case_id}_flair.nii.gz")}
    labels = {"BraTS-way": read(out / "pred_brats" / f"{case_id}.nii.gz"), "raw DICOM, prepared": read(folder / f"{case_id}.nii.gz")}
    if images["BraTS-way"].shape != images["raw DICOM, prepared"].shape:
        raise ValueError(f"{case_id}: the two predicts lie on different grids; the agreement picture needs --atlas case")
    ours, theirs = labels["raw DICOM, prepared"] > 0, labels["BraTS-way"] > 0
    k = int(np.argmax((ours ^ theirs).sum(axis=(1, 2))))

    def shown(array):  # rows posterior -> anterior, columns left -> right: flipped to anterior up, patient's left on the right
        return np.flip(array[k], (0, 1))

    colours = ListedColormap(["#e41a1c", "#4daf4a", "#ffd92f"])
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for axis, (name, image) in zip(axes, images.items(), strict=False):
        label = labels[name][k]
        coded = np.ma.masked_where(label == 0, np.select([label == 1, label == 2, label == 4], [0, 1, 2], 0))
        axis.imshow(shown(images[name]), cmap="gray", vmax=np.percentile(image, 99.5))
        axis.imshow(np.flip(coded, (0, 1)), cmap=colours, vmin=0, vmax=2, alpha=0.45, interpolation="nearest")
        axis.set_title(f"{name} FLAIR and labels", fontsize=9)
    only = np.ma.masked_where(~(ours ^ theirs)[k], np.where(ours[k], 1, 0))
    axes[2].imshow(shown(images["BraTS-way"]), cmap="gray", vmax=np.percentile(images["BraTS-way"], 99.5))
    axes[2].imshow(np.flip(only, (0, 1)), cmap=ListedColormap(["#00bfff", "#ff00ff"]), vmin=0, vmax=1,
                   interpolation="nearest")
    axes[2].set_title(f"tumour in one only ({int((ours ^ theirs)[k].sum())} voxels): BraTS-way cyan, raw magenta", fontsize=9)
    for axis in axes:
        axis.set_axis_off()
    figure.suptitle(f"{case_id}, axial slice {k + 1} of {ours.shape[0]}, one 1 mm grid", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
