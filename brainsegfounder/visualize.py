"""Overlay pictures of segmentations: three orthogonal slices, regions coloured, with a legend.

Drawn with matplotlib's object API on an Agg canvas, so it works on machines without a display
and never changes the global pyplot backend.

>>> import numpy as np, tempfile, pathlib
>>> label = np.zeros((32, 32, 32), np.uint8)
>>> label[10:20, 10:20, 10:20] = 2; label[13:17, 13:17, 13:17] = 4
>>> path = pathlib.Path(tempfile.mkdtemp()) / "case.png"
>>> save_overlay(None, label, path, title="BraTS2021_00000")
>>> path.exists()
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import ndimage

__all__ = ["LEGENDS", "largest_lesion_centre", "save_overlay"]

#: Label value -> (name, colour) for each labelling the package writes.
LEGENDS: dict[str, dict[int, tuple[str, str]]] = {
    "brats2021": {1: ("necrotic core (NCR)", "#e41a1c"), 2: ("oedema (ED)", "#4daf4a"),
                  4: ("enhancing tumour (ET)", "#ffd92f")},
    "brats2023": {1: ("necrotic core (NCR)", "#e41a1c"), 2: ("oedema (SNFH)", "#4daf4a"),
                  3: ("enhancing tumour (ET)", "#ffd92f")},
    "binary": {1: ("lesion", "#e41a1c")},
}


def largest_lesion_centre(mask: np.ndarray) -> tuple[int, int, int] | None:
    """Voxel index of the centre of mass of the largest 26-connected component, or None if empty."""
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return None
    components, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(components.ravel())[1:]
    largest = components == (int(np.argmax(sizes)) + 1)
    centre = ndimage.center_of_mass(largest)
    # The centre of mass of a curved lesion may fall outside it; snap to its nearest voxel.
    coords = np.argwhere(largest)
    nearest = coords[np.argmin(((coords - np.asarray(centre)) ** 2).sum(axis=1))]
    return tuple(int(c) for c in nearest)


def _slices(volume: np.ndarray, centre: Sequence[int]) -> list[np.ndarray]:
    # Sagittal, coronal, axial for an (X, Y, Z) RAS-like volume, transposed so rows run along the
    # second axis shown and drawn with origin="lower" (superior / anterior up).
    x, y, z = centre
    return [volume[x, :, :].T, volume[:, y, :].T, volume[:, :, z].T]


def save_overlay(
    image: np.ndarray | None,
    label: np.ndarray,
    path: str | Path,
    title: str = "",
    convention: str = "brats2021",
    reference: np.ndarray | None = None,
    centre: Sequence[int] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> None:
    """Save a PNG of three orthogonal slices with the label map coloured over the image.

    Args:
        image: greyscale volume (X, Y, Z) drawn underneath (e.g. FLAIR or T1), or None for a black
            background.
        label: label map (X, Y, Z) drawn in colour: BraTS labels for ``"brats2021"`` /
            ``"brats2023"``, any non-zero value as lesion for ``"binary"``.
        path: the PNG to write (parent folders are created).
        title: figure title, e.g. the case id and its Dice.
        convention: ``"brats2021"``, ``"brats2023"`` or ``"binary"``: picks colours and legend.
        reference: optional reference mask (X, Y, Z); its outline (any non-zero voxel) is drawn in
            white, so a prediction can be read against the truth.
        centre: voxel (x, y, z) the slices pass through. Default: the centre of the largest
            reference lesion, else of the largest labelled lesion, else the volume centre.
        spacing: voxel size in mm along X, Y, Z, so that anisotropic voxels are drawn to scale.
    """
    if convention not in LEGENDS:
        raise ValueError(f"unknown convention {convention!r}; use one of {sorted(LEGENDS)}")
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"expected a 3D label map, got shape {label.shape}")
    legend = LEGENDS[convention]
    if convention == "binary":
        label = (label > 0).astype(np.uint8)
    if centre is None:
        centre = (largest_lesion_centre(reference) if reference is not None else None) \
            or largest_lesion_centre(label > 0) or tuple(s // 2 for s in label.shape)

    values = sorted(legend)
    # Map label values to 1..n so one ListedColormap colours them; everything else stays clear.
    indexed = np.zeros(label.shape, np.int16)
    for i, value in enumerate(values, start=1):
        indexed[label == value] = i
    cmap = ListedColormap([legend[v][1] for v in values])

    fig = Figure(figsize=(12, 4.6), dpi=100)
    axes = fig.subplots(1, 3)
    names = ("sagittal", "coronal", "axial")
    sx, sy, sz = (float(s) for s in spacing)
    aspects = (sz / sy, sz / sx, sy / sx)  # row spacing / column spacing of each view
    background = _slices(np.asarray(image, np.float32), centre) if image is not None else None
    ref_slices = _slices(np.asarray(reference) > 0, centre) if reference is not None else None
    for k, (ax, lab) in enumerate(zip(axes, _slices(indexed, centre), strict=True)):
        if background is not None:
            ax.imshow(background[k], cmap="gray", origin="lower", interpolation="nearest",
                      aspect=aspects[k])
        else:
            ax.imshow(np.zeros_like(lab, np.float32), cmap="gray", vmin=0, vmax=1, origin="lower",
                      aspect=aspects[k])
        shown = np.ma.masked_equal(lab, 0)
        ax.imshow(shown, cmap=cmap, vmin=0.5, vmax=len(values) + 0.5, alpha=0.55, origin="lower",
                  interpolation="nearest", aspect=aspects[k])
        if ref_slices is not None and ref_slices[k].any():
            # No origin argument: it would shift the outline by half a voxel against imshow's pixels.
            ax.contour(ref_slices[k].astype(np.float32), levels=[0.5], colors="white", linewidths=1.0)
        ax.set_title(f"{names[k]} {('x', 'y', 'z')[k]}={centre[k]}", fontsize=9)
        ax.set_axis_off()
    handles = [Patch(facecolor=legend[v][1], label=legend[v][0]) for v in values]
    if reference is not None:
        handles.append(Patch(facecolor="none", edgecolor="black", label="reference outline (white)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.1, wspace=0.03)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
