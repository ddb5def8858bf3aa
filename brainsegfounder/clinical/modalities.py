"""Which series is which modality: from the description and protocol, else the MR sequence tags.

:func:`recognise` names one series' contrast (``flair``, ``t1ce``, ``t1``, ``t2`` or ``None``);
:func:`assign` picks one series per modality the checkpoint takes, honouring ``--series``
overrides (``flair=<SeriesInstanceUID, series number or description>``), and refuses, naming the
series, when two candidates fit one modality or none fits. Hand-written rules (glue).

Example:
    >>> from brainsegfounder.clinical.study import Series
    >>> recognise(Series("1.2", 3, "AX T2 FLAIR", []))
    'flair'
    >>> recognise(Series("1.3", 7, "SAG MPRAGE", [], tags={"ContrastBolusAgent": "GADOBUTROL"}))
    't1ce'
    >>> recognise(Series("1.4", 9, "series 9", [], tags={"EchoTime": 100.0, "RepetitionTime": 5000.0}))
    't2'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from brainsegfounder.clinical.study import Series
from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["recognise", "assign", "parse_overrides", "CONTRAST_OF"]

#: Modality names of checkpoints (BraTS 2021 and 2023+ names) -> the contrast a series shows.
CONTRAST_OF = {"flair": "flair", "t2f": "flair", "t1ce": "t1ce", "t1c": "t1ce", "t1": "t1", "t1n": "t1",
               "t2": "t2", "t2w": "t2", "t1w": "t1"}
_POST = re.compile(r"(post|\+ ?c\b|\bgd\b|gad|contrast|\bce\b|t1c\b|mdc)", re.IGNORECASE)


def recognise(series: Series) -> str | None:
    """The contrast of one series (``flair``, ``t1ce``, ``t1``, ``t2``), or None if unclear.

    Words first (SeriesDescription, ProtocolName: FLAIR / dark-fluid, T2, T1 or MPRAGE/SPGR, with a
    post-contrast word or a ContrastBolusAgent for T1ce), then the sequence: a long inversion time
    with a long echo time is FLAIR, a long echo time T2, a short one with an inversion or a short
    TR T1 (T1ce when a contrast agent is recorded).
    """
    if series.nifti is not None:  # a NIfTI file: its name's ending, as for prepared cases
        from brainsegfounder.data.layouts.base import modality_of

        named = modality_of(series.nifti, tuple(CONTRAST_OF))
        return CONTRAST_OF[named.lower()] if named else None
    words = f"{series.description} {series.tags.get('ProtocolName', '')}".lower()
    agent = bool(series.tags.get("ContrastBolusAgent"))
    if "flair" in words or "dark-fluid" in words or "dark_fluid" in words or "t2f" in words:
        return "flair"
    if re.search(r"t2(?!\*)|t2w|tse_t2", words) and "t2*" not in words and "swi" not in words:
        return "t2"
    if re.search(r"t1|mprage|mp-rage|spgr|bravo|tfl", words):
        return "t1ce" if agent or _POST.search(words) else "t1"
    te, tr, ti = (series.tags.get(k) for k in ("EchoTime", "RepetitionTime", "InversionTime"))
    if te is None:
        return None
    if te >= 60 and ti is not None and ti >= 1500:
        return "flair"
    if te >= 60:
        return "t2"
    if te <= 20 and ((ti is not None and ti > 0) or (tr is not None and tr <= 1000)):
        return "t1ce" if agent else "t1"
    return None


def parse_overrides(values: Sequence[str] | None, modalities: Sequence[str]) -> dict[str, str]:
    """``["flair=1.2.3", "t2=AX T2"]`` -> ``{"flair": "1.2.3", "t2": "AX T2"}``, names checked.

    >>> parse_overrides(["flair=3"], ("flair", "t1ce", "t1", "t2"))
    {'flair': '3'}
    """
    out = {}
    for value in values or ():
        name, sep, choice = str(value).partition("=")
        name = name.strip().lower()
        if not sep or not choice.strip():
            raise ConfigError(f"--series {value!r}: write MODALITY=SERIES, e.g. --series flair=<SeriesInstanceUID, "
                              "series number or description>.")
        if name not in modalities:
            raise ConfigError(f"--series {value!r}: {name!r} is not a modality of the checkpoint "
                              f"({', '.join(modalities)}).")
        out[name] = choice.strip()
    return out


def _matches(series: Series, choice: str) -> bool:
    low = choice.lower()
    return (choice == series.uid or (series.number is not None and choice == str(series.number))
            or low == series.description.lower() or (series.nifti is not None and low == series.nifti.name.lower()))


def assign(series: Sequence[Series], modalities: Sequence[str], overrides: dict[str, str] | None = None,
           allow_missing: Sequence[str] = ()) -> dict[str, Series]:
    """One series per modality of ``modalities`` (the checkpoint's names, e.g. flair, t1ce, t1, t2).

    Args:
        series: the study's image series (:func:`~brainsegfounder.clinical.study.scan_dicom`).
        modalities: the checkpoint's modality names in channel order.
        overrides: modality -> SeriesInstanceUID, series number or description (``--series``).
        allow_missing: modalities the checkpoint can do without (not refused when absent).

    Raises:
        DataError: an override matching no series, two candidates for one modality, a modality
            with no series (each named, with the ``--series`` line that settles it).
    """
    overrides = overrides or {}
    chosen: dict[str, Series] = {}
    for name, choice in overrides.items():
        hits = [s for s in series if _matches(s, choice)]
        if len(hits) != 1:
            listing = ", ".join(f"{s.label} ({s.uid})" for s in series)
            raise DataError(f"--series {name}={choice}: {'no' if not hits else len(hits)} series match(es); the study "
                            f"has {listing}. Give a SeriesInstanceUID, a series number or an exact description.")
        chosen[name] = hits[0]
    taken = {s.uid for s in chosen.values()}
    recognised = {s.uid: recognise(s) for s in series}
    for name in modalities:
        if name in chosen:
            continue
        contrast = CONTRAST_OF.get(name.lower(), name.lower())
        candidates = [s for s in series if recognised[s.uid] == contrast and s.uid not in taken]
        if len(candidates) > 1:
            listing = " and ".join(f"{s.label} (SeriesInstanceUID {s.uid})" for s in candidates)
            raise DataError(f"{len(candidates)} series look like {name}: {listing}. Choose one: --series "
                            f"{name}=<SeriesInstanceUID or description>.")
        if not candidates:
            if name in allow_missing:
                continue
            found = ", ".join(f"{s.label} -> {recognised[s.uid] or 'unrecognised'}" for s in series) or "none"
            raise DataError(f"no series looks like {name} (series found: {found}). Name it: --series "
                            f"{name}=<SeriesInstanceUID, series number or description>.")
        chosen[name] = candidates[0]
        taken.add(candidates[0].uid)
    return {name: chosen[name] for name in modalities if name in chosen}
