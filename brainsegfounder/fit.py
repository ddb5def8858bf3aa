"""Train any task from one YAML file: ``python -m brainsegfounder.fit --config experiments/brats.yaml``.

A :class:`~pytorch_lightning.cli.LightningCLI` (jsonargparse): ``--config`` files (several merge
left to right), dotted overrides such as ``--model.lr=3e-4`` or ``--data.fold=2`` (the form a W&B
sweep agent passes), ``--print_config``, and ``--ckpt_path`` to resume (``last`` resumes from the
newest ``last.ckpt`` of the run folder). The resolved config is saved beside every run.

The config's ``model.class_path`` picks the task (segmentation fine-tuning, SSL pretraining,
disease-aware pretraining) and ``data.class_path`` its data module. The network's size and initial
weights are one ``model.init_args.backbone`` block
(:class:`~brainsegfounder.models.backbone.Backbone`; ``--model.backbone.init_from=PATH`` on the
command line). The data module drives the model (LightningCLI ``link_arguments``): the model's
``modalities`` and ``in_channels`` come from ``data.modalities``, and for segmentation its
``regions`` from ``data.regions`` and its sliding-window ``roi_size`` from ``data.patch_size``, so
a config says each fact once (values given for these model arguments are replaced by the data's).

Operations every run gets (docs/operations.md): checkpoints written atomically
(:class:`~brainsegfounder.training.checkpointing.AtomicCheckpointIO`), the W&B run id stored in each
checkpoint so a resume continues the same W&B run, the full config logged to W&B, a rich progress
bar and model summary (``--quiet true`` turns both and Lightning's info lines off, for batch logs),
and ``trainer.use_distributed_sampler`` off by default because the data modules shard their own
loaders (a DistributedSampler over the patch queue's subjects; one over validation subjects), so
``--trainer.devices=2 --trainer.strategy=ddp`` works as it is.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # --help before the imports below (torch, Lightning: seconds idle, a minute on a loaded machine).
    from brainsegfounder.training.fast_help import help_requested, print_help

    if help_requested(sys.argv[1:]):
        sys.exit(print_help(sys.argv[1:]))

import logging
import netrc
import os
import re
import time
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningDataModule, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelSummary, ProgressBar, RichModelSummary
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.plugins.io import CheckpointIO
from rich.console import Console

from brainsegfounder.checkpoints import read_checkpoint
from brainsegfounder.training.callbacks import ConfigToLoggers, RunIdentity
from brainsegfounder.training.checkpointing import (
    AtomicCheckpointIO,
    CheckpointError,
    checkpoint_step,
    find_readable_last_checkpoint,
    wandb_run_id_of,
)
from brainsegfounder.training.console import print_metrics
from brainsegfounder.training.guards import FiniteGuard
from brainsegfounder.training.preflight import (
    _config_mistake,
    _ShortErrorParser,
    check_config,
    remove_refused_start,
    silence_lightning_noise,
    snapshot_run_folders,
)
from brainsegfounder.training.progress import StepProgressBar
from brainsegfounder.utils.allocator import keep_freed_memory, release_free_memory, restore_glibc_defaults
from brainsegfounder.utils.cli import fail
from brainsegfounder.utils.errors import BrainSegFounderError, ConfigError, WeightsError

__all__ = ["BrainSegFounderCLI", "main"]


_console = Console(stderr=True)
#: The run folders' entries before this process's latest start (the CLI object does not exist yet
#: when its constructor raises, so a refused start finds the snapshot here).
_LAST_SNAPSHOT: dict[str, dict] = {}


def _as_list(value: Any) -> list:
    if value is None or isinstance(value, bool):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _class_name(entry: Any) -> str:
    return str(getattr(entry, "class_path", "") or "").rsplit(".", 1)[-1]


def _data_modalities(dm) -> list[str]:
    return list(dm.modalities)


def _data_in_channels(dm) -> int:
    return len(dm.modalities)


def _data_roi_size(dm) -> list[int]:
    return [int(s) for s in dm.patch_size]


def _data_regions(dm):
    """The labelled data's region scheme; ``None`` for unlabelled data (SSL tasks take no regions)."""
    from brainsegfounder.data.datamodule import SegmentationDataModule
    from brainsegfounder.tasks.segmentation import plain_regions

    return plain_regions(dm.scheme) if isinstance(dm, SegmentationDataModule) else None


