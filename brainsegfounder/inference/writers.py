"""What ``predict`` writes, and the one owner of those names: label maps, probabilities, uncertainty
maps, ``volumes.csv`` and ``provenance.json``, every file atomically. The report, ``evaluate`` and
``calibrate`` read predict's outputs through the names and readers here.

Each file is written under a temporary name in ``<output>/.partial/<run>/`` (one folder per
running process) and renamed into place, so an interrupted run never leaves a truncated file where a
finished one is expected. A write that fails (a full disk, a read-only folder) removes its
temporary file and is one :class:`DataError` line whose advice fits the error (free space only
when the disk is full).

Every file written is recorded in ``<output>/.brainsegfounder.json`` (:class:`OutputRecord`) with
its sha256 and a digest of the inputs it came from; a rerun trusts (skips) an existing output only
if the record vouches for it, so a foreign, truncated or edited file carrying an output's name is
never taken for a prediction.

Several predicts may write into one folder at once (one per GPU, one per scanner): a case is
committed by :func:`commit_case` under :func:`output_lock` (an advisory ``flock`` on
``<output>/.brainsegfounder.lock``), which reads the record and ``volumes.csv`` as they are now,
merges this case in, and writes them. Its files are staged first (:class:`StagedFiles`), and the
record, the files and the table are renamed into place only once all are written, so a full disk
leaves the folder as it was: no file the record does not vouch for.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / "case1.nii.gz").write_bytes(b"label"); record = OutputRecord(out)
    >>> record.problem(out / "case1.nii.gz", "inputs-digest")
    'not written by brainsegfounder.predict'
    >>> record.add(out / "case1.nii.gz", "case1", "inputs-digest"); record.save()
    >>> OutputRecord(out).problem(out / "case1.nii.gz", "inputs-digest") is None
    True
    >>> _ = (out / "case1.nii.gz").write_bytes(b"lab")
    >>> OutputRecord(out).problem(out / "case1.nii.gz", "inputs-digest")
    'changed since it was written (truncated or edited)'
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from brainsegfounder.inference.output_checks import check_output  # noqa: F401 - re-exported
from brainsegfounder.inference.provenance import (  # noqa: F401 - re-exported
    PROVENANCE_FILE,
    file_sha256,
    inputs_digest,
    package_versions,
    write_provenance,
)
from brainsegfounder.inference.volumes import (  # noqa: F401 - re-exported
    _cell,
    _parse,
    _table_columns,
    region_volumes,
    volume_columns,
    volumes_from_file,
)
from brainsegfounder.utils.errors import BrainSegFounderError, DataError

if TYPE_CHECKING:  # only annotations: reading the outputs (report) needs no predictor
    from brainsegfounder.inference.case_prediction import CasePrediction

__all__ = ["LOCK_FILE", "RECORD_FILE", "OutputRecord", "StagedFiles", "commit_case", "ensure_writable",
           "file_sha256", "inputs_digest", "output_lock", "PARTIAL_FOLDER", "PROBABILITY_FOLDER", "PROVENANCE_FILE",
           "UNCERTAINTY_FOLDER", "VOLUMES_FILE", "check_output", "package_versions", "read_volumes",
           "volume_columns", "write_error", "write_provenance", "region_volumes", "volumes_from_file", "write_label",
           "write_probabilities", "write_uncertainty", "write_volumes"]

PROBABILITY_FOLDER = "probabilities"
UNCERTAINTY_FOLDER = "uncertainty"
VOLUMES_FILE = "volumes.csv"
PARTIAL_FOLDER = ".partial"
RECORD_FILE = ".brainsegfounder.json"
LOCK_FILE = ".brainsegfounder.lock"


def write_error(path: Path, err: OSError) -> DataError:
    """One line for a failed write, with the advice that fits ``err`` (free space only for a full disk)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        why, advice = "the disk is full", "free space or choose another --output"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why, advice = "the folder is not writable", "choose a writable --output"
    else:
        why, advice = err.strerror or type(err).__name__, f"check that {Path(path).parent} is a folder you can write"
    return DataError(f"cannot write {path}: {why} ({err.strerror or err}). No partial file was left; {advice}, "
                     "then run again (finished cases are kept).")


def _make_folder(folder: Path) -> None:
    # Another run may remove an empty ``.partial`` just as this one creates its own folder in it.
    for _ in range(3):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    folder.mkdir(parents=True, exist_ok=True)


def _write_temporary(path: Path, temporary: Path, write) -> None:
    """``write(temporary)`` in its (made) folder; on failure the temporary file is removed, and an
    ``OSError`` becomes one :class:`DataError` line naming ``path``."""
    try:
        _make_folder(temporary.parent)
        write(temporary)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise write_error(path, err) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _atomic(path: Path, partial_dir: Path, write) -> None:
    """``write(temporary)`` then rename onto ``path``; on failure the temporary file is removed."""
    temporary = partial_dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}"
    _write_temporary(path, temporary, write)
    try:
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise write_error(path, err) from None


