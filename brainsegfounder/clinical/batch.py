"""Prepare several studies into one folder, reusing what an earlier run prepared from the same files.

What ``predict`` (with a DICOM study or ``--preprocess``) and ``python -m brainsegfounder.preprocess``
share: which ``--input`` entries are studies, the prepared grid's spacing, and
:func:`prepare_many`, which prepares each study into ``out/<case_id>/`` unless
``preparation.json`` there says it was prepared from the same files with the same options
(then it is reused). A folder of that name that this tool did not prepare is never replaced; one
prepared from other files or options is replaced only with ``overwrite``.

Example:
    >>> training_spacing(None, None), training_spacing(2.0, None), training_spacing(2.0, 1.0)
    (1.0, 2.0, 1.0)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from brainsegfounder.clinical.prepare import (
    INTERPOLATIONS,
    PREPARATION,
    RECORD_FILE,
    PreparedCase,
    digest_of,
    find_series,
    load_prepared,
    prepare_study,
)
from brainsegfounder.clinical.study import is_dicom_folder
from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["studies_in", "training_spacing", "prepare_many"]


def training_spacing(recorded: float | None, asked: float | None) -> float:
    """The prepared grid's voxel size: ``asked`` (``--spacing``), else the checkpoint's, else 1 mm."""
    value = asked if asked is not None else recorded if recorded is not None else 1.0
    if not 0.3 <= float(value) <= 5.0:
        raise ConfigError(f"--spacing {value}: a prepared grid's voxel size lies between 0.3 and 5 mm.")
    return float(value)


def studies_in(inputs: Sequence[str | Path], preprocess: bool) -> list[Path]:
    """The ``--input`` entries to prepare: all of them with ``preprocess``, else the DICOM study folders.

    Mixing DICOM studies with prepared NIfTI inputs in one run is refused (prepare them all with
    ``--preprocess``, or predict them in two runs).
    """
    paths = [Path(p).expanduser() for p in inputs]
    dicom = [p for p in paths if is_dicom_folder(p)]
    if preprocess:
        files = [p for p in paths if not p.is_dir()]
        if files:
            raise DataError(f"--preprocess takes study folders (one per case: DICOM files, or one NIfTI file per "
                            f"series), not files: {', '.join(map(str, files))}. Put one case's files in a folder.")
        return paths
    if dicom and len(dicom) != len(paths):
        others = [str(p) for p in paths if p not in dicom]
        raise DataError(f"--input mixes DICOM studies ({', '.join(map(str, dicom))}) with other inputs "
                        f"({', '.join(others)}). Pass --preprocess to prepare them all, or predict them separately.")
    return dicom


def _options(modalities, spacing, skull_strip, overrides, reference, brain_method, atlas, interpolation) -> dict:
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"--interpolation {interpolation!r}: choose {' or '.join(INTERPOLATIONS)}.")
    options = {"modalities": list(modalities), "spacing_mm": float(spacing), "skull_strip": skull_strip,
               "series": dict(sorted((overrides or {}).items())), "reference": reference, "brain_method": brain_method}
    if atlas:
        options["atlas"] = str(atlas)
    if interpolation != "linear":  # earlier records (linear, no atlas) compare equal to the same options now
        options["interpolation"] = interpolation
    return options


def _difference(earlier: dict, digest: str, options: dict) -> str:
    """What differs between an earlier preparation and this one, in words."""
    if earlier.get("source_digest") != digest:
        return "from other files"
    implied = {"interpolation": "linear"}  # what a missing key meant (see _options)
    before, now = {**implied, **(earlier.get("options") or {})}, {**implied, **options}
    keys = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
    return "with other options (" + ", ".join(f"{k}: {before.get(k)} then, {now.get(k)} now" for k in keys) + ")"


def prepare_many(studies: Sequence[Path], out: Path, modalities: Sequence[str], spacing: float,
                 skull_strip: str = "auto", overrides: dict[str, str] | None = None, reference: str | None = None,
                 brain_method: str = "auto", allow_missing: Sequence[str] = (), overwrite: bool = False,
                 say: Callable[[str], None] | None = None, atlas: str | None = None,
                 interpolation: str = "bspline") -> list[PreparedCase]:
    """Prepare each study folder into ``out/<study folder name>/`` (reusing identical earlier work)."""
    say = say or (lambda line: None)
    names = [Path(s).name for s in studies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"several --input studies are named {', '.join(twice)}; each case is named after its folder. "
                        "Rename the folders or prepare them into separate --output folders.")
    options = _options(modalities, spacing, skull_strip, overrides, reference, brain_method, atlas, interpolation)
    prepared = []
    for study in studies:
        study = Path(study).expanduser()
        folder = out / study.name
        found = find_series(study, modalities, overrides, allow_missing)
        digest = digest_of(found[0])
        record_path = folder / PREPARATION / RECORD_FILE
        if record_path.exists():
            earlier = json.loads(record_path.read_text())
            if earlier.get("source_digest") == digest and earlier.get("options") == options:
                say(f"{study.name}: prepared before from the same files and options ({folder}): reused")
                prepared.append(load_prepared(folder))
                continue
            if not overwrite:
                raise DataError(f"{folder} was prepared {_difference(earlier, digest, options)}; pass --overwrite to "
                                "prepare it again, or choose another --output.")
        elif folder.exists() and any(folder.iterdir()) and not overwrite:
            raise DataError(f"{folder} exists and was not prepared by this tool; it is never replaced. Choose another "
                            "--output.")
        prepared.append(prepare_study(study, out, modalities, spacing, skull_strip, overrides, reference,
                                      brain_method=brain_method, allow_missing=allow_missing, say=say,
                                      found=found, options=options, atlas=atlas, interpolation=interpolation))
    return prepared
