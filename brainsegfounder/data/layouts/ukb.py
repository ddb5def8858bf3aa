"""UK Biobank and other per-modality path patterns with an ``{id}`` placeholder.

The first modality's pattern finds the participants; a participant missing another modality is
left out with a warning (in UK Biobank many participants have a T1 but no FLAIR).

Example (a lab that unpacked UK Biobank differently):
    >>> lay = pattern_layout("my_ukb", {"t1": "{id}/T1_brain_to_MNI.nii.gz",
    ...                                 "flair": "{id}/T2_FLAIR_brain_to_MNI.nii.gz"})
    >>> lay.modalities, lay.case_files("/data", "1000001").images["flair"].as_posix()
    (('t1', 'flair'), '/data/1000001/T2_FLAIR_brain_to_MNI.nii.gz')
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from brainsegfounder.data.layouts.base import CaseFiles, DatasetLayout, register_layout, strip_nifti
from brainsegfounder.utils.errors import DataError

__all__ = ["UKB", "UKB_PATTERNS", "pattern_layout"]


def pattern_layout(name: str, patterns: dict[str, str], description: str = "", scheme: str | None = None,
                   case_id_format: str | None = None, label: str | None = None) -> DatasetLayout:
    """A layout whose files are found (and named) by per-modality patterns with an ``{id}`` placeholder.

    Args:
        name: the layout's name.
        patterns: ``{modality: "path/with/{id}.nii.gz"}`` relative to the data set root.
        description: the expected names, for messages (default: the patterns).
        scheme: label scheme of the ``label`` files (a name registered in ``regions``).
        case_id_format: how to number cases, for writers (see :class:`DatasetLayout`).
        label: the reference label's pattern; a case whose label file is absent is unlabelled.

    The case's folder is the first path component of the first modality's pattern.
    """
    if not patterns or any("{id}" not in p for p in [*patterns.values(), *([label] if label else [])]):
        raise DataError(f"layout {name}: every file pattern needs an {{id}} placeholder, got {patterns}"
                        f"{f' and label {label!r}' if label else ''}.")
    patterns = dict(patterns)
    first = next(iter(patterns.values()))

    def files(root: Path, case_id: str, layout: DatasetLayout) -> CaseFiles:
        images = {m: root / patterns[m].replace("{id}", case_id) for m in layout.modalities}
        label_path = root / label.replace("{id}", case_id) if label else None
        return CaseFiles(case_id, images, label_path, folder=root / first.replace("{id}", case_id).split("/")[0])

    def find(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
        # The id may appear more than once ({id}/anat/{id}_T1.nii.gz): later ones must repeat the first.
        regex = re.compile("^" + re.escape(first).replace(re.escape("{id}"), "(?P<id>[^/]+)", 1)
                           .replace(re.escape("{id}"), "(?P=id)") + "$")
        cases, incomplete = [], []
        for path in sorted(root.glob(first.replace("{id}", "*"))):
            found = regex.match(path.relative_to(root).as_posix())
            if not found:
                continue
            case = files(root, found["id"], layout)
            if all(p.exists() for p in case.images.values()):
                if case.label is not None and not case.label.exists():
                    case.label = None
                cases.append(case)
            else:
                incomplete.append(case.subject_id)
        if incomplete:
            logging.getLogger(__name__).warning(
                "%s: %d participant(s) lack a modality and are left out, e.g. %s", layout.name, len(incomplete),
                incomplete[:3])
        return cases

    return DatasetLayout(name, tuple(patterns), scheme, find,
                         description or "; ".join(f"{m}: {p}" for m, p in patterns.items()),
                         namer=files, case_id_format=case_id_format, reference_suffix=_label_suffix(label))


def _label_suffix(label: str | None) -> str | None:
    """``{id}/masks/{id}_infarct.nii.gz`` -> ``_infarct``: how evaluate tells this layout's references."""
    if not label:
        return None
    base = label.rsplit("/", 1)[-1]
    if not base.startswith("{id}"):
        return None
    suffix = strip_nifti(base[len("{id}"):])
    return suffix or None


#: UK Biobank data fields 20252 (T1) and 20253 (T2-FLAIR), first imaging visit, as unpacked from
#: the bulk zips; other unpackings: ``UnlabelledDataModule(patterns=...)`` or :func:`pattern_layout`.
UKB_PATTERNS = {"t1": "{id}_20252_2_0/T1/T1_brain_to_MNI.nii.gz",
                "flair": "{id}_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz"}
# Synthetic participants get eids from 1000000 (real eids are 7-digit numbers).
UKB = register_layout(pattern_layout(
    "ukb", UKB_PATTERNS,
    "UK Biobank: <eid>_20252_2_0/T1/T1_brain_to_MNI.nii.gz and <eid>_20253_2_0/T2_FLAIR/T2_FLAIR_brain_to_MNI.nii.gz",
    case_id_format="1{index:06d}",
))