class StagedFiles:
    """One case's files, written under temporary names and renamed into place by :func:`commit_case`.

    ``partial_dir`` is this run's own folder (``<output>/.partial/<run>``): other runs never touch it.
    """

    def __init__(self, partial_dir: Path):
        self.partial_dir = Path(partial_dir)
        self.files: dict[Path, Path] = {}  # final path -> temporary file
        self._count = 0

    def write(self, path: Path, write) -> None:
        """``write(temporary)``; a failure removes the temporary file and is one :class:`DataError` line."""
        self._count += 1
        temporary = self.partial_dir / f"{self._count}-{Path(path).name}"
        _write_temporary(Path(path), temporary, write)
        self.files[Path(path)] = temporary

    def drop(self, path: Path) -> None:
        self.files.pop(Path(path)).unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove every temporary file not committed (after a failure, or after the commit: none left)."""
        for path in list(self.files):
            self.drop(path)


def _atomic_save(image: nib.Nifti1Image, path: Path, partial_dir: Path | StagedFiles) -> None:
    """Write under a temporary name (staged, or renamed into place at once): never a truncated file in place."""
    if isinstance(partial_dir, StagedFiles):
        partial_dir.write(path, lambda temporary: nib.save(image, temporary))
    else:
        _atomic(path, partial_dir, lambda temporary: nib.save(image, temporary))


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """One writer at a time in ``output``: an exclusive advisory lock (``flock``) on ``<output>/.brainsegfounder.lock``.

    Held while the record and ``volumes.csv`` are read, merged and written; released when the block
    ends or the process dies (the kernel drops it, so a killed run never leaves the folder locked).
    Readers need no lock: every file is replaced by a rename, so they see the old or the new file.
    The lock file itself stays (removing it would let two runs lock two different files).
    """
    path = Path(output) / LOCK_FILE
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as err:
        raise write_error(path, err) from None
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_writable(output: Path) -> None:
    """Create ``output`` and write and remove a probe file in it, before any case is predicted."""
    from brainsegfounder.utils.folders import make_folder

    probe = output / f".probe-{os.getpid()}"
    try:
        make_folder(output)  # removed again if the run is refused while it is still empty
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        raise write_error(output, err) from None






class OutputRecord:
    """``<output>/.brainsegfounder.json``: every file predict wrote, its sha256 and its inputs' digest."""

    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = self.output / RECORD_FILE
        try:
            self.files: dict[str, dict] = json.loads(self.path.read_text()).get("files", {})
        except (OSError, ValueError, AttributeError):
            self.files = {}  # no record (or a broken one): nothing in the folder is vouched for

    def _key(self, path: Path) -> str:
        return Path(path).relative_to(self.output).as_posix() if self.output in Path(path).parents else str(path)

    def problem(self, path: Path, digest: str) -> str | None:
        """Why the existing ``path`` cannot be trusted as this case's prediction (None: it can)."""
        entry = self.files.get(self._key(path))
        if entry is None:
            return "not written by brainsegfounder.predict"
        if file_sha256(path) != entry.get("sha256"):
            return "changed since it was written (truncated or edited)"
        if entry.get("inputs") != digest:
            return "predicted from other input files (or another --postprocess) than today's"
        return None

    def add(self, path: Path, case_id: str, digest: str, sha256: str | None = None) -> None:
        """Vouch for ``path`` (its sha256 now, or ``sha256``: the staged file that will be renamed onto it)."""
        self.files[self._key(path)] = {"case_id": case_id, "sha256": sha256 or file_sha256(path), "inputs": digest}

    def text(self) -> str:
        return json.dumps({"format": 1, "files": dict(sorted(self.files.items()))}, indent=1)

    def save(self, partial_dir: Path | None = None) -> None:
        """Write the record (atomically). With several runs in one folder, go through :func:`commit_case`."""
        text = self.text()
        _atomic(self.path, partial_dir or self.output / PARTIAL_FOLDER, lambda t: t.write_text(text))


def _nifti(data: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header, dtype) -> nib.Nifti1Image:
    header = header.copy()
    header.set_data_dtype(dtype)
    image = nib.Nifti1Image(data, affine, header)
    image.header.set_xyzt_units("mm")
    return image


def write_label(result: CasePrediction, path: Path, partial_dir: Path | StagedFiles) -> None:
    _atomic_save(_nifti(result.label.astype(np.uint8), result.affine, result.header, np.uint8), path, partial_dir)


def write_probabilities(result: CasePrediction, path: Path, partial_dir: Path | StagedFiles) -> None:
    # Regions along the 4th axis; 8 bits with a 1/255 slope keep files small (resolution 0.004).
    data = np.moveaxis(result.probabilities, 0, -1)
    image = _nifti(np.clip(np.rint(data * 255), 0, 255).astype(np.uint8), result.affine, result.header, np.uint8)
    image.header.set_slope_inter(1 / 255, 0)
    _atomic_save(image, path, partial_dir)


