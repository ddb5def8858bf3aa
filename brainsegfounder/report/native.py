"""A raw study's own series in the report: each in its own slice plane, under the labels on its grid.

A case predicted from a raw clinical study (``predict --input <DICOM study>``, or NIfTI series with
``--preprocess``; docs/clinical.md) leaves in the predictions folder its preparation record
(``prepared/<case_id>/preparation/preparation.json``) and a label map on every series' own grid
(``native/<case_id>_<modality>.nii.gz``). :func:`native_pictures` draws, for each series, the slice
of its own stack with the most labelled voxels, as a DICOM viewer shows it (first row at the top,
pixels to scale, the patient sides marked on the edges: an axial series stored the usual way has
the patient's right on the left, the radiological convention), the series' voxels read back from the study's files and the labels in the
scheme's colours; :func:`native_html` is the block the report puts under the case's viewer (which
shows the prepared images: what the network saw). A case without a record gets nothing; a study
whose files moved gets one line saying so.

Example:
    >>> from brainsegfounder.report.native import native_pictures  # doctest: +SKIP
    >>> [p.caption for p in native_pictures("runs/pred", "study_0001", "brats2021")]  # doctest: +SKIP
    ["FLAIR: series 3 'AX T2 FLAIR', 0.9 x 0.9 x 5 mm, slice 14 of 30", ...]
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["NativePicture", "native_pictures", "native_html"]


@dataclass
class NativePicture:
    """One series' picture: its modality, a caption naming the series and the slice, the PNG."""

    modality: str
    caption: str
    png: bytes


def _series_image(record: dict, modality: str):
    """The series' voxels from the study's files (DICOM or NIfTI), as SimpleITK read them for predict."""
    from brainsegfounder.clinical.study import Series, read_series

    source, entry = Path(record["source"]), record["series"][modality]
    files = [source / f for f in entry["files"]]
    nifti = files[0] if record.get("source_kind") == "nifti" else None
    return read_series(Series(uid=entry.get("series_instance_uid") or "", number=entry.get("series_number"),
                              description=entry.get("description") or "", files=files, nifti=nifti))


#: The patient side an LPS axis points to, + then - (DICOM viewers' orientation letters).
_SIDES = (("L", "R"), ("P", "A"), ("S", "I"))


def _side(vector) -> str:
    """The letter of the patient side ``vector`` (LPS) points to most: ``L``, ``R``, ``P``, ``A``, ``S``, ``I``.

    >>> _side([1, 0, 0]), _side([0, -0.9, 0.1]), _side([0.2, 0, -1])
    ('L', 'A', 'I')
    """
    axis = int(np.argmax(np.abs(vector)))
    return _SIDES[axis][0 if vector[axis] > 0 else 1]


