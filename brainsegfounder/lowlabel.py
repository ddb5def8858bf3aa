"""Low-label fine-tuning: from scratch vs from pretrained weights, over fractions of the training fold.

::

    python -m brainsegfounder.lowlabel --config experiments/lowlabel_brats.yaml \\
        --fractions 0.1 0.25 0.5 1.0 --init_from weights/model_weights_BRATS-pretrain.pt \\
        --out runs/lowlabel --data.init_args.root=/data/BraTS2021_Training_Data

Runs :func:`brainsegfounder.fit.main` once per (setting, fraction), each in its own run folder
``<out>/<setting>_<fraction>/version_N``, with ``--data.init_args.train_fraction=<fraction>``, and
for the ``pretrained`` setting ``--model.init_args.backbone.init_from=<init_from>``. Every other flag
(``--data.init_args.fold=2``, ``--trainer.max_epochs=50`` ...) is passed to every run unchanged.
The training subsets are seeded by ``data.split_seed`` and nested (the 10% subset lies inside
the 25% one), so the curve compares like with like; the validation fold is the same for all.

Checkpoints are chosen on the validation fold; with ``data.test_fold`` (as in
``experiments/lowlabel_brats.yaml``) the chosen checkpoint is then scored once on that test fold,
which no run trains on or chooses by, and the table and plot report those ``test/`` figures.

Writes ``<out>/lowlabel.csv`` and ``<out>/lowlabel.md`` (one row per run: setting, fraction,
number of training subjects, the best checkpoint's ``val/`` score and ``test/`` metrics, the run folder),
rewritten after every run so that a long sweep leaves partial results, and ``<out>/lowlabel.png``
(the chosen metric against the fraction, one line per setting). An existing table in ``<out>``
is never replaced: pick another ``--out``.

Meant for GPU machines or long CPU runs, not CI; the config must name a logger with ``save_dir``
and ``name`` (CSVLogger or WandbLogger), which the script points at each run folder.

>>> from brainsegfounder.lowlabel import run_lowlabel  # doctest: +SKIP
>>> rows = run_lowlabel("experiments/lowlabel_brats.yaml", [0.1, 1.0], out="runs/ll")  # doctest: +SKIP
>>> [(r["setting"], r["fraction"], r["train_subjects"]) for r in rows]  # doctest: +SKIP
[('scratch', 0.1, 100), ('scratch', 1.0, 1000)]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from brainsegfounder.errors import BrainSegFounderError, DataError, WeightsError

__all__ = ["run_lowlabel", "write_table", "plot_curve", "main"]

SETTINGS = ("scratch", "pretrained")
TABLE_NAMES = ("lowlabel.csv", "lowlabel.md", "lowlabel.png")


def _check(config: str | Path, fractions: Sequence[float], settings: Sequence[str], init_from: str | None,
           out: Path) -> None:
    """Every mistake that would otherwise surface after hours of training, raised now."""
    if not Path(config).is_file():
        raise DataError(f"config {config} does not exist; pass --config experiments/lowlabel_brats.yaml or your own.")
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise DataError(f"--fractions must be numbers in (0, 1], got {list(fractions)}.")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise DataError(f"unknown setting(s) {unknown}; choose from {SETTINGS}.")
    if "pretrained" in settings:
        if not init_from:
            raise WeightsError("the 'pretrained' setting needs --init_from PATH (Stage-2 or released weights); "
                               "or run --settings scratch.")
        if not Path(init_from).expanduser().is_file():
            raise WeightsError(f"--init_from {init_from} does not exist; point it at a weights file "
                               "(e.g. model_weights_BRATS-pretrain.pt or an SSL run's checkpoint).")
    existing = [out / n for n in TABLE_NAMES if (out / n).exists()]
    if existing:
        raise DataError(f"{existing[0]} exists already; results are never overwritten. Choose another --out "
                        "or move the old results away.")


def _run_name(setting: str, fraction: float) -> str:
    return f"{setting}_{fraction:g}"


def run_lowlabel(
    config: str | Path,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    init_from: str | None = None,
    out: str | Path = "runs/lowlabel",
    metric: str | None = None,
    settings: Sequence[str] | None = None,
    fit_args: Sequence[str] = (),
) -> list[dict]:
    """Fine-tune once per (setting, fraction) and collect the best checkpoint's validation metrics.

    Args:
        config: a fit config (``experiments/lowlabel_brats.yaml``).
        fractions: fractions of the training fold (each in (0, 1]).
        init_from: pretrained weights for the ``pretrained`` setting (passed as
            ``--model.init_args.backbone.init_from``).
        out: folder for the run folders and the table.
        metric: the metric plotted (any logged ``val/`` or ``test/`` metric); default
            ``test/dice_mean`` when the config holds out a test fold (``data.test_fold``), else
            ``val/dice_mean``.
        settings: ``scratch`` and/or ``pretrained``; default: both when ``init_from`` is given,
            else ``scratch``.
        fit_args: extra flags for every fit run.

    Returns:
        One dict per run: ``setting``, ``fraction``, ``train_subjects``, the ``val/`` (and ``test/``) metrics, ``run_dir``.
    """
    from brainsegfounder.fit import main as fit_main

    out = Path(out)
    settings = list(settings or (["scratch", "pretrained"] if init_from else ["scratch"]))
    fractions = sorted(float(f) for f in fractions)
    _check(config, fractions, settings, init_from, out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    rows: list[dict] = []
    for setting in settings:
        for fraction in fractions:
            name = _run_name(setting, fraction)
            console.print(f"[bold]low-label[/] {setting}, {fraction:g} of the training fold -> {out / name}")
            args = ["--config", str(config), *fit_args,
                    f"--data.init_args.train_fraction={fraction}",
                    f"--trainer.default_root_dir={out / name}",
                    f"--trainer.logger.init_args.save_dir={out}",
                    f"--trainer.logger.init_args.name={name}"]
            if setting == "pretrained":
                args.append(f"--model.init_args.backbone.init_from={Path(init_from).expanduser()}")
            cli = fit_main(args)
            found = cli.best_metrics or {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
            rows.append({"setting": setting, "fraction": fraction,
                         "train_subjects": len(cli.datamodule.train_cases),
                         **{k: float(v) for k, v in sorted(found.items()) if k.startswith(("val/", "test/"))},
                         "run_dir": str(cli.trainer.log_dir)})
            write_table(rows, out)
    metric = metric or ("test/dice_mean" if any("test/dice_mean" in r for r in rows) else "val/dice_mean")
    plot_curve(rows, out / "lowlabel.png", metric)
    _print(rows, metric, console)
    return rows


def write_table(rows: list[dict], out: str | Path) -> tuple[Path, Path]:
    """Write ``lowlabel.csv`` and ``lowlabel.md`` in ``out`` (one row per run); returns both paths."""
    out = Path(out)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    csv_path, md_path = out / "lowlabel.csv", out / "lowlabel.md"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) and not isinstance(value, bool) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def plot_curve(rows: list[dict], path: str | Path, metric: str = "val/dice_mean") -> Path:
    """``metric`` against the fraction of labelled training subjects, one line per setting (PNG)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed on servers

    figure = Figure(figsize=(5, 3.5), layout="constrained")
    axes = figure.subplots()
    for setting in dict.fromkeys(r["setting"] for r in rows):
        points = sorted((r["fraction"], r[metric]) for r in rows if r["setting"] == setting and metric in r)
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", label=setting)
    fractions = sorted({r["fraction"] for r in rows})
    axes.set_xscale("log")
    axes.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    axes.minorticks_off()
    axes.set_xlabel("labelled training subjects (fraction of the training fold)")
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)
    return Path(path)