def write_uncertainty(result: CasePrediction, folder: Path, partial_dir: Path | StagedFiles) -> list[Path]:
    """``<case>_entropy.nii.gz`` (bits, 0..1) and, with several members, ``<case>_variance.nii.gz``.

    Both lie on the input's grid (its affine and header). The entropy is 3-D (the least sure
    region per voxel); the variance has one volume per region along the 4th axis. Float32: the
    values are small and their resolution matters.
    """
    if result.entropy is None:
        raise BrainSegFounderError(f"subject {result.case_id}: no uncertainty was computed; predict with "
                                   "uncertainty=True.")
    paths = [folder / f"{result.case_id}_entropy.nii.gz"]
    _atomic_save(_nifti(result.entropy.astype(np.float32), result.affine, result.header, np.float32),
                 paths[0], partial_dir)
    if result.variance is not None:
        paths.append(folder / f"{result.case_id}_variance.nii.gz")
        data = np.moveaxis(result.variance, 0, -1).astype(np.float32)
        _atomic_save(_nifti(data, result.affine, result.header, np.float32), paths[1], partial_dir)
    return paths




















def _write_table(path: Path, rows: dict[str, dict], columns: list[str]) -> None:
    columns = _table_columns(rows, columns)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case_id", *columns])
        writer.writeheader()
        for case_id in sorted(rows):
            writer.writerow({"case_id": case_id, **{c: _cell(rows[case_id].get(c, "")) for c in columns}})


def write_volumes(path: Path, rows: dict[str, dict[str, float]], columns: list[str], partial_dir: Path) -> None:
    """``volumes.csv``: one row per case id (sorted), mL per region with 4 decimals.

    Optional columns: ``non_finite_voxels`` (NaN/Inf voxels replaced by 0 with ``--non_finite
    zero``), ``missing_modalities`` (``+``-joined names the case was predicted without),
    ``expected_dice`` (the Dice the calibrated model expects of its label map, 0..1, higher = better;
    empty when not calibrated), ``flag`` (``1`` when it is below the threshold) and ``review`` (why,
    in words) when the predictor computed them. Files written before the rename have ``quality``
    (``1 -`` expected Dice) instead; :func:`read_volumes` still reads them. Columns that only some rows
    carry (an earlier run's options) are kept, empty for the others.
    """
    _atomic(path, partial_dir, lambda temporary: _write_table(temporary, rows, columns))


def read_volumes(path: Path, columns: list[str], overwrite: bool) -> dict[str, dict[str, float]]:
    """The rows of ``volumes.csv`` as it is now, every column of the file, by case id (none if absent).

    The region columns must be ``columns``' (the same task); a table of other regions is refused,
    or with ``overwrite`` dropped (an empty table is returned). Optional columns may differ.
    """
    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        regions = [c for c in columns if c.endswith("_ml")]
        # The optional count columns (non_finite_voxels) may come and go between runs; regions may not.
        if [c for c in fields if c.endswith("_ml")] != regions or (fields or [""])[0] != "case_id":
            if overwrite:
                return {}
            raise BrainSegFounderError(
                f"{path} exists with columns {reader.fieldnames}, not {['case_id', *columns]} (another task's "
                "predictions?). Choose another --output, or pass --overwrite to replace it.")
        return {row["case_id"]: {c: _parse(c, row.get(c) or "") for c in fields if c != "case_id"} for row in reader}


def commit_case(output: Path, staged: StagedFiles, case_id: str, digest: str, row: dict, columns: list[str],
                overwrite: bool = False) -> dict[str, dict]:
    """Put one predicted case into ``output``: its staged files, their record entries, its ``volumes.csv`` row.

    Under :func:`output_lock`, the record and the table are read as they are now (other runs may
    have added cases since this one started), this case is merged in (its row replaces an earlier
    one of the same case id), and both are written under temporary names. Only when everything is
    written are the record, the case's files and the table renamed into place, so a failure (a
    full disk) leaves the folder as it was. An existing file that the record vouches for is kept
    unless ``overwrite``; one it does not vouch for (it appeared meanwhile) is refused.

    Returns the table as written, by case id.
    """
    output = Path(output)
    volumes_path = output / VOLUMES_FILE
    with output_lock(output):
        record = OutputRecord(output)
        for path in list(staged.files):
            if path.exists() and not overwrite:
                why = record.problem(path, digest)
                if why:
                    raise DataError(f"{path} appeared while {case_id} was being predicted and cannot be trusted "
                                    f"({why}). Move it away, or pass --overwrite to replace it.")
                staged.drop(path)  # another run wrote it meanwhile, from the same input files: kept
        for path, temporary in staged.files.items():
            record.add(path, case_id, digest, sha256=file_sha256(temporary))
        table = read_volumes(volumes_path, columns, overwrite)
        table[case_id] = row
        case_files = list(staged.files)
        staged.write(record.path, lambda temporary: temporary.write_text(record.text()))
        staged.write(volumes_path, lambda temporary: _write_table(temporary, table, columns))
        # The record first: if the process dies between these renames, a file it does not vouch for
        # is never in place (at worst a recorded file is missing, and the next run predicts it).
        for path in [record.path, *case_files, volumes_path]:
            try:
                os.replace(staged.files[path], path)
            except OSError as err:
                raise write_error(path, err) from None
            del staged.files[path]
    return table






