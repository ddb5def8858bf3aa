"""What a report shows, read from the files ``predict`` and ``evaluate`` write.

- ``<predictions>/<case_id>.nii.gz``: label maps (the case list);
- ``<predictions>/volumes.csv``: mL per region (the page rounds them for reading; the file keeps
  4 decimals), with any extra columns (``expected_dice``, ``flag``, ``review``; ``quality`` in
  files written before the rename); without it volumes are computed from the label maps the way
  ``predict`` does (region mask voxels x voxel volume);
- ``<case_id>.png`` overlays in the predictions folder or ``overlays``;
- an ``evaluate`` CSV (one row per case) and its ``<stem>_summary.json``;
- the input images, handed over by ``predict`` or found through the data layouts (or in case
  folders), for the viewer's background: the case's anatomy under its labels;
- ``<predictions>/provenance.json`` when present (checkpoints, preprocessing, command, versions,
  date), completed by what is given as arguments, by what each checkpoint file says of itself
  (sha256, calibration, preprocessing), the label maps' file times and the versions installed now.

Example:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> label = np.zeros((20, 20, 20), np.uint8); label[5:15, 5:15, 5:15] = 1
    >>> nib.save(nib.Nifti1Image(label, np.eye(4)), folder / "sub-01_ses-1.nii.gz")
    >>> cases = gather_cases(folder, scheme="lesion")
    >>> cases[0].case_id, cases[0].volumes
    ('sub-01_ses-1', {'lesion_ml': '1.0000'})
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from brainsegfounder.data.regions import RegionScheme, get_scheme
from brainsegfounder.utils.errors import DataError

__all__ = ["ReportCase", "background_of", "checkpoint_facts", "gather_cases", "read_metrics", "find_backgrounds",
           "provenance"]

NIFTI = (".nii.gz", ".nii")
#: Background contrast preferred for the viewer, first found wins (FLAIR shows oedema and lesions).
BACKGROUND_PREFERENCE = ("flair", "t2f", "t1w", "t1ce", "t1c", "t1", "t1n", "t2", "t2w")


@dataclass
class ReportCase:
    """One case as the report shows it. ``volumes`` and ``extra`` keep the CSV's text as written."""

    case_id: str
    label: Path
    volumes: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    overlay: Path | None = None
    background: Path | None = None
    subject: str = ""
    timepoint: str | None = None
    spacing: tuple[float, float, float] | None = None


def background_of(images) -> Path | None:
    """The image shown under a case's labels: FLAIR (or its BraTS 2023 name t2f), else the first modality.

    >>> str(background_of({"t1": "a_t1.nii.gz", "flair": "a_flair.nii.gz"}))
    'a_flair.nii.gz'
    >>> str(background_of({"t1w": "sub-1_T1w.nii.gz"})), background_of({})
    ('sub-1_T1w.nii.gz', None)
    """
    names = [str(m).lower() for m in images]
    for preferred in BACKGROUND_PREFERENCE:
        if preferred in names:
            return Path(list(images.values())[names.index(preferred)])
    return Path(next(iter(images.values()))) if images else None


def _case_id(path: Path) -> str | None:
    for ext in NIFTI:
        if path.name.endswith(ext):
            return path.name[: -len(ext)]
    return None


def _volumes_of(path: Path, scheme: RegionScheme) -> dict[str, str]:
    """A label map's volumes as ``volumes.csv`` would hold them (predict's own computation and format)."""
    from brainsegfounder.inference.writers import volumes_from_file

    return {column: f"{value:.4f}" for column, value in volumes_from_file(path, scheme).items()}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"{path} cannot be read as CSV ({err}).") from None