#: model argument <- what the data module knows (applied when both are built; SSL tasks skip regions/roi_size).
DATA_TO_MODEL = {"modalities": _data_modalities, "in_channels": _data_in_channels, "regions": _data_regions,
                 "roi_size": _data_roi_size}


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class BrainSegFounderCLI(LightningCLI):
    """LightningCLI with ``--ckpt_path`` (a file or ``last``), ``--quiet``, and the run safety defaults."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="checkpoint to resume from, or 'last': the newest last.ckpt (or SLURM "
                                 "hpc_ckpt) of this config's run folders, else the newest readable checkpoint "
                                 "beside it (said which); 'last' with none starts afresh")
        parser.add_argument("--quiet", type=bool, default=False,
                            help="no progress bar, no model summary, no Lightning info lines (batch logs)")
        for target, compute in DATA_TO_MODEL.items():
            parser.link_arguments("data", f"model.init_args.{target}", compute_fn=compute, apply_on="instantiate")

    # -- before anything is built: where to resume from, which W&B run to continue ---------------
    def _run_folders(self) -> tuple[list[Path], Path]:
        trainer = self.config.get("trainer") or {}
        root = Path(trainer.get("default_root_dir") or os.getcwd())
        folders = []
        for entry in _as_list(trainer.get("logger")):
            args = getattr(entry, "init_args", None) or {}
            name = _class_name(entry)
            if name in ("CSVLogger", "TensorBoardLogger"):
                folders.append(Path(args.get("save_dir") or root) / (args.get("name") or ""))
            elif name == "WandbLogger":
                folders.append(Path(args.get("save_dir") or root) / (args.get("project") or "lightning_logs"))
        return (folders or [root / "lightning_logs"]), root

    def before_instantiate_classes(self) -> None:
        folders, root = self._run_folders()
        self.run_folders_before = _LAST_SNAPSHOT["before"] = snapshot_run_folders(folders)
        check_config(self.config)
        ckpt_path = self._resolve_ckpt_path(self.config.get("ckpt_path"), folders, root)
        self.config["ckpt_path"] = ckpt_path  # the saved config names the file actually used
        wandb_entries = [e for e in _as_list((self.config.get("trainer") or {}).get("logger"))
                         if _class_name(e) == "WandbLogger"]
        if not wandb_entries:
            return
        if "WANDB_MODE" not in os.environ and not _wandb_logged_in() and \
                not any(e.init_args.get("offline") for e in wandb_entries):
            os.environ["WANDB_MODE"] = "offline"  # inherited by DDP ranks launched later
            _console.print("[yellow]W&B:[/] no account configured (WANDB_API_KEY or `wandb login`); logging "
                           "offline into the run folder. Upload later with `wandb sync <folder>`.", highlight=False)
        if ckpt_path and not os.environ.get("WANDB_RUN_ID"):
            run_id = wandb_run_id_of(ckpt_path)
            for entry in wandb_entries:
                if run_id and not (entry.init_args.get("id") or entry.init_args.get("version")):
                    entry.init_args["id"] = run_id  # WandbLogger resumes it ("allow")

    @staticmethod
    def _resolve_ckpt_path(ckpt_path: str | None, folders: list[Path], root: Path) -> str | None:
        """``last`` -> the newest readable last/hpc checkpoint (saying which were skipped); a file is
        read by safe_load before anything is built, so a refused or corrupt one is one line, not a traceback."""
        if ckpt_path == "last":
            found, skipped = find_readable_last_checkpoint(folders, hpc_folder=root)
            reasons = "; ".join(f"skipped {path} ({why.rstrip('.')})" for path, why in skipped)
            if found is None and skipped:
                raise CheckpointError(f"--ckpt_path last: no checkpoint of this run can be read: {reasons}. Give "
                                      "--ckpt_path FILE of a good copy, or start a new run without --ckpt_path.")
            if found is None:
                _console.print(f"[yellow]--ckpt_path last:[/] no last.ckpt under "
                               f"{', '.join(map(str, folders))}; starting a new run.", highlight=False, soft_wrap=True)
            elif skipped:  # one line: which file, from which step, and why not the newer ones
                _console.print(f"[yellow]--ckpt_path last:[/] resuming from {found} (step {checkpoint_step(found)}), "
                               f"the newest readable checkpoint of the run; {reasons}", highlight=False,
                               soft_wrap=True)
            return str(found) if found else None
        if ckpt_path and not Path(ckpt_path).is_file():
            raise CheckpointError(f"--ckpt_path {ckpt_path} does not exist. Give an existing .ckpt file, "
                                  "'last' for the newest last.ckpt of this config's run folder, or none.")
        if ckpt_path:
            try:
                read_checkpoint(ckpt_path, what="--ckpt_path")
            except WeightsError as err:
                raise CheckpointError(str(err)) from None
        return ckpt_path

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self._check_linked_values()
        self._check_resumed_shapes()

    def _check_resumed_shapes(self) -> None:
        """A ``--ckpt_path`` of another model (size, regions, inputs) is one line before training, not
        Lightning's page of ``size mismatch for net...`` (compared on a memory map: no weights read)."""
        path = self.config.get("ckpt_path")
        if not path:
            return
        state = read_checkpoint(path, what="--ckpt_path", mmap=True).get("state_dict") or {}
        ours = self.model.state_dict()
        for name, tensor in state.items():
            if name in ours and tuple(ours[name].shape) != tuple(tensor.shape):
                raise CheckpointError(
                    f"--ckpt_path {path} holds another model than this config builds: {name} has shape "
                    f"{tuple(tensor.shape)} there, {tuple(ours[name].shape)} here (another feature_size, preset, "
                    "modalities or regions). Resume with the config it was trained with (config.yaml in its run "
                    "folder), or start a new run from its weights with model.init_args.backbone.init_from.")
        unknown = sorted(set(state) - set(ours))
        if unknown:
            raise CheckpointError(f"--ckpt_path {path} holds weights this model does not have (e.g. {unknown[0]}): "
                                  "another task's checkpoint? Resume with the config it was trained with, or "
                                  "start a new run from its weights with model.init_args.backbone.init_from.")

    def _check_linked_values(self) -> None:
        """A model value the user gave that the data's contradicts is a mistake, not something to drop silently."""
        given = (self.config.get("model") or {}).get("init_args") or {}
        for key in ("in_channels", "modalities"):
            value, linked = given.get(key), self.model.hparams.get(key)
            if value is not None and value != linked:
                raise ConfigError(f"model.{key} is {value} but the data gives {linked} (data.modalities "
                                  f"{list(self.datamodule.modalities)}). Leave model.{key} out: fit takes it "
                                  "from the data module; choose channels with data.modalities.")

    # -- the trainer: safe checkpoint writer, run identity, progress display ------------------------
    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        given = _as_list(config.get("callbacks"))
        callbacks = [*callbacks, RunIdentity()]
        if not any(isinstance(c, FiniteGuard) for c in given):
            callbacks.append(FiniteGuard())  # a NaN loss stops the run before any checkpoint saves it
        if self.config.get("quiet"):
            config["enable_progress_bar"] = False
            config["enable_model_summary"] = False
            for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
                logging.getLogger(name).setLevel(logging.WARNING)
        else:
            if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
                callbacks.append(StepProgressBar())
            if config.get("enable_model_summary") is not False and not any(isinstance(c, ModelSummary) for c in given):
                callbacks.append(RichModelSummary(max_depth=2))
        plugins = _as_list(config.get("plugins"))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            config["plugins"] = [*plugins, AtomicCheckpointIO()]
        trainer = super()._instantiate_trainer(config, callbacks)
        if str(trainer.precision).startswith("bf16") and trainer.strategy.root_device.type == "cpu":
            # oneDNN's bf16 convolutions on reused heap memory gave NaN weights (utils/allocator.py).
            restore_glibc_defaults()
        return trainer