def _print(rows: list[dict], metric: str, console: Console) -> None:
    table = Table(title=f"low-label fine-tuning: {metric}")
    for column in ("setting", "fraction", "subjects", metric):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in rows:
        value = row.get(metric)
        table.add_row(row["setting"], f"{row['fraction']:g}", str(row["train_subjects"]),
                      "-" if value is None else f"{value:.4f}")
    console.print(table)


def main(argv: list[str] | None = None) -> list[dict]:
    """Command line; flags this parser does not know are passed to every fit run."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m brainsegfounder.lowlabel",
        description="Fine-tune from scratch and from pretrained weights on nested fractions of the training "
                    "fold; write a table and a plot. Other --flags go to every fit run.")
    parser.add_argument("--config", required=True, help="fit config, e.g. experiments/lowlabel_brats.yaml")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--init_from", default=None, help="pretrained weights for the 'pretrained' setting")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=None,
                        help="default: scratch and pretrained with --init_from, else scratch")
    parser.add_argument("--out", default="runs/lowlabel", help="folder for the runs and the table")
    parser.add_argument("--metric", default=None,
                        help="the metric plotted (default: test/dice_mean with a test fold, else val/dice_mean)")
    args, fit_args = parser.parse_known_args(argv)
    try:
        return run_lowlabel(args.config, args.fractions, args.init_from, args.out, args.metric,
                            args.settings, fit_args)
    except BrainSegFounderError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
