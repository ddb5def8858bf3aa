"""export under faults: a read-only or full folder, an earlier export, each ends in one line and
leaves nothing half-written; the happy path prints no library warnings. A real tiny checkpoint."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from brainsegfounder.export import main
from tests.faults.conftest import assert_one_clear_line, checksums


def _export(checkpoint, fmt, out, *extra):
    return main(["--ckpt", str(checkpoint), "--format", fmt, "--out", str(out), *extra])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_read_only_folder_is_one_line_and_leaves_nothing(random_checkpoint, tmp_path, capsys, mounted_tmpfs, fmt):
    out = mounted_tmpfs(tmp_path / "ro", "ro,size=64k")
    with pytest.raises(SystemExit) as stop:
        _export(random_checkpoint, fmt, out / "exported")
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert_one_clear_line(err, str(out / "exported"), "--out")
    assert not list(out.rglob("*"))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_full_disk_is_one_line_and_leaves_no_model_file(random_checkpoint, tmp_path, capsys, mounted_tmpfs, fmt):
    out = mounted_tmpfs(tmp_path / "small", "size=256k")  # room for the folder, not for the model
    with pytest.raises(SystemExit) as stop:
        _export(random_checkpoint, fmt, out / "exported")
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert_one_clear_line(err, "cannot write", "--out")
    assert not [p for p in out.rglob("*") if p.is_file()]  # no truncated model.onnx / model.ts / partial


def test_an_earlier_export_is_kept_unless_overwrite(random_checkpoint, tmp_path, capsys):
    out = tmp_path / "exported"
    _export(random_checkpoint, "torchscript", out)
    _export(random_checkpoint, "onnx", out)  # one folder holds both exports of one checkpoint
    before = checksums(out)
    with pytest.raises(SystemExit) as stop:
        _export(random_checkpoint, "torchscript", out)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert_one_clear_line(err, str(out / "model.ts"), "--overwrite")
    assert checksums(out) == before
    _export(random_checkpoint, "torchscript", out, "--overwrite", "true")
    assert (out / "model.ts").stat().st_size > 0 and sorted(p.name for p in out.iterdir()) == [
        "model.onnx", "model.ts", "model_card.json"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_the_happy_path_shows_no_library_warning(random_checkpoint, tmp_path, fmt):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = _export(random_checkpoint, fmt, tmp_path / fmt)
    assert report is None or report  # main prints the report; the files are the result
    assert (tmp_path / fmt / ("model.ts" if fmt == "torchscript" else "model.onnx")).is_file()
    # Python shows users no DeprecationWarning from library code (torch.jit's own notes); any other
    # warning would reach them (the tracer's and the ONNX exporter's 12 did).
    shown = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    assert [f"{w.category.__name__}: {str(w.message)[:80]}" for w in shown] == []


def test_the_command_line_prints_one_json_line_and_nothing_else(random_checkpoint, tmp_path):
    done = subprocess.run([sys.executable, "-m", "brainsegfounder.export", "--ckpt", str(random_checkpoint), "--format",
                           "torchscript", "--out", str(tmp_path / "ts")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "" and done.stdout.count("\n") == 1 and '"max_abs_logit_difference"' in done.stdout
