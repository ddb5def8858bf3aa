"""fit under faults: config mistakes and refused starts are one line without a traceback, and leave
no run folder behind; unreadable checkpoints are refused or skipped as what they are."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.fit import main as fit_main
from tests.conftest import DEMO, REPO
from tests.faults.conftest import assert_one_clear_line, checksums, code_carrying_checkpoint

STAGE2 = REPO / "experiments" / "demo_stage2.yaml"


def _fit_args(root, run, config=DEMO, *extra):
    # Two folds, one validates and one trains: no test fold (the demo's test_fold 1 would leave none).
    no_test_fold = ["--data.init_args.test_fold=null"] if config == DEMO else []
    return ["--config", str(config), f"--data.init_args.root={root}", "--data.init_args.n_folds=2", *no_test_fold,
            f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run}",
            "--trainer.max_steps=1", "--trainer.num_sanity_val_steps=0", "--trainer.limit_val_batches=0",
            "--data.init_args.batch_size=1", "--data.init_args.samples_per_volume=1", "--quiet=true", *extra]


def _refused(capsys, args, *needles, roots=()):
    before = checksums(*roots)
    with pytest.raises(SystemExit) as done:
        fit_main(args)
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    assert_one_clear_line(err, *needles)
    assert checksums(*roots) == before
    return err


@pytest.mark.parametrize(("override", "needle"), [
    ("--data.init_args.batch_size=-1", "data.batch_size is -1"),
    ("--data.init_args.batch_size=abc", "data.batch_size: Expected a <class 'int'>"),
    ("--data.init_args.patch_size=50", "multiple of 32"),
    ("--model.backbone.preset=huge", "model.backbone.preset 'huge' is unknown"),
])
def test_config_mistakes_are_one_line_and_leave_no_run_folder(fit_root, tmp_path, capsys, override, needle):
    run = tmp_path / "run"
    _refused(capsys, _fit_args(fit_root, run, DEMO, override), needle, roots=[fit_root])
    assert not list(run.rglob("version_*"))


def test_stage2_without_init_from_is_one_line(fit_root, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "stage2_without_init_from.yaml"
    config.write_text("".join(line for line in STAGE2.read_text().splitlines(keepends=True) if "init_from:" not in line))
    args = [*_fit_args(fit_root, run, config), "--data.init_args.val_count=1"]
    args = [a for a in args if not a.startswith("--trainer.limit_val")]
    _refused(capsys, args, "Stage 2", "set model.backbone.init_from", roots=[fit_root])
    assert not list(run.rglob("version_*"))


def test_code_carrying_ckpt_path_is_refused_before_anything_is_built(fit_root, tmp_path, capsys):
    hostile = code_carrying_checkpoint(tmp_path / "resume.ckpt")
    run = tmp_path / "run"
    _refused(capsys, _fit_args(fit_root, run, DEMO, f"--ckpt_path={hostile}"),
             "contains code references that are not allowed: posix.system", "it was not run", roots=[fit_root])
    assert not list(run.rglob("version_*"))


@pytest.mark.parametrize("fault", ["truncated", "all_zero"])
def test_bad_image_refused_start_leaves_no_version_folder(fit_root, tmp_path, capsys, fault):
    path = fit_root / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz"
    if fault == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
        needle = "cannot be read"
    else:
        nib.save(nib.Nifti1Image(np.zeros((40, 40, 32), np.float32), np.diag([2.0, 2, 2, 1])), path)
        needle = "is constant"
    run = tmp_path / "run"
    earlier = run / "finetune" / "version_0"
    earlier.mkdir(parents=True)
    (earlier / "notes.txt").write_text("an earlier run's folder: must stay")
    _refused(capsys, _fit_args(fit_root, run, DEMO, "--data.init_args.validate=full"), str(path), needle,
             roots=[fit_root])
    assert sorted(p.name for p in (run / "finetune").iterdir()) == ["version_0"]
    assert (earlier / "notes.txt").exists() and not list(run.rglob("*.ckpt"))


@pytest.mark.slow  # one real step, then a resume: about a minute on two busy cores
def test_ckpt_path_last_skips_a_corrupt_newest_last_ckpt(fit_root, tmp_path, capsys):
    import os

    run = tmp_path / "run"
    no_test_fold = "--data.init_args.test_fold=null"  # (already in _fit_args; kept explicit here)
    fit_main(_fit_args(fit_root, run, DEMO, no_test_fold))
    good = next(run.rglob("last.ckpt"))
    corrupt = run / "finetune" / "version_9" / "checkpoints" / "last.ckpt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(good.read_bytes()[:4096])
    os.utime(good, (1_000, 1_000))
    capsys.readouterr()
    cli = fit_main([*_fit_args(fit_root, run, DEMO, no_test_fold), "--trainer.max_steps=2", "--ckpt_path=last"])
    err = capsys.readouterr().err
    assert f"skipped {corrupt}" in " ".join(err.split()) and "corrupt" in err and "Traceback" not in err
    assert cli.config["ckpt_path"] == str(good) and cli.trainer.global_step == 2


def test_resuming_a_checkpoint_of_another_model_size_is_one_line(fit_root, tmp_path, capsys, random_checkpoint):
    """It was Lightning's page of "size mismatch for net...", after the run folder was made."""
    run = tmp_path / "run"
    _refused(capsys, _fit_args(fit_root, run, DEMO, f"--ckpt_path={random_checkpoint}",
                               "--model.backbone.feature_size=24"),
             str(random_checkpoint), "holds another model than this config builds", "feature_size",
             "backbone.init_from", roots=[fit_root])
    assert not list(run.rglob("version_*"))