def _draw(image: np.ndarray, label: np.ndarray, spacing, scheme, title: str, direction=None) -> bytes:
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    values = sorted(scheme.legend)
    indexed = np.zeros(label.shape, np.int16)
    for i, value in enumerate(values, start=1):
        indexed[label == value] = i
    figure = Figure(figsize=(3.6, 3.9), dpi=100)
    axis = figure.subplots()
    high = float(np.percentile(image, 99.5)) or 1.0
    aspect = float(spacing[1]) / float(spacing[0])  # row spacing / column spacing
    axis.imshow(image, cmap="gray", vmin=0.0, vmax=high, interpolation="nearest", aspect=aspect)
    axis.imshow(np.ma.masked_equal(indexed, 0), cmap=ListedColormap([scheme.legend[v][1] for v in values]),
                vmin=0.5, vmax=len(values) + 0.5, alpha=0.5, interpolation="nearest", aspect=aspect)
    axis.set_axis_off()
    axis.set_title(title, fontsize=8)
    if direction is not None:  # the edges' patient sides, as a DICOM viewer marks them
        columns, rows = np.asarray(direction, float).reshape(3, 3).T[:2]
        for x, y, letter, align in ((0.02, 0.5, _side(-columns), "left"), (0.98, 0.5, _side(columns), "right"),
                                    (0.5, 0.97, _side(-rows), "center"), (0.5, 0.03, _side(rows), "center")):
            axis.text(x, y, letter, color="yellow", fontsize=9, ha=align, va="center", transform=axis.transAxes)
    figure.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def native_pictures(predictions: str | Path, case_id: str, scheme) -> list[NativePicture] | str | None:
    """Each series' picture (see the module's text); a line saying why there are none; ``None`` when
    the case was not prepared from a raw study."""
    import SimpleITK as sitk

    from brainsegfounder.clinical.native import NATIVE_FOLDER
    from brainsegfounder.clinical.prepare import PREPARATION, THICK_SLICE_MM, load_prepared
    from brainsegfounder.data.regions import get_scheme
    from brainsegfounder.utils.errors import DataError

    predictions, scheme = Path(predictions), get_scheme(scheme)
    folder = predictions / "prepared" / case_id
    if not (folder / PREPARATION).is_dir():
        return None
    record = load_prepared(folder).record
    pictures = []
    for modality, entry in record["series"].items():
        label_path = predictions / NATIVE_FOLDER / f"{case_id}_{modality}.nii.gz"
        if not label_path.is_file():
            continue
        try:
            image = _series_image(record, modality)
        except (DataError, OSError, IndexError) as err:
            return (f"The native series were not found where the study was read ({record['source']}): "
                    f"{str(err).splitlines()[0][:200]}. The labels on each series' grid are in {NATIVE_FOLDER}/.")
        label = sitk.ReadImage(str(label_path))
        if label.GetSize() != image.GetSize():
            return f"{label_path.name} is not on its series' grid ({label.GetSize()} vs {image.GetSize()}): not drawn."
        voxels, labels = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
        k = int(np.argmax((labels > 0).sum(axis=(1, 2))))
        sx, sy, sz = image.GetSpacing()
        name = f"series {entry['series_number']} '{entry['description']}'" if entry.get("series_number") is not None \
            else entry["description"]
        caption = f"{modality.upper()}: {name}, {sx:.2g} x {sy:.2g} x {sz:.2g} mm, slice {k + 1} of {voxels.shape[0]}"
        if max(sx, sy, sz) > THICK_SLICE_MM:
            caption += ("; thick slices: between them the prepared images are interpolated, so what is seen mainly "
                        "on this series is less certain")
        title = f"{modality.upper()}, slice {k + 1}/{voxels.shape[0]}"
        pictures.append(NativePicture(modality, caption, _draw(voxels[k], labels[k], (sx, sy), scheme, title,
                                                               image.GetDirection())))
    return pictures


def native_html(pictures: list[NativePicture] | str | None, volumes_on: str | None = None) -> str:
    """The report's block for one case: the pictures (loaded when the case opens) and what they are."""
    if pictures is None:
        return ""
    if isinstance(pictures, str):
        return f'<p class="muted">{html.escape(pictures)}</p>'
    where = f" Volumes are measured on {html.escape(volumes_on)}." if volumes_on else ""
    figures = "".join(
        f'<figure class="native"><img alt="{html.escape(p.caption)}" '
        f'data-src="data:image/png;base64,{base64.b64encode(p.png).decode()}">'
        f"<figcaption>{html.escape(p.caption)}</figcaption></figure>" for p in pictures)
    return ('<div class="natives"><h3>The series as acquired</h3><p class="muted">Each series on its own grid '
            "(skull on, as the scanner wrote it; the letters mark the patient's sides, as a DICOM viewer does), at "
            "its slice with the most tumour, under the labels carried back onto that grid (nearest neighbour, "
            "through the inverse of its registration). The viewer above shows the prepared images, what the "
            f"network saw, with the patient's left on the left.{where}</p>{figures}</div>")