def report_best(cli: LightningCLI) -> dict[str, float]:
    """Score the best checkpoint (if one was monitored) and print its metrics as a table.

    With a held-out test set (``data.test_fold``) the best checkpoint, chosen on the validation
    fold, is scored once on the test fold (``trainer.test``): these ``test/`` figures are the ones
    to report, since no choice was made on them. The validation fold is not scored again: its
    best score is already known (``best_model_score``). Without a test set the best checkpoint is
    validated again, for its full set of ``val/`` metrics, without logging them: the log and its
    curves keep one validation point per validation of the run.
    """
    trainer = cli.trainer
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback else ""
    if not best or trainer.interrupted or not getattr(callback, "monitor", None):
        return {}
    if getattr(cli.datamodule, "test_cases", None):
        results = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if callback.best_model_score is not None:
            metrics[str(callback.monitor)] = float(callback.best_model_score)
        title, prefix = f"held-out test Dice ({len(cli.datamodule.test_cases)} test cases)", "test/"
    else:
        # Not logged: the best checkpoint's val/ figures are already in the log at their own step, and
        # logging them again at the last step drew a validation point there that the last model never made.
        loggers, trainer.loggers = trainer.loggers, []
        try:
            results = trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)
        finally:
            trainer.loggers = loggers
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        title, prefix = "validation metrics of the best checkpoint", "val/"
    if trainer.is_global_zero:
        print_metrics(metrics, title=title, prefix=prefix, source=best)
        if choice := getattr(cli.model, "postprocess_choice", None):  # read back with the best checkpoint
            from brainsegfounder.evaluation.postprocessing import describe_choice

            _console.print(describe_choice(choice), soft_wrap=True, markup=False)
    return metrics


