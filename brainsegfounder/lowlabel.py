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

The study mode compares several pretrained weights at numbers of labelled subjects over seeds
(docs/results.md)::

    python -m brainsegfounder.lowlabel --config experiments/lowlabel_synthetic.yaml --out runs/study/lowlabel \\
        --counts 1 2 4 8 --seeds 0 1 2 --weights stage1=S1.ckpt stage2=S2.ckpt \\
        --setting_args "stage1:--model.init_args.backbone.modality_map={flair: flair, t1ce: t1, t1: t1, t2: flair}"

one run per (seed, setting, count) in ``<out>/<setting>_<count>_s<seed>``, and
``lowlabel_summary.csv``/``.md`` (mean, standard deviation, runs per setting and count).
``--collect DIR [DIR ...]`` merges sweeps run apart into ``--out``.

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

from brainsegfounder.utils.errors import BrainSegFounderError, ConfigError, DataError, WeightsError

__all__ = ["run_lowlabel", "summarise", "collect", "write_table", "plot_curve", "main"]

SETTINGS = ("scratch", "pretrained")
TABLE_NAMES = ("lowlabel.csv", "lowlabel.md", "lowlabel.png", "lowlabel_summary.csv")


def _check(config: str | Path, fractions: Sequence[float], settings: Sequence[str], weights: dict[str, str],
           out: Path, counts: Sequence[int] = ()) -> None:
    """Every mistake that would otherwise surface after hours of training, raised now."""
    if not Path(config).is_file():
        raise DataError(f"config {config} does not exist; pass --config experiments/lowlabel_brats.yaml or your own.")
    if counts:
        if any(int(c) < 1 for c in counts):
            raise DataError(f"--counts must be numbers of subjects >= 1, got {list(counts)}.")
    elif not fractions or any(not 0 < f <= 1 for f in fractions):
        raise DataError(f"--fractions must be numbers in (0, 1], got {list(fractions)}.")
    unknown = [s for s in settings if s != "scratch" and s not in weights]
    if unknown:
        raise WeightsError(f"setting(s) {unknown} have no weights: the 'pretrained' setting needs --init_from PATH, "
                           "any other named setting --weights NAME=PATH; 'scratch' needs none.")
    for name, path in weights.items():
        if name in settings and not Path(path).expanduser().is_file():
            raise WeightsError(f"weights of setting {name!r}: {path} does not exist; point it at a weights file "
                               "(e.g. model_weights_BRATS-pretrain.pt or an SSL run's checkpoint).")
    existing = [out / n for n in TABLE_NAMES if (out / n).exists()]
    if existing:
        raise DataError(f"{existing[0]} exists already; results are never overwritten. Choose another --out "
                        "or move the old results away.")


def _run_name(setting: str, size: float, seed: int | None = None) -> str:
    return f"{setting}_{size:g}" + ("" if seed is None else f"_s{seed}")


