"""Resume under faults: --ckpt_path last uses what is there. A corrupt last.ckpt beside a readable
best checkpoint resumes from the best one and says so; none readable is a one-line refusal; a fit
killed with SIGKILL between validations resumes from the last multiple of last_every_n_steps.
Real fits of the demo config on small real NIfTI cases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from brainsegfounder.fit import main as fit_main
from tests.conftest import DEMO, REPO
from tests.faults.conftest import assert_one_clear_line


def _config(tmp_path, every: int, step_log=None) -> str:
    """The demo config with last.ckpt written every ``every`` steps (and a step log, for the kill test)."""
    config = yaml.safe_load(DEMO.read_text())
    callbacks = config["trainer"]["callbacks"]
    callbacks[0]["init_args"]["last_every_n_steps"] = every
    if step_log is not None:
        callbacks.append({"class_path": "tests.faults.step_log.StepLog", "init_args": {"path": str(step_log)}})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _args(config, root, run, *extra) -> list[str]:
    return ["--config", config, f"--data.init_args.root={root}", "--data.init_args.n_folds=2",
            "--data.init_args.test_fold=null", "--data.init_args.validate=off", f"--trainer.default_root_dir={run}",
            f"--trainer.logger.init_args.save_dir={run}", "--trainer.num_sanity_val_steps=0",
            "--data.init_args.batch_size=1", "--data.init_args.samples_per_volume=1",
            "--data.init_args.queue_length=2", "--data.init_args.num_workers=0", "--quiet=true", *extra]


def _step(path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def test_corrupt_last_ckpt_resumes_from_the_readable_best_and_says_so(fit_root, tmp_path, capsys):
    run = tmp_path / "run"
    config = _config(tmp_path, every=10)
    fit_main(_args(config, fit_root, run, "--trainer.max_steps=2", "--trainer.val_check_interval=2",
                   "--trainer.limit_val_batches=1"))
    last = next(run.rglob("last.ckpt"))
    best = next(run.rglob("best-step=*.ckpt"))
    assert _step(best) == 2
    last.write_bytes(last.read_bytes()[:4096])  # a copy that stopped half-way
    capsys.readouterr()

    cli = fit_main(_args(config, fit_root, run, "--trainer.max_steps=3", "--trainer.val_check_interval=2",
                         "--trainer.limit_val_batches=1", "--ckpt_path=last"))
    err = " ".join(capsys.readouterr().err.split())
    assert f"resuming from {best} (step 2), the newest readable checkpoint of the run; skipped {last}" in err
    assert "corrupt" in err and "Traceback" not in err
    assert cli.config["ckpt_path"] == str(best) and cli.trainer.global_step == 3  # one step, not three

    # Nothing readable left: one line, no new run.
    for path in run.rglob("*.ckpt"):
        path.write_bytes(b"PK not a checkpoint")
    versions = sorted(p.name for p in run.rglob("version_*"))
    with pytest.raises(SystemExit) as done:
        fit_main(_args(config, fit_root, run, "--trainer.max_steps=4", "--ckpt_path=last"))
    assert done.value.code == 2
    assert_one_clear_line(capsys.readouterr().err, "--ckpt_path last: no checkpoint of this run can be read",
                          "skipped", "start a new run without --ckpt_path")
    assert sorted(p.name for p in run.rglob("version_*")) == versions


def test_fit_killed_between_validations_resumes_from_the_last_multiple_of_n(fit_root, tmp_path):
    every, run, steps = 3, tmp_path / "run", tmp_path / "steps.txt"
    config = _config(tmp_path, every, step_log=steps)
    args = _args(config, fit_root, run, "--trainer.max_steps=1000", "--trainer.val_check_interval=1000",
                 "--trainer.limit_val_batches=0")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "brainsegfounder.fit", *args], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, done = time.monotonic() + 240, 0
    try:
        # Kill mid-interval: past the first multiple of N, at a step that is not one.
        while not (done > every and done % every):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the fit did not reach step 4 within 240 s"
            time.sleep(0.02)
            lines = steps.read_text().split() if steps.exists() else []
            done = int(lines[-1]) if lines else 0
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()

    last = next(run.rglob("last.ckpt"))
    saved = _step(last)  # readable: written atomically, whatever the kill interrupted
    assert saved >= done // every * every and saved % every == 0, (saved, done)

    steps.unlink()
    cli = fit_main(_args(config, fit_root, run, f"--trainer.max_steps={saved + 1}",
                         "--trainer.val_check_interval=1000", "--trainer.limit_val_batches=0", "--ckpt_path=last"))
    assert cli.config["ckpt_path"] == str(last)
    assert steps.read_text().split() == [str(saved + 1)]  # continued from the saved step: one step, not saved + 1
