"""The CPU demo: ``python -m brainsegfounder.demo`` (or ``make demo``).

The whole BrainSegFounder chain on synthetic data, tiny model: Stage 1 SSL on healthy UK
Biobank-style T1 + FLAIR (``experiments/demo_stage1.yaml``) -> Stage 2 SSL on the BraTS images,
labels unused, 2 -> 4 channels adapted (``demo_stage2.yaml``) -> fine-tuning from Stage 2
(``demo.yaml``) -> held-out test Dice per region. Each stage's ``last.ckpt`` feeds the next.

Of the 18 synthetic BraTS subjects (a seeded 6-fold split, saved as ``split.json`` in the run
folder), fold 0 (3 subjects) is the validation set that chooses the best fine-tuning checkpoint,
fold 1 (3 subjects) the test set on which that checkpoint is scored once ("held-out test Dice"),
and the other 12 train. Stage 2 never sees the validation or test images either.
Its last line says what pretraining bought: the test Dice against the same fine-tuning from scratch,
recorded in ``experiments/demo_scratch.json`` (``--scratch`` runs it here instead; see
:mod:`brainsegfounder.training.demo_scratch`).
``--stages finetune`` runs the fine-tuning alone (from scratch); other ``--a.b=c`` arguments
override the fine-tuning config (e.g. ``--trainer.max_steps=20``); ``--help`` lists the options.
Synthetic data sets on real MNI152 anatomy are generated when missing. Every run writes new version folders under
``runs/demo``; nothing is overwritten. The demo ends with a list of what it wrote where and the
``predict``, ``evaluate`` and ``report`` commands to run on its own test cases.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from brainsegfounder.training.console import print_outputs
from brainsegfounder.training.demo_scratch import comparison_line, load_reference, record_reference

# No torch/Lightning import at module level: `--help` answers at once; run_demo imports them.

__all__ = ["run_demo", "main", "next_steps"]

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
CONFIG = EXPERIMENTS / "demo.yaml"
STAGE1 = EXPERIMENTS / "demo_stage1.yaml"
STAGE2 = EXPERIMENTS / "demo_stage2.yaml"


def _last_checkpoint(cli) -> str:
    return cli.trainer.checkpoint_callback.last_model_path


def run_demo(data: str | Path = "data/synthetic_brats2021", subjects: int = 18,
             config: str | Path = CONFIG, extra_args: list[str] | None = None,
             ukb_data: str | Path = "data/synthetic_ukb", ukb_subjects: int = 8,
             stages: str = "all", run_dir: str | Path | None = None, scratch: bool = False,
             record_scratch: bool = False) -> dict[str, float]:
    """Generate data if needed, run the stages, and return the fine-tuned model's held-out test metrics.

    Args:
        stages: ``all`` (Stage 1 -> Stage 2 -> fine-tune) or ``finetune`` (from scratch).
        run_dir: root of the run folders (default: each config's ``runs/demo``).
        extra_args: extra dotted overrides for the fine-tuning (e.g. ``--trainer.max_steps=20``).
        scratch: after ``all``, run the same fine-tuning from scratch too, for the last line's comparison.
        record_scratch: with ``finetune`` and no overrides, record its test Dice as the demo's scratch figure.
    """
    if record_scratch and (stages != "finetune" or extra_args):
        raise ValueError("--record_scratch records the plain scratch run: use it with --stages finetune "
                         "and no fine-tuning overrides")
    from brainsegfounder.data import synthetic
    from brainsegfounder.fit import main as fit_main
    from brainsegfounder.utils.allocator import keep_freed_memory

    keep_freed_memory()
    console = Console()
    start = time.perf_counter()
    data, ukb_data = Path(data), Path(ukb_data)
    if not any(data.glob("BraTS2021_*")):
        console.print(f"[bold]generating[/] {subjects} synthetic BraTS 2021 subjects in {data}")
        synthetic.generate("brats2021", data, subjects=subjects, seed=0)
    where = ([f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}"]
             if run_dir else [])
    finetune_args = list(extra_args or [])
    runs = []
    if stages == "all":
        if not any(ukb_data.glob("*_20252_2_0")):
            console.print(f"[bold]generating[/] {ukb_subjects} synthetic UK Biobank subjects in {ukb_data}")
            synthetic.generate("ukb", ukb_data, subjects=ukb_subjects, seed=1)
        console.rule("Stage 1: SSL on healthy T1 + FLAIR")
        stage1 = fit_main(["--config", str(STAGE1), f"--data.init_args.root={ukb_data}", *where])
        console.rule("Stage 2: disease-aware SSL on the BraTS images (labels unused)")
        stage2 = fit_main(["--config", str(STAGE2), f"--data.init_args.root={data}",
                           f"--model.init_args.backbone.init_from={_last_checkpoint(stage1)}", *where])
        finetune_args = [f"--model.init_args.backbone.init_from={_last_checkpoint(stage2)}", *finetune_args]
        runs = [("Stage 1 run", stage1.trainer.log_dir), ("Stage 2 run", stage2.trainer.log_dir)]
        console.rule("Fine-tuning from Stage 2")
    elif stages != "finetune":
        raise ValueError(f"stages must be 'all' or 'finetune', got {stages!r}")
    cli = fit_main(["--config", str(config), f"--data.init_args.root={data}", *where, *finetune_args])
    metrics = getattr(cli, "best_metrics", {})
    line = None
    if stages == "all":
        line = _compare_with_scratch(console, metrics, config, data, where, extra_args, scratch, fit_main)
    elif record_scratch:
        path = record_reference(metrics, config, cli.trainer.max_steps, time.perf_counter() - start)
        console.print(f"recorded the scratch figure in {path}")
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    written, commands = next_steps(cli, data, ukb_data if stages == "all" else None, runs)
    print_outputs(console, written, commands, title="the demo wrote")
    if line:
        console.print(line, markup=False, highlight=False)
    return metrics


def _compare_with_scratch(console: Console, metrics: dict, config: Path, data: Path, where: list[str],
                          extra_args: list[str] | None, scratch: bool, fit_main) -> str | None:
    """The last line: fine-tuned vs scratch test Dice (scratch run here with ``scratch``, else recorded)."""
    if "test/dice_mean" not in metrics:
        return None
    if scratch:
        console.rule("The same fine-tuning from scratch (for the comparison)")
        cli = fit_main(["--config", str(config), f"--data.init_args.root={data}", *where, *(extra_args or [])])
        reference = {"metrics": cli.best_metrics, "steps": cli.trainer.max_steps,
                     "command": "python -m brainsegfounder.demo --scratch"}
        return comparison_line(metrics, reference, live=True)
    if extra_args:
        return comparison_line(metrics, None, why=f"the recorded scratch run has no {' '.join(extra_args)}")
    reference, why = load_reference(config)
    return comparison_line(metrics, reference, why=why)


def next_steps(cli, data: Path, ukb_data: Path | None, runs: list[tuple[str, str]]
               ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(what, path)`` of what the fine-tuning run wrote, and the commands to try on its test cases."""
    callback = cli.trainer.checkpoint_callback
    run_dir = Path(cli.trainer.log_dir)
    best = callback.best_model_path or callback.last_model_path
    written = [("BraTS data", str(data))] + ([("UK Biobank data", str(ukb_data))] if ukb_data else [])
    written += [*runs, ("fine-tuning run", str(run_dir)), ("split (train/val/test)", str(run_dir / "split.json")),
                ("best checkpoint", best), ("last checkpoint", callback.last_model_path)]
    held_out = cli.datamodule.test_cases or cli.datamodule.val_cases
    cases = [str(c.folder or Path(next(iter(c.images.values()))).parent) for c in held_out]
    # evaluate counts every reference under --ref; --subjects limits it to the cases predicted.
    subjects = ",".join(c.subject_id for c in held_out)
    predictions = run_dir / "test_predictions"
    commands = [
        ("segment the test cases with the best checkpoint",
         f"python -m brainsegfounder.predict --ckpt {best} --input {' '.join(cases)} --output {predictions}"),
        ("score them against their labels",
         f"python -m brainsegfounder.evaluate --pred {predictions} --ref {data} --task brats2021 "
         f"--subjects '[{subjects}]' --out {predictions / 'metrics.csv'}"),
        ("an HTML report of them",
         f"python -m brainsegfounder.report --predictions {predictions} --inputs {data} "
         f"--metrics {predictions / 'metrics.csv'}"),
    ]
    return [(what, str(path)) for what, path in written if path], commands


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Command line: ``python -m brainsegfounder.demo [--stages all|finetune] [--run_dir DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m brainsegfounder.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", choices=["all", "finetune"], default="all",
                        help="all: Stage 1 -> Stage 2 -> fine-tune (default); finetune: fine-tuning alone, from scratch")
    parser.add_argument("--data", default="data/synthetic_brats2021", help="BraTS 2021-layout folder (generated if empty)")
    parser.add_argument("--ukb_data", default="data/synthetic_ukb", help="UK Biobank-layout folder (generated if empty)")
    parser.add_argument("--run_dir", default=None, help="root of the run folders (default: runs/demo)")
    parser.add_argument("--scratch", action="store_true",
                        help="also fine-tune from scratch here (~6 min) for the last line's comparison "
                             "(default: the figure recorded in experiments/demo_scratch.json)")
    parser.add_argument("--record_scratch", action="store_true",
                        help="with --stages finetune: record its test Dice in experiments/demo_scratch.json")
    args, extra = parser.parse_known_args(argv)
    bad = [a for a in extra if not a.startswith("--")]
    if bad:
        parser.error(f"unexpected arguments {bad}; fine-tuning overrides look like --trainer.max_steps=20")
    if args.record_scratch and (args.stages != "finetune" or extra):
        parser.error("--record_scratch goes with --stages finetune and no fine-tuning overrides")
    return run_demo(data=args.data, ukb_data=args.ukb_data, stages=args.stages, run_dir=args.run_dir,
                    extra_args=extra, scratch=args.scratch, record_scratch=args.record_scratch)


if __name__ == "__main__":
    main()