def run_lowlabel(
    config: str | Path,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    init_from: str | None = None,
    out: str | Path = "runs/lowlabel",
    metric: str | None = None,
    settings: Sequence[str] | None = None,
    fit_args: Sequence[str] = (),
    counts: Sequence[int] = (),
    seeds: Sequence[int] | None = None,
    weights: dict[str, str] | None = None,
    setting_args: dict[str, Sequence[str]] | None = None,
) -> list[dict]:
    """Fine-tune once per (setting, training-set size, seed) and collect the best checkpoint's validation metrics.

    Args:
        config: a fit config (``experiments/lowlabel_brats.yaml``).
        fractions: fractions of the training fold (each in (0, 1]); ignored when ``counts`` is given.
        init_from: pretrained weights for the ``pretrained`` setting (passed as
            ``--model.init_args.backbone.init_from``).
        out: folder for the run folders and the table.
        metric: the metric plotted (any logged ``val/`` or ``test/`` metric); default
            ``test/dice_mean`` when the config holds out a test fold (``data.test_fold``), else
            ``val/dice_mean``.
        settings: ``scratch`` and named weights; default: ``scratch`` and every weight given.
        fit_args: extra flags for every fit run.
        counts: numbers of labelled training subjects (``data.init_args.train_count``), instead
            of fractions; nested for one seed.
        seeds: repeat every (setting, size) with these seeds; each sets ``seed_everything`` and
            ``data.init_args.split_seed`` (which subjects are labelled; keep the folds fixed with a
            fold or split file so the held-out fold stays the same). Default: one run, the config's seed.
        weights: setting name -> weights file (``{"stage1": ..., "stage2": ...}``); ``init_from``
            is the setting ``pretrained``.
        setting_args: setting name -> extra fit flags for that setting only (e.g. a Stage-1
            ``--model.init_args.backbone.modality_map``).

    Returns:
        One dict per run: ``setting``, ``fraction`` or ``count``, ``seed``, ``train_subjects``, the
        ``val/`` (and ``test/``) metrics, ``run_dir``. With ``seeds``, also ``lowlabel_summary.csv``/``.md``: mean,
        standard deviation and number of runs per (setting, size) and metric.
    """
    from brainsegfounder.fit import main as fit_main

    out = Path(out)
    weights = dict(weights or {})
    if init_from:
        weights["pretrained"] = str(init_from)
    settings = list(settings or ["scratch", *weights])
    counts = sorted(int(c) for c in counts)
    fractions = sorted(float(f) for f in fractions)
    _check(config, fractions, settings, weights, out, counts)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    size_key, sizes = ("count", counts) if counts else ("fraction", fractions)
    rows: list[dict] = []
    for seed in (seeds if seeds else [None]):
        for setting in settings:
            for size in sizes:
                name = _run_name(setting, size, seed)
                console.print(f"[bold]low-label[/] {setting}, {size:g} {'subjects' if counts else 'of the fold'}"
                              f"{'' if seed is None else f', seed {seed}'} -> {out / name}")
                args = ["--config", str(config), *fit_args,
                        f"--data.init_args.train_{size_key}={size}",
                        f"--trainer.default_root_dir={out / name}",
                        f"--trainer.logger.init_args.save_dir={out}",
                        f"--trainer.logger.init_args.name={name}"]
                if seed is not None:
                    args += [f"--seed_everything={seed}", f"--data.init_args.split_seed={seed}"]
                if setting in weights:
                    args.append(f"--model.init_args.backbone.init_from={Path(weights[setting]).expanduser()}")
                args += list((setting_args or {}).get(setting, ()))
                cli = fit_main(args)
                found = cli.best_metrics or {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
                rows.append({"setting": setting, size_key: size,
                             **({} if seed is None else {"seed": seed}),
                             "train_subjects": len(cli.datamodule.train_cases),
                             **{k: float(v) for k, v in sorted(found.items()) if k.startswith(("val/", "test/"))},
                             "run_dir": str(cli.trainer.log_dir)})
                write_table(rows, out)
                if seeds:
                    write_table(summarise(rows), out, stem="lowlabel_summary")
    metric = metric or ("test/dice_mean" if any("test/dice_mean" in r for r in rows) else "val/dice_mean")
    plot_curve(rows, out / "lowlabel.png", metric)
    _print(rows, metric, console)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean, sample standard deviation and count of every ``val/`` metric per (setting, training-set size).

    >>> rows = [{"setting": "scratch", "count": 1, "train_subjects": 1, "val/dice_mean": v} for v in (0.5, 0.7)]
    >>> summarise(rows)[0]["val/dice_mean_mean"], round(summarise(rows)[0]["val/dice_mean_std"], 4)
    (0.6, 0.1414)
    """
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["setting"], row["train_subjects"]), []).append(row)
    metrics = list(dict.fromkeys(k for row in rows for k in row if k.startswith(("val/", "test/"))))
    summary = []
    for (setting, subjects), members in groups.items():
        entry: dict = {"setting": setting, "train_subjects": subjects, "runs": len(members)}
        for m in metrics:
            values = np.array([r[m] for r in members if m in r], dtype=float)
            if len(values):
                entry[f"{m}_mean"] = float(values.mean())
                entry[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def collect(folders: Sequence[str | Path], out: str | Path, metric: str = "val/dice_mean") -> list[dict]:
    """Merge the ``lowlabel.csv`` of several sweeps (settings run apart, SLURM array tasks) into ``out``.

    Writes ``lowlabel.csv``/``.md`` (every run), ``lowlabel_summary.csv``/``.md`` (mean and spread
    per setting and size) and ``lowlabel.png``; returns the rows.

    >>> collect(["runs/study/lowlabel_scratch", "runs/study/lowlabel_stage2"], "runs/study/all")  # doctest: +SKIP
    """
    rows: list[dict] = []
    for folder in folders:
        path = Path(folder) / "lowlabel.csv"
        if not path.is_file():
            raise DataError(f"{path} does not exist; pass folders written by python -m brainsegfounder.lowlabel.")
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({k: _number(v) for k, v in row.items() if v != ""})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(rows, out)
    write_table(summarise(rows), out, stem="lowlabel_summary")
    metric = metric or ("test/dice_mean" if any("test/dice_mean" in r for r in rows) else "val/dice_mean")
    plot_curve(rows, out / "lowlabel.png", metric)
    return rows


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def write_table(rows: list[dict], out: str | Path, stem: str = "lowlabel") -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` in ``out`` (one row per entry); returns both paths."""
    out = Path(out)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
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


def plot_curve(rows: list[dict], path: str | Path, metric: str | None = "val/dice_mean") -> Path:
    """``metric`` against the number of labelled training subjects, one line per setting (PNG).

    Several seeds per point: the line is their mean and the band +- one standard deviation, each
    run a dot. With several regions (``val/dice_<region>``), one panel per region follows ``metric``.
    """
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed on servers

    metric = metric or ("test/dice_mean" if any("test/dice_mean" in r for r in rows) else "val/dice_mean")
    stage = metric.split("/", 1)[0]
    regions = sorted({k for r in rows for k in r if k.startswith(f"{stage}/dice_") and k != metric})
    panels = [metric, *regions] if metric.endswith("/dice_mean") and any("seed" in r for r in rows) else [metric]
    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes_list = np.atleast_1d(figure.subplots(1, len(panels)))
    for axes, key in zip(axes_list, panels, strict=True):
        for setting in dict.fromkeys(r["setting"] for r in rows):
            runs = [(r["train_subjects"], r[key]) for r in rows if r["setting"] == setting and key in r]
            if not runs:
                continue
            sizes = sorted({n for n, _ in runs})
            values = [np.array([v for n, v in runs if n == size]) for size in sizes]
            mean = np.array([v.mean() for v in values])
            spread = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in values])
            line, = axes.plot(sizes, mean, marker="o", label=setting)
            axes.fill_between(sizes, mean - spread, mean + spread, color=line.get_color(), alpha=0.15)
            axes.scatter(*zip(*runs, strict=True), s=8, color=line.get_color(), alpha=0.5)
        sizes = sorted({r["train_subjects"] for r in rows})
        axes.set_xscale("log")
        axes.set_xticks(sizes, [str(s) for s in sizes])
        axes.minorticks_off()
        axes.set_xlabel("labelled training subjects")
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
    axes_list[0].legend()
    figure.savefig(path, dpi=120)
    return Path(path)


