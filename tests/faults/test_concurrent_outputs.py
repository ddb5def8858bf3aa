"""predict's outputs under concurrency and a full disk: several runs into one --output all keep their
cases, volumes.csv lists each case once, the record owns every file, a full disk disowns nothing,
and "free space" is advised only when the disk is full. Real processes, real NIfTI, a real tmpfs."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from brainsegfounder.data.layouts import find_cases
from brainsegfounder.inference.writers import (
    PARTIAL_FOLDER,
    RECORD_FILE,
    VOLUMES_FILE,
    OutputRecord,
    inputs_digest,
    output_lock,
)
from brainsegfounder.predict import main
from tests.conftest import REPO
from tests.faults.conftest import assert_one_clear_line, checksums, temp_files, write_case


def _args(checkpoint, inputs, output, *extra) -> list[str]:
    return ["--ckpt", str(checkpoint), "--input", *map(str, inputs), "--output", str(output), "--device", "cpu", *extra]


def _rows(output: Path) -> list[dict[str, str]]:
    with (output / VOLUMES_FILE).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _unowned(output: Path, root: Path) -> list[str]:
    """Label maps in ``output`` that the record does not vouch for (as a next run would check them)."""
    record = OutputRecord(output)
    problems = []
    for case in find_cases("brats2021", root):
        label = output / f"{case.subject_id}.nii.gz"
        if label.exists():
            why = record.problem(label, inputs_digest(case))
            if why:
                problems.append(f"{label.name}: {why}")
    return problems


def _staged_labels(output: Path) -> list[Path]:
    return list((output / PARTIAL_FOLDER).glob("*/*BraTS2021_*.nii.gz"))


def test_predicts_started_together_into_one_folder_all_keep_their_cases(random_checkpoint, tmp_path, capsys):
    root = tmp_path / "data"
    folders = [write_case(root, f"BraTS2021_0000{i}", seed=i) for i in range(3)]
    out = tmp_path / "pred"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "brainsegfounder.predict"]
    # The test holds the folder's lock while the three runs start: each predicts its case and stages
    # its files, then waits to commit, so all three commit in one pile-up when the lock is released.
    with output_lock(out):
        runs = [subprocess.Popen([*command, *_args(random_checkpoint, [folder], out)], env=env, cwd=REPO,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for folder in folders]
        deadline = time.monotonic() + 300
        while len(_staged_labels(out)) < len(runs):
            ended = [run.communicate() for run in runs if run.poll() is not None]
            assert not ended, f"a run ended before it could commit: {ended}"
            assert time.monotonic() < deadline, "the runs did not stage their cases within 300 s"
            time.sleep(0.2)
        # Nothing reached the folder while another writer held it.
        assert not (out / VOLUMES_FILE).exists() and not (out / RECORD_FILE).exists()
        assert not list(out.glob("*.nii.gz"))
    results = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]
    for code, err in results:
        assert code == 0 and "wrote 1 prediction(s)" in err, err

    ids = sorted(folder.name for folder in folders)
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"{i}.nii.gz" for i in ids]
    assert sorted(row["case_id"] for row in _rows(out)) == ids  # each case once
    assert _unowned(out, root) == []
    assert sorted(entry["case_id"] for entry in OutputRecord(out).files.values()) == ids
    assert not temp_files(out)

    # A following run over the whole data set trusts all three (none disowned, none predicted again).
    before = checksums(out)
    capsys.readouterr()
    assert main(_args(random_checkpoint, [root], out)) == 0
    assert "skipped 3 case(s)" in capsys.readouterr().err
    assert checksums(out) == before

    # Predicting one case again replaces its row: still one row per case.
    assert main(_args(random_checkpoint, [folders[1]], out, "--overwrite")) == 0
    assert sorted(row["case_id"] for row in _rows(out)) == ids
    assert _unowned(out, root) == [] and not temp_files(out)


def test_full_disk_while_a_case_is_committed_disowns_nothing(random_checkpoint, tmp_path, capsys, mounted_tmpfs):
    root = tmp_path / "data"
    first, second = (write_case(root, f"BraTS2021_0000{i}", seed=i) for i in range(2))
    # The second case's label map size, predicted elsewhere (the prediction is deterministic).
    scratch = tmp_path / "scratch"
    assert main(_args(random_checkpoint, [second], scratch)) == 0
    label_pages = math.ceil((scratch / f"{second.name}.nii.gz").stat().st_size / 4096)

    out = mounted_tmpfs(tmp_path / "small", "size=2m")
    assert main(_args(random_checkpoint, [first], out)) == 0
    # Fill the disk but for the pages of the second label map: the map fits, its record entry does not.
    stats = os.statvfs(out)
    (out / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - label_pages * 4096))
    before = checksums(out)
    capsys.readouterr()
    assert main(_args(random_checkpoint, [root], out)) == 2
    err = capsys.readouterr().err
    assert_one_clear_line(err, "the disk is full", "free space")
    assert checksums(out) == before  # the folder as it was: no label map that the record does not vouch for
    assert not (out / f"{second.name}.nii.gz").exists() and not temp_files(out)

    # Space again: the first case is still ours (skipped), the second is predicted.
    (out / "filler").unlink()
    assert main(_args(random_checkpoint, [root], out)) == 0
    assert "skipped 1 case(s)" in capsys.readouterr().err
    assert _unowned(out, root) == [] and sorted(row["case_id"] for row in _rows(out)) == [first.name, second.name]


def test_a_write_that_fails_for_another_reason_does_not_advise_free_space(random_checkpoint, tmp_path, capsys):
    root = tmp_path / "data"
    case = write_case(root, "BraTS2021_00000", seed=0)
    out = tmp_path / "pred"
    out.mkdir()
    (out / PARTIAL_FOLDER).write_text("a file where predict keeps its temporary folder")
    assert main(_args(random_checkpoint, [case], out)) == 2
    err = capsys.readouterr().err
    assert_one_clear_line(err, "cannot write", "Not a directory")
    assert "free space" not in err and "disk is full" not in err
    assert not list(out.glob("*.nii.gz")) and not (out / VOLUMES_FILE).exists()