def _finish_wandb() -> None:
    # One main() is one run: close the W&B run so its files are complete and a later main() in the
    # same process (a notebook, the tests) starts its own run instead of appending to this one.
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def nest_backbone_flags(args: list[str]) -> list[str]:
    """Old flat flags (``--model.init_from=X``) in today's form (``--model.backbone.init_from=X``).

    >>> nest_backbone_flags(["--model.init_args.init_from=a.ckpt", "--model.lr=1", "--model.preset", "tiny"])
    ['--model.init_args.backbone.init_from=a.ckpt', '--model.lr=1', '--model.backbone.preset', 'tiny']
    """
    from dataclasses import fields

    from brainsegfounder.models.backbone import Backbone

    pattern = re.compile(r"^--model\.(init_args\.)?(" + "|".join(f.name for f in fields(Backbone)) + r")(=|$)")
    return [pattern.sub(lambda m: f"--model.{m[1] or ''}backbone.{m[2]}{m[3]}", a) for a in args]


#: LightningCLI's own help (``--help full``) titled for this project, with the usage a user types.
FULL_HELP = {"prog": "python -m brainsegfounder.fit",
             "description": "BrainSegFounder training (LightningCLI): every option of the trainer, model and data."}


def answer_help(args: list[str] | None) -> list[str] | None:
    """``--help``: the quick help of :mod:`brainsegfounder.training.fast_help`, then exit; ``--help full``: LightningCLI's.

    Returns ``args`` with ``--help full`` turned into LightningCLI's ``--help`` (``sys.argv`` is
    rewritten when ``args`` is ``None``, since LightningCLI reads it itself).
    """
    from brainsegfounder.training.fast_help import help_requested, print_help

    given = sys.argv[1:] if args is None else list(args)
    if help_requested(given):
        sys.exit(print_help(given))
    full = [a for i, a in enumerate(given) if not (a == "full" and i and given[i - 1] in ("-h", "--help"))]
    if full == given:
        return args
    if args is None:
        sys.argv[1:] = full
        return None
    return full


def main(args: list[str] | None = None) -> BrainSegFounderCLI:
    """Parse ``args`` (default: ``sys.argv``), build trainer, model and data, and fit."""
    console = _console
    args = answer_help(args)
    given = sys.argv[1:] if args is None else list(args)
    silence_lightning_noise()
    keep_freed_memory()
    release_free_memory()  # what an earlier stage in this process (the demo) left
    if nest_backbone_flags(given) != given:
        console.print("[yellow]note:[/] the backbone settings moved under model.backbone (e.g. "
                      "--model.backbone.init_from); flat flags are still read.", highlight=False, soft_wrap=True)
        if args is None:
            sys.argv[1:] = nest_backbone_flags(given)  # LightningCLI reads sys.argv itself
        else:
            args = nest_backbone_flags(given)
    started, cli = time.time(), None
    _LAST_SNAPSHOT.clear()
    try:
        try:
            cli = BrainSegFounderCLI(
                LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                run=False, args=args, save_config_callback=ConfigToLoggers, save_config_kwargs={"overwrite": False},
                parser_kwargs={"default_env": False, **FULL_HELP}, parser_class=_ShortErrorParser,
                # The data modules shard their own loaders (the patch queue must not be wrapped).
                trainer_defaults={"use_distributed_sampler": False},
            )
        except (ValueError, TypeError) as err:  # jsonargparse wraps the classes' own errors
            reason = _config_mistake(err)
            if reason is None:
                raise
            raise ConfigError(reason) from None
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
        cli.best_metrics = report_best(cli)
        release_free_memory()
        _finish_wandb()
    except BrainSegFounderError as err:
        _finish_wandb()
        before = getattr(cli, "run_folders_before", None) if cli is not None else _LAST_SNAPSHOT.get("before")
        trained = cli is not None and cli.trainer is not None and cli.trainer.global_step > 0
        if before and not trained:
            remove_refused_start(before, started)
        fail(err)
    return cli


if __name__ == "__main__":
    main()
