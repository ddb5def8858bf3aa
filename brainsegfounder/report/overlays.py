"""Overlay pictures of segmentations: three orthogonal slices, regions coloured, with a legend.

Drawn with matplotlib's object API on an Agg canvas, so it works on machines without a display
and never changes the global pyplot backend. Label names and colours come from the label scheme
(``scheme.legend``, :mod:`brainsegfounder.data.regions`), so every scheme, a lab's own included,
is drawn with its own legend.

>>> import numpy as np, tempfile, pathlib
>>> label = np.zeros((32, 32, 32), np.uint8)
>>> label[10:20, 10:20, 10:20] = 2; label[13:17, 13:17, 13:17] = 4
>>> path = pathlib.Path(tempfile.mkdtemp()) / "case.png"
>>> save_overlay(None, label, path, title="BraTS2021_00000")
>>> save_overlay(None, label // 2, path, scheme={"lesion": [1], "cavity": [2]})   # a lab's own labels
>>> path.exists()
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy import ndimage

__all__ = ["largest_lesion_centre", "save_overlay", "write_overlay"]


def __getattr__(name: str):
    # Kept for callers written before schemes carried their legends: LEGENDS[name] is
    # get_scheme(name).legend ("binary" = the lesion scheme's).
    if name == "LEGENDS":
        from brainsegfounder.data.regions import SCHEMES

        return {**{n: s.legend for n, s in SCHEMES.items()}, "binary": SCHEMES["lesion"].legend}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    scheme: object = "brats2021",
    reference: np.ndarray | None = None,
    centre: Sequence[int] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    convention: str | None = None,
) -> None:
    """Save a PNG of three orthogonal slices with the label map coloured over the image.

    Args:
        image: greyscale volume (X, Y, Z) drawn underneath (e.g. FLAIR or T1), or None for a black
            background.
        label: label map (X, Y, Z) in the scheme's labels; each value the scheme names is drawn in
            its colour (values it does not know stay clear).
        path: the PNG to write (parent folders are created).
        title: figure title, e.g. the case id and its Dice.
        scheme: the label scheme (a :class:`~brainsegfounder.data.regions.RegionScheme`, a
            registered name such as ``"brats2024"``, a YAML/JSON file or a mapping
            ``{region: [label values]}``): gives colours and legend (``scheme.legend``).
        reference: optional reference mask (X, Y, Z); its outline (any non-zero voxel) is drawn in
            white, so a prediction can be read against the truth.
        centre: voxel (x, y, z) the slices pass through. Default: the centre of the largest
            reference lesion, else of the largest labelled lesion, else the volume centre.
        spacing: voxel size in mm along X, Y, Z, so that anisotropic voxels are drawn to scale.
        convention: the former name of ``scheme``; ``"binary"`` draws any non-zero value as the
            lesion scheme's lesion.
    """
    from brainsegfounder.data.regions import get_scheme

    if convention is not None:
        scheme = convention
    binary = isinstance(scheme, str) and scheme == "binary"
    scheme = get_scheme("lesion" if binary else scheme)
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"expected a 3D label map, got shape {label.shape}")
    legend: Mapping[int, tuple[str, str]] = scheme.legend
    if binary:
        label = np.where(label > 0, min(legend), 0)
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


def write_overlay(result, scheme, path: Path) -> None:
    """The PNG ``predict --png`` writes for a :class:`~brainsegfounder.inference.case_prediction.CasePrediction`:
    the case's image with its label map, titled with the case id and the region volumes."""
    from brainsegfounder.inference.writers import region_volumes

    measured = region_volumes(result.label, scheme, result.spacing)
    title = f"{result.case_id}   " + "  ".join(f"{k[:-3]} {v:.1f} mL" for k, v in measured.items())
    save_overlay(result.image, result.label, path, title=title, scheme=scheme, spacing=result.spacing)
