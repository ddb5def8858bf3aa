"""The demo's command line: options are parsed before anything runs."""

import pytest

from brainsegfounder import demo


def test_help_prints_the_options_and_runs_nothing(capsys, monkeypatch):
    monkeypatch.setattr(demo, "run_demo", lambda **kw: pytest.fail("--help must not start the demo"))
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0
    assert "--stages {all,finetune}" in capsys.readouterr().out


def test_overrides_reach_the_fine_tuning_and_stray_words_are_refused(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda **kw: calls.append(kw) or {})
    demo.main(["--stages", "finetune", "--trainer.max_steps=3"])
    assert calls[0]["stages"] == "finetune" and calls[0]["extra_args"] == ["--trainer.max_steps=3"]
    with pytest.raises(SystemExit):
        demo.main(["finetune"])
    assert "unexpected arguments ['finetune']" in capsys.readouterr().err


def test_best_checkpoint_is_scored_on_a_test_fold_used_for_neither_and_the_panel_names_real_files(
        brats2021_root, tmp_path, capsys):
    """A real tiny fit of the demo config: selection on fold 0, one score on test fold 1, split.json says so."""
    import json
    from pathlib import Path

    from rich.console import Console

    from brainsegfounder.fit import main as fit_main
    from brainsegfounder.training.console import print_outputs

    cli = fit_main(["--config", str(demo.CONFIG), f"--data.init_args.root={brats2021_root}",
                    "--data.init_args.n_folds=5", "--data.init_args.num_workers=0", "--data.init_args.validate=off",
                    "--data.init_args.batch_size=1", "--data.init_args.samples_per_volume=1",
                    "--data.init_args.queue_length=2", "--model.init_args.sw_overlap=0",
                    "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
                    f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"])
    split = json.loads((Path(cli.trainer.log_dir) / "split.json").read_text())
    assert split["test_fold"] == 1 and split["test"] == split["folds"]["1"] and len(split["test"]) == 2
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    assert [c.subject_id for c in cli.datamodule.test_cases] == split["test"]
    assert {"test/dice_tc", "test/dice_wt", "test/dice_et", "val/dice_mean"} <= set(cli.best_metrics)
    out = capsys.readouterr().out
    assert "held-out test Dice (2 test cases)" in out and "checkpoint: " in out

    written, commands = demo.next_steps(cli, brats2021_root, None, [])
    assert all(Path(path).exists() for _, path in written), written
    assert any(what == "best checkpoint" for what, _ in written)
    predict = next(line for _, line in commands if "brainsegfounder.predict" in line)
    assert all(str(brats2021_root / s) in predict for s in split["test"])  # the test cases, not the validation ones
    evaluate = next(line for _, line in commands if "brainsegfounder.evaluate" in line)
    assert f"--subjects '[{','.join(split['test'])}]'" in evaluate  # scores the predicted cases, every one of them
    console = Console(width=70, record=True)
    print_outputs(console, written, commands)
    lines = console.export_text().splitlines()
    # Every path and command on one line of its own, whole, at 70 columns: copied, it runs.
    assert all(line in lines for _, line in commands)
    assert all(any(line.endswith(str(path)) for line in lines) for _, path in written)
