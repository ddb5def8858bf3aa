"""Train any task from one YAML file: ``python -m brainsegfounder.fit --config experiments/brats.yaml``.

A :class:`~pytorch_lightning.cli.LightningCLI` (jsonargparse): ``--config`` files (several merge
left to right), dotted overrides such as ``--model.lr=3e-4`` or ``--data.fold=2`` (the form a W&B
sweep agent passes), ``--print_config``, and ``--ckpt_path`` to resume (``last`` resumes from the
newest ``last.ckpt`` of the run folder). The resolved config is saved beside every run.

The config's ``model.class_path`` picks the task (segmentation fine-tuning, SSL pretraining,
disease-aware pretraining) and ``data.class_path`` its data module.
"""

from __future__ import annotations

import sys

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningCLI
from rich.console import Console

from brainsegfounder.errors import BrainSegFounderError
from brainsegfounder.reporting import print_metrics

__all__ = ["BrainSegFounderCLI", "main"]


class BrainSegFounderCLI(LightningCLI):
    """LightningCLI with a ``--ckpt_path`` and no subcommand (the module name says ``fit``)."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="checkpoint to resume from, or 'last' for the run's newest last.ckpt")


def report_best(cli: LightningCLI) -> dict[str, float]:
    """Validate the best checkpoint (if one was monitored) and print its metrics as a table."""
    trainer = cli.trainer
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
    if not best or trainer.interrupted:
        return {}
    results = trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if trainer.is_global_zero:
        print_metrics(metrics, title=f"held-out metrics of {best}", prefix="val/")
    return metrics


def main(args: list[str] | None = None) -> BrainSegFounderCLI:
    """Parse ``args`` (default: ``sys.argv``), build trainer, model and data, and fit."""
    console = Console(stderr=True)
    try:
        cli = BrainSegFounderCLI(
            LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
            run=False, args=args, save_config_kwargs={"overwrite": False},
            parser_kwargs={"default_env": False},
        )
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
        cli.best_metrics = report_best(cli)
    except BrainSegFounderError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)
    return cli


if __name__ == "__main__":
    main()