def gather_cases(predictions: str | Path, scheme: str | RegionScheme = "brats2021",
                 overlays: str | Path | None = None) -> list[ReportCase]:
    """Every ``<case_id>.nii.gz`` label map of ``predictions`` with its volumes and overlay."""
    from brainsegfounder.report.longitudinal import subject_and_timepoint

    folder, scheme = Path(predictions).expanduser(), get_scheme(scheme)
    if not folder.is_dir():
        raise DataError(f"--predictions {folder} is not a folder. Give the --output folder of predict "
                        "(or the --pred folder given to evaluate).")
    labels = {cid: p for p in sorted(folder.iterdir()) if p.is_file() and (cid := _case_id(p))}
    if not labels:
        raise DataError(f"no <case_id>.nii.gz label maps in {folder}; is it the --output folder of predict?")
    from brainsegfounder.inference.writers import VOLUMES_FILE

    table: dict[str, dict[str, str]] = {}
    csv_path = folder / VOLUMES_FILE
    if csv_path.is_file():
        columns, rows = _read_csv(csv_path)
        if "case_id" not in columns:
            raise DataError(f"{csv_path} has no case_id column (columns: {columns}); is it predict's volumes.csv?")
        table = {row["case_id"]: row for row in rows}
    overlay_dirs = [folder] + ([Path(overlays).expanduser()] if overlays else [])
    cases = []
    for case_id, path in labels.items():
        row = table.get(case_id)
        if row is None:
            volumes, extra = _volumes_of(path, scheme), {}
        else:
            volumes = {k: v for k, v in row.items() if k.endswith("_ml")}
            extra = {k: v for k, v in row.items() if k != "case_id" and not k.endswith("_ml")}
        overlay = next((d / f"{case_id}.png" for d in overlay_dirs if (d / f"{case_id}.png").is_file()), None)
        subject, timepoint = subject_and_timepoint(case_id)
        cases.append(ReportCase(case_id, path, volumes, extra, overlay=overlay, subject=subject, timepoint=timepoint))
    return cases


