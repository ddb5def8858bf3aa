"""BraTS: one folder per case, ``<case>/<case><sep><modality>.nii.gz`` and ``<case><sep>seg``.

Channel order is the order of the MONAI fold file the released BrainSegFounder weights were
trained with: FLAIR, T1ce, T1, T2 (2023+ names: t2f, t1c, t1n, t2w).

=============  ==============================================  ==========  ===================
layout         case folder                                     scheme      labels
=============  ==============================================  ==========  ===================
``brats2021``  ``BraTS2021_00000``                             brats2021   1 NCR, 2 ED, 4 ET
``brats2023``  ``BraTS-GLI-00000-000`` (also MET, MEN, PED,    brats2023   1 NCR, 2 SNFH, 3 ET
               SSA, GoAT: any ``BraTS-<cohort>-<n>-<t>``)
``brats2024``  ``BraTS-GLI-02073-100`` (post-treatment)        brats2024   ... and 4 RC
=============  ==============================================  ==========  ===================

Adding a BraTS release is one :func:`brats_layout` call here.

Example:
    >>> BRATS2024.case_files("/data", "BraTS-GLI-02073-100").label.as_posix()
    '/data/BraTS-GLI-02073-100/BraTS-GLI-02073-100-seg.nii.gz'
"""

from __future__ import annotations

from pathlib import Path

from brainsegfounder.data.layouts.base import CaseFiles, DatasetLayout, find_nifti, register_layout
from brainsegfounder.utils.errors import DataError

__all__ = ["BRATS_COHORTS", "BRATS2021", "BRATS2023", "BRATS2024", "brats_layout"]

#: The BraTS 2023+ cohorts: adult glioma, metastases, meningioma, paediatric, sub-Saharan Africa.
BRATS_COHORTS = ("GLI", "MET", "MEN", "PED", "SSA")


def brats_layout(name: str, modalities: tuple[str, ...], scheme: str, pattern: str, sep: str,
                 case_id_format: str, background: str, description: str) -> DatasetLayout:
    """A BraTS-style layout: case folders matching ``pattern`` holding ``<case><sep><modality>``."""

    def files(root: Path, case_id: str, layout: DatasetLayout) -> CaseFiles:
        folder = root / case_id
        return CaseFiles(case_id, {m: folder / f"{case_id}{sep}{m}.nii.gz" for m in layout.modalities},
                         folder / f"{case_id}{sep}seg.nii.gz", folder=folder)

    def find(root: Path, layout: DatasetLayout) -> list[CaseFiles]:
        cases = []
        for folder in sorted(p for p in root.glob(pattern) if p.is_dir()):
            expected = files(root, folder.name, layout)
            images = {}
            for modality, path in expected.images.items():
                found = find_nifti(folder, path.name[: -len(".nii.gz")])
                if found is None:
                    raise DataError(
                        f"subject {folder.name}: modality '{modality}' is missing: expected {path}. Add the "
                        f"file, or remove the folder {folder} from the data root.")
                images[modality] = found
            label = find_nifti(folder, expected.label.name[: -len(".nii.gz")])
            cases.append(CaseFiles(folder.name, images, label, folder=folder))
        return cases

    return register_layout(DatasetLayout(name, modalities, scheme, find, description, namer=files,
                                         case_id_format=case_id_format, reference_suffix=f"{sep}seg",
                                         background=background))


BRATS2021 = brats_layout(
    "brats2021", ("flair", "t1ce", "t1", "t2"), "brats2021", "BraTS2021_*", "_", "BraTS2021_{index:05d}",
    "flair", "BraTS 2021: BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz; labels 1, 2, 4")
BRATS2023 = brats_layout(
    "brats2023", ("t2f", "t1c", "t1n", "t2w"), "brats2023", "BraTS-*-*", "-",
    "BraTS-{cohort}-{index:05d}-{timepoint:03d}", "t2f",
    "BraTS 2023 (GLI, MET, MEN, PED, SSA): BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz; "
    "labels 1, 2, 3")
BRATS2024 = brats_layout(
    "brats2024", ("t2f", "t1c", "t1n", "t2w"), "brats2024", "BraTS-*-*", "-",
    "BraTS-{cohort}-{index:05d}-{timepoint:03d}", "t2f",
    "BraTS 2024 post-treatment glioma: BraTS-GLI-02073-100/BraTS-GLI-02073-100-{t1n,t1c,t2w,t2f,seg}.nii.gz; "
    "labels 1 NETC, 2 SNFH, 3 ET, 4 RC")
