"""Operations: W&B offline logging and sweeps, exact resume after SIGKILL, DDP on CPU, bf16, crash safety.

Every run here is a real ``python -m brainsegfounder.fit`` (a subprocess where a process must be
killed or re-launched for DDP, in-process otherwise) on real synthetic NIfTI files, with W&B in
offline mode. Sizes are the smallest the network accepts (tiny preset, feature size 12, 64^3
patches, one patch per batch) so the whole file stays within a few minutes on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from brainsegfounder.data.synthetic import generate
from brainsegfounder.fit import main as fit_main
from brainsegfounder.training.checkpointing import AtomicCheckpointIO, find_last_checkpoint
from tests.conftest import DEMO, REPO

SWEEP = REPO / "experiments" / "sweep_brats.yaml"


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    """Six synthetic BraTS 2021 subjects at 2 mm (3 folds: 4 train, 2 validation)."""
    root = tmp_path_factory.mktemp("ops_brats")
    generate("brats2021", root, subjects=6, seed=3, spacing=2.0)
    return root


def tiny_config(path: Path, root: Path, run_dir: Path, *, train_subjects: int | None = None,
                wandb: bool = False, every_n_steps: int = 2, max_steps: int = 4, validate: bool = False) -> Path:
    """A config overlay on ``experiments/demo.yaml``: one 64^3 patch per batch and per subject."""
    trainer = {
        "max_steps": max_steps, "val_check_interval": max_steps if validate else None,
        "check_val_every_n_epoch": None if validate else 1,
        "limit_val_batches": 1.0 if validate else 0, "num_sanity_val_steps": 0, "log_every_n_steps": 1,
        "default_root_dir": str(run_dir), "deterministic": True,
        "logger": [{"class_path": "pytorch_lightning.loggers.CSVLogger",
                    "init_args": {"save_dir": str(run_dir), "name": "finetune"}}],
        "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                       "init_args": {"monitor": None, "every_n_train_steps": every_n_steps, "save_top_k": -1,
                                     "save_last": True, "filename": "{step}"}},
                      {"class_path": "brainsegfounder.training.callbacks.SeenSubjects"}],
    }
    if wandb:
        trainer["logger"].append({"class_path": "pytorch_lightning.loggers.WandbLogger",
                                  "init_args": {"save_dir": str(run_dir), "project": "bsf-tests",
                                                "name": "tiny", "tags": ["test"]}})
        trainer["callbacks"].append({"class_path": "brainsegfounder.training.callbacks.PredictionOverlays",
                                     "init_args": {"max_cases": 1}})
    data = {"root": str(root), "n_folds": 3, "batch_size": 1, "samples_per_volume": 1, "queue_length": 4,
            "num_workers": 0, "validate": "header", "train_count": train_subjects}
    path.write_text(yaml.safe_dump({"trainer": trainer, "data": {"init_args": data}}))
    return path


def fit_command(*configs: Path, extra: tuple[str, ...] = ()) -> list[str]:
    args = [sys.executable, "-m", "brainsegfounder.fit", "--config", str(DEMO)]
    for c in configs:
        args += ["--config", str(c)]
    return args + ["--quiet", "true", *extra]


def child_env() -> dict[str, str]:
    # A W&B run started in this process leaves the address of its wandb-core service in the
    # environment; children would join that service, which still holds the killed run's stream.
    # Each fit gets its own service, as separate user commands do.
    env = {k: v for k, v in os.environ.items() if "WANDB" not in k.upper()}
    return {**env, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}


def run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = child_env()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


# -- crash safety -------------------------------------------------------------------------------------
class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("simulated crash half-way through writing")


def test_atomic_checkpoint_keeps_the_previous_file_when_a_write_fails(tmp_path):
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(1000)}, target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="simulated crash"):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(1000), "bad": _Unpicklable()}, target)
    assert target.read_bytes() == before and load(target)["global_step"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_missing_checkpoint_is_a_clear_error_before_anything_is_built(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit_main(["--config", str(DEMO), f"--ckpt_path={tmp_path / 'nope.ckpt'}"])
    assert exit_info.value.code == 2
    message = "".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert f"--ckpt_path{tmp_path / 'nope.ckpt'}doesnotexist" in message


# -- resume ----------------------------------------------------------------------------------------------
def test_sigkill_then_resume_from_last_equals_an_uninterrupted_run(small_root, tmp_path):
    """2 train subjects x 1 patch = 2 steps an epoch; 4 steps in all; killed after the step-2 checkpoint.

    Equal after resume: global step, epoch, learning rate and scheduler state, optimiser state and
    every weight (compared with atol 1e-6, CPU, deterministic algorithms); the W&B run id
    continues. The resumed run writes a new version folder; the killed run's files are kept.
    """
    # Uninterrupted reference, in this process.
    ref_dir = tmp_path / "uninterrupted"
    cfg = tiny_config(tmp_path / "ref.yaml", small_root, ref_dir, train_subjects=2, wandb=True)
    fit_main(["--config", str(DEMO), "--config", str(cfg), "--quiet", "true"])
    reference = load(ref_dir / "finetune" / "version_0" / "checkpoints" / "last.ckpt")

    # The same run, killed with SIGKILL as soon as its step-2 checkpoint exists.
    run_dir = tmp_path / "killed"
    cfg = tiny_config(tmp_path / "run.yaml", small_root, run_dir, train_subjects=2, wandb=True)
    proc = subprocess.Popen(fit_command(cfg), cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ckpt_dir = run_dir / "finetune" / "version_0" / "checkpoints"
    deadline = time.monotonic() + 900
    while not (ckpt_dir / "last.ckpt").exists():  # appears, complete, by rename
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_config = (ckpt_dir.parent / "config.yaml").read_bytes()
    # Whatever the moment of the kill, every checkpoint file is complete; an interrupted write
    # leaves only its hidden temporary (.last.ckpt.XXXX.tmp), never a truncated .ckpt.
    assert all(load(p)["global_step"] >= 2 for p in ckpt_dir.glob("*.ckpt"))
    assert load(find_last_checkpoint([run_dir]))["global_step"] == 2

    # Resumed as a user would after a crash: a new process.
    run(fit_command(cfg, extra=("--ckpt_path", "last")))
    resumed_dir = run_dir / "finetune" / "version_1"
    saved = yaml.safe_load((resumed_dir / "config.yaml").read_text())
    assert saved["ckpt_path"] == str(ckpt_dir / "last.ckpt")  # the saved config names the file used
    assert (ckpt_dir.parent / "config.yaml").read_bytes() == killed_config  # earlier run untouched
    resumed = load(resumed_dir / "checkpoints" / "last.ckpt")

    assert resumed["global_step"] == reference["global_step"] == 4
    assert resumed["epoch"] == reference["epoch"]
    assert resumed["lr_schedulers"][0]["_last_lr"] == reference["lr_schedulers"][0]["_last_lr"]
    assert resumed["lr_schedulers"][0]["last_epoch"] == reference["lr_schedulers"][0]["last_epoch"]
    for name, value in reference["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, atol=1e-6, rtol=0, msg=name)
    ref_adam = reference["optimizer_states"][0]["state"]
    for k, state in resumed["optimizer_states"][0]["state"].items():
        torch.testing.assert_close(state["exp_avg_sq"], ref_adam[k]["exp_avg_sq"], atol=1e-9, rtol=1e-5)
    # The same patches, subject by subject, in the resumed half.
    seen_ref = json.loads((ref_dir / "finetune" / "version_0" / "seen_subjects" / "rank0.json").read_text())
    seen = json.loads((resumed_dir / "seen_subjects" / "rank0.json").read_text())
    assert seen["train_patches"] == 2 and set(seen["train"]) <= set(seen_ref["train"])

    # The W&B run continues: the resumed offline run carries the killed run's id.
    assert resumed["wandb_run_id"]
    runs = offline_runs(run_dir)
    assert len(runs) == 2 and all(r.name.endswith(resumed["wandb_run_id"]) for r in runs)


# -- W&B sweep ---------------------------------------------------------------------------------------------
def _sampled(spec: dict):
    """One value from a W&B parameter spec, as the sweep controller would pick within its range."""
    if "values" in spec:
        return spec["values"][-1]
    if "value" in spec:
        return spec["value"]
    lo, hi = spec["min"], spec["max"]
    if spec.get("distribution", "").startswith("log_uniform"):
        return float((lo * hi) ** 0.5)
    return (lo + hi) / 2


def test_sweep_command_with_agent_arguments_starts_a_run_logged_to_wandb_offline(small_root, tmp_path):
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    sweep = yaml.safe_load(SWEEP.read_text())
    assert sweep["method"] == "bayes"
    assert sweep["metric"] == {"name": "val/dice_mean", "goal": "maximize"}
    assert {"model.lr", "model.weight_decay", "model.backbone.dropout_path_rate", "model.loss"} <= set(sweep["parameters"])
    sampled = {name: _sampled(spec) for name, spec in sweep["parameters"].items()}

    # Exactly as wandb.wandb_agent.Agent._command_run builds the command line, with the tiny
    # config in place of the BraTS one (which needs the real data set and a GPU).
    run_dir = tmp_path / "sweep_run"
    tiny = tiny_config(tmp_path / "tiny.yaml", small_root, run_dir, max_steps=2, validate=True, wandb=True)
    command = [c if c != "experiments/brats.yaml" else f"{DEMO} --config {tiny}".split(" ")
               for c in create_sweep_command(list(sweep["command"]))]
    sweep_vars = create_sweep_command_args({"args": {k: {"value": v} for k, v in sampled.items()}})
    sweep_vars.update(env=["/usr/bin/env"], interpreter=[sys.executable])
    argv: list[str] = []
    for c in command:
        if isinstance(c, list):
            argv += c
        elif c.startswith("${") and c.endswith("}"):
            argv += sweep_vars.get(c[2:-1]) or []
        else:
            argv.append(c)
    assert any(a.startswith("--model.lr=") for a in argv)
    run(argv)

    version = run_dir / "finetune" / "version_0"
    saved = yaml.safe_load((version / "config.yaml").read_text())
    for name, value in sampled.items():
        section, *keys = name.split(".")
        found = saved[section]["init_args"]
        for key in keys:  # model.backbone.dropout_path_rate is nested
            found = found[key]
        assert found == pytest.approx(value) if isinstance(value, float) else found == value, name

    # W&B offline: the run's record file holds the logged metrics and the full config (W&B writes
    # protobuf records; its reader lives in the Go core, so the test looks for the encoded keys and
    # values), and the overlay pictures are among the run's media files.
    (offline,) = offline_runs(run_dir)
    (record,) = offline.glob("run-*.wandb")
    data = record.read_bytes()
    for key in ("train/loss", "val/dice_mean", "val/dice_tc", "val/dice_wt", "val/dice_et", "val/overlays"):
        assert key.encode() in data, key
    assert json.dumps(sampled["model.lr"]).encode() in data  # the sampled value, in the run config
    assert str(small_root).encode() in data  # the data root: the full config, not only the sweep's keys
    assert list((offline / "files" / "media" / "images").rglob("*.png"))
    assert list((version / "overlays").rglob("*.png"))
    rows = (version / "metrics.csv").read_text().splitlines()
    assert "val/dice_mean" in rows[0]


# -- DDP and precision ------------------------------------------------------------------------------------
@pytest.mark.slow  # two processes plus gloo start-up: about a minute on two idle cores
def test_two_process_cpu_ddp_ranks_see_disjoint_subjects(small_root, tmp_path):
    run_dir = tmp_path / "ddp"
    cfg = tiny_config(tmp_path / "ddp.yaml", small_root, run_dir, max_steps=2, validate=True)
    run(fit_command(cfg, extra=("--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.accelerator=cpu")))
    version = run_dir / "finetune" / "version_0"
    ranks = [json.loads((version / "seen_subjects" / f"rank{r}.json").read_text()) for r in (0, 1)]
    split = json.loads((version / "split.json").read_text())
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["train"] and ranks[1]["train"] and not set(ranks[0]["train"]) & set(ranks[1]["train"])
    assert set(ranks[0]["train"]) | set(ranks[1]["train"]) <= set(split["train"])
    assert len(ranks[0]["val"]) == len(ranks[1]["val"]) == 1 and ranks[0]["val"] != ranks[1]["val"]
    assert set(ranks[0]["val"]) | set(ranks[1]["val"]) == set(split["val"])
    rows = (version / "metrics.csv").read_text()
    assert "val/dice_mean" in rows.splitlines()[0]


def test_bf16_mixed_cpu_step_with_quiet_output(small_root, tmp_path):
    cfg = tiny_config(tmp_path / "bf16.yaml", small_root, tmp_path, max_steps=1)
    cli = fit_main(["--config", str(DEMO), "--config", str(cfg), "--trainer.precision=bf16-mixed",
                    "--quiet", "true"])
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.global_step == 1
    assert cli.trainer.progress_bar_callback is None
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    weights = load(tmp_path / "finetune" / "version_0" / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values())