def _print(rows: list[dict], metric: str, console: Console) -> None:
    table = Table(title=f"low-label fine-tuning: {metric}")
    for column in ("setting", "size", "seed", "subjects", metric):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in rows:
        value = row.get(metric)
        table.add_row(row["setting"], f"{row.get('count', row.get('fraction')):g}", str(row.get("seed", "-")),
                      str(row["train_subjects"]), "-" if value is None else f"{value:.4f}")
    console.print(table)


def _pairs(items: Sequence[str], sep: str, many: bool = False) -> dict:
    """``NAME<sep>VALUE`` strings as a dict (``many``: a list of values per name)."""
    pairs: dict = {}
    for item in items:
        name, found, value = item.partition(sep)
        if not found or not name or not value:
            raise ConfigError(f"expected NAME{sep}VALUE, got {item!r} (e.g. stage1{sep}"
                              f"{'--trainer.max_steps=10' if sep == ':' else 'runs/stage1/last.ckpt'}).")
        if many:
            pairs.setdefault(name, []).append(value)
        else:
            pairs[name] = value
    return pairs


def main(argv: list[str] | None = None) -> list[dict]:
    """Command line; flags this parser does not know are passed to every fit run."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m brainsegfounder.lowlabel",
        description="Fine-tune from scratch and from pretrained weights on nested fractions of the training "
                    "fold; write a table and a plot. Other --flags go to every fit run.")
    parser.add_argument("--config", help="fit config, e.g. experiments/lowlabel_brats.yaml")
    parser.add_argument("--collect", nargs="+", default=None, metavar="FOLDER",
                        help="instead of training: merge these sweeps' lowlabel.csv into --out (table, summary, plot)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--init_from", default=None, help="pretrained weights for the 'pretrained' setting")
    parser.add_argument("--counts", type=int, nargs="+", default=[],
                        help="numbers of labelled training subjects (instead of --fractions), e.g. 1 2 4 8")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="repeat each point with these seeds (subset and training seed); adds a summary")
    parser.add_argument("--weights", nargs="+", default=[], metavar="NAME=PATH",
                        help="named pretrained settings, e.g. stage1=runs/s1/last.ckpt stage2=runs/s2/last.ckpt")
    parser.add_argument("--setting_args", nargs="+", default=[], metavar="NAME:--FLAG=VALUE",
                        help="a fit flag for one setting only, e.g. 'stage1:--model.init_args.backbone.modality_map="
                             "{flair: flair, t1: t1}'")
    parser.add_argument("--settings", nargs="+", default=None,
                        help="scratch and/or weight names; default: scratch and every weight given")
    parser.add_argument("--out", default="runs/lowlabel", help="folder for the runs and the table")
    parser.add_argument("--metric", default=None,
                        help="the metric plotted (default: test/dice_mean with a test fold, else val/dice_mean)")
    args, fit_args = parser.parse_known_args(argv)
    try:
        if args.collect:
            return collect(args.collect, args.out, args.metric)
        if not args.config:
            raise ConfigError("--config is required (a fit config, e.g. experiments/lowlabel_brats.yaml), "
                              "unless you --collect earlier sweeps.")
        weights, per_setting = _pairs(args.weights, "="), {}
        for name, flag in _pairs(args.setting_args, ":", many=True).items():
            per_setting[name] = flag
        return run_lowlabel(args.config, args.fractions, args.init_from, args.out, args.metric,
                            args.settings, fit_args, counts=args.counts, seeds=args.seeds, weights=weights,
                            setting_args=per_setting)
    except BrainSegFounderError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