def read_metrics(path: str | Path) -> tuple[dict[str, dict[str, str]], dict | None]:
    """An ``evaluate`` CSV -> ({case id: {metric: text}}, its ``<stem>_summary.json`` or None)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"--metrics {path} does not exist; give the --out CSV of evaluate.")
    columns, rows = _read_csv(path)
    if "case_id" not in columns:
        raise DataError(f"{path} has no case_id column (columns: {columns}); is it evaluate's CSV?")
    summary_path = path.with_name(path.stem + "_summary.json")
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return {r["case_id"]: {k: v for k, v in r.items() if k != "case_id"} for r in rows}, summary


def find_backgrounds(inputs: str | Path, case_ids: list[str], modality: str | None = None,
                     ) -> tuple[dict[str, Path], dict[str, tuple[str, str | None]]]:
    """Background image per case id from a data root in any registered layout.

    Returns ({case id: image path}, {case id: (subject, session)} from a manifest's ``session``
    column, if it has one). The first layout whose cases match a case id wins.
    """
    from brainsegfounder.data.layouts import LAYOUTS, find_cases

    root = Path(inputs).expanduser()
    if not root.is_dir():
        raise DataError(f"--inputs {root} is not a folder; give the data root predict read.")
    wanted, found = set(case_ids), {}
    for layout in LAYOUTS:
        try:
            cases = find_cases(layout, root)
        except Exception:  # noqa: BLE001 - a layout that does not fit this root is simply skipped
            continue
        for case in cases:
            if case.subject_id in wanted and case.images:
                chosen = case.images.get(modality) if modality else None
                found[case.subject_id] = Path(chosen) if chosen else background_of(case.images)
        if found:
            break
    if not found:  # no layout: one case folder, or a folder of case folders, named by case id
        from brainsegfounder.inference.inputs import partial_cases

        order = ([modality] if modality else []) + [m for m in BACKGROUND_PREFERENCE if m != modality]
        found = {case.subject_id: background_of(case.images) for case in partial_cases(root, order)
                 if case.subject_id in wanted}
    return found, _manifest_sessions(root)


def _manifest_sessions(root: Path) -> dict[str, tuple[str, str | None]]:
    for name in ("manifest.csv", "manifest.tsv"):
        path = root / name
        if path.is_file():
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle, delimiter="\t" if name.endswith(".tsv") else ","))
            if rows and "session" in rows[0]:
                return {r["subject_id"]: (r.get("subject") or r["subject_id"], r["session"] or None) for r in rows}
    return {}


def provenance(predictions: str | Path, checkpoints: list[str] | None = None, command_line: str | None = None,
               preprocessing: dict | None = None) -> dict:
    """The run's provenance: ``provenance.json`` of the predictions folder, completed by what exists.

    Keys: ``checkpoints`` (list of paths), ``checkpoint_facts`` (per checkpoint, what the file says
    of itself: :func:`checkpoint_facts`), ``preprocessing`` (a
    :class:`~brainsegfounder.data.transforms.PreprocessingRecord` dict), ``command`` (the command
    line), ``inputs``, ``versions`` (package -> version), ``date`` (ISO 8601) and ``date_source``
    (``provenance.json``, or the label maps' file times when no provenance.json recorded it),
    ``report`` (when and by which command this page was written). Nothing that can be found is
    left "not recorded": a report made by ``report`` on a folder without ``provenance.json`` reads
    the preprocessing, sha256 and calibration from the checkpoint files and the date from the files.
    """
    from brainsegfounder.inference.writers import PROVENANCE_FILE, package_versions

    folder = Path(predictions).expanduser()
    path = folder / PROVENANCE_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    if checkpoints:
        record["checkpoints"] = [str(c) for c in checkpoints]
    if command_line:
        record["command"] = command_line
    if preprocessing:
        record["preprocessing"] = preprocessing
    facts = [checkpoint_facts(c) for c in record.get("checkpoints") or []]
    if facts:
        record["checkpoint_facts"] = facts
    if not record.get("preprocessing"):
        record["preprocessing"] = next((f["preprocessing"] for f in facts if f.get("preprocessing")), None)
    if record.get("date"):
        record.setdefault("date_source", PROVENANCE_FILE)
    else:
        times = [p.stat().st_mtime for p in folder.iterdir() if p.is_file() and _case_id(p)] if folder.is_dir() else []
        if times:
            record["date"] = datetime.fromtimestamp(max(times), timezone.utc).isoformat(timespec="seconds")
            record["date_source"] = "the newest label map's file time (no provenance.json)"
    record.setdefault("versions", package_versions())
    record["report"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "command": _this_command(),
                        "versions": package_versions(), "source": str(path) if path.is_file() else None}
    return record


def _this_command() -> str:
    """The command line running now, ``python -m brainsegfounder.<module> ...`` for one of ours."""
    if not sys.argv or not sys.argv[0]:
        return ""
    package = Path(__file__).resolve().parents[1]
    try:
        relative = Path(sys.argv[0]).resolve().relative_to(package.parent)
    except ValueError:
        return " ".join(sys.argv)
    module = ".".join(relative.with_suffix("").parts).removesuffix(".__main__")
    return " ".join([f"python -m {module}", *sys.argv[1:]])


def checkpoint_facts(checkpoint: str | Path) -> dict:
    """What a checkpoint file says of itself: path, whether it exists, size, sha256 (of the file as it
    is now), preprocessing record, whether it is calibrated, its flag threshold (as an expected Dice)
    and the validation cases that threshold was fitted on.

    >>> checkpoint_facts("/no/such.ckpt")["exists"]
    False
    """
    from brainsegfounder.inference.writers import file_sha256

    path = Path(checkpoint).expanduser()
    facts: dict = {"path": str(checkpoint), "exists": path.is_file()}
    if not facts["exists"]:
        return facts
    facts["bytes"] = path.stat().st_size
    facts["sha256"] = file_sha256(path)
    from brainsegfounder.checkpoints import (
        FLAG_CASES_KEY,
        FLAG_THRESHOLD_KEY,
        TEMPERATURE_KEY,
        preprocessing_of,
        read_checkpoint,
    )

    try:  # mapped, not read: only the small records are wanted
        saved = read_checkpoint(path, what="checkpoint", mmap=True)
    except Exception:  # noqa: BLE001 - provenance is best effort; the report must still be written
        facts["readable"] = False
        return facts
    facts["preprocessing"] = preprocessing_of(saved)
    temperature = saved.get(TEMPERATURE_KEY)
    facts["calibrated"] = temperature is not None
    if temperature is not None:
        facts["temperature"] = [float(t) for t in temperature]
    if saved.get(FLAG_THRESHOLD_KEY) is not None:
        facts["flag_below"] = 1.0 - float(saved[FLAG_THRESHOLD_KEY])
        facts["flag_cases"] = saved.get(FLAG_CASES_KEY)
    return facts
