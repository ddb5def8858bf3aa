"""Synthetic brain MRI subjects built on the real MNI152 anatomy, written as the real data sets are.

Tests and the demo have no BraTS, ATLAS or UK Biobank data, so this package makes look-alikes from
the MNI ICBM152 2009a template that the nilearn wheel ships (T1, grey- and white-matter
probability maps; nothing is downloaded). Each subject is the template under its own random
smooth deformation (a few mm) and small affine, with per-subject tissue intensities, a smooth
bias field and Rician noise, skull-stripped (zero outside the brain). What it carries follows
from its layout's label scheme, and its files go where the layout
(:mod:`brainsegfounder.data.layouts`) names them:

=============  =====================================  =============================================
layout         images (keys of ``images``)            label
=============  =====================================  =============================================
``brats2021``  flair, t1ce, t1, t2                    0, 1 NCR, 2 ED, 4 ET (uint8)
``brats2023``  t2f, t1c, t1n, t2w                     0, 1 NCR, 2 SNFH, 3 ET (``--cohort`` MET, ...)
``brats2024``  t2f, t1c, t1n, t2w                     0, 1 NETC, 2 SNFH, 3 ET, 4 RC (post-treatment)
``ukb``        t1, flair (healthy)                    none
``atlas``      t1w                                    0/1 stroke lesion mask (uint8)
=============  =====================================  =============================================

Volumes live on the template's grid (RAS, MNI coordinates in mm) at the chosen isotropic spacing:
99 x 117 x 95 voxels at 2 mm (the default, for speed), 197 x 233 x 189 at 1 mm (ATLAS v2.0's own
grid). Subject ``i`` depends only on ``(seed, i)``, and the same ``(seed, i)`` gives the same
anatomy in every layout.

Modules: :mod:`.anatomy` (template, smooth fields, deformation), :mod:`.lesions` (glioma,
resection cavity, strokes), :mod:`.contrasts` (signals, bias, noise), :mod:`.subjects` (one
subject in memory), :mod:`.writers` (files through the layouts), :mod:`.cli` (the command);
:mod:`.head`, :mod:`.raw` and :mod:`.dicom` turn cases into raw clinical studies (a head, each
series on its own grid after a known head motion, DICOM + NIfTI + truth; docs/clinical.md).

In Python:

>>> from brainsegfounder.data.synthetic import synthesize_subject, generate
>>> subject = synthesize_subject("brats2021", index=0, seed=0, spacing=2.0)
>>> sorted(subject.images), subject.label.shape, subject.case_id
(['flair', 't1', 't1ce', 't2'], (99, 117, 95), 'BraTS2021_00000')
>>> synthesize_subject("brats2023", 4, spacing=4.0, cohort="MET").case_id
'BraTS-MET-00004-000'
>>> folders = generate("brats2021", "data/synthetic_brats2021", subjects=24)  # doctest: +SKIP

From the shell::

    python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 24 --out DIR --seed 0
    python -m brainsegfounder.data.synthetic --layout brats2024 --subjects 8 --out DIR
    python -m brainsegfounder.data.synthetic --layout brats2023 --cohort MET --subjects 8 --out DIR
    python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 2 --out DIR --raw RAW_DIR
"""

from __future__ import annotations

from brainsegfounder.data.synthetic.cli import main
from brainsegfounder.data.synthetic.subjects import SyntheticSubject, synthesize_subject
from brainsegfounder.data.synthetic.writers import generate

__all__ = ["SyntheticSubject", "synthesize_subject", "generate", "main", "writable_layouts"]


def writable_layouts() -> tuple[str, ...]:
    """The registered layouts the generator can write (those that name their cases' files).

    >>> writable_layouts()
    ('atlas', 'brats2021', 'brats2023', 'brats2024', 'ukb')
    """
    from brainsegfounder.data.layouts import LAYOUTS

    return tuple(n for n, lay in LAYOUTS.items() if lay.namer is not None and lay.case_id_format is not None)
