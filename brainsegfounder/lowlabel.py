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
The design is paired: for one (seed, count) every setting gets the same fit flags but its weights
(:func:`run_arguments`), so the same labelled subset, training seed and steps; each row records
the subset it trained on (``train_subset``, a hash of the subject ids) and its ``steps``. So
``lowlabel_paired.csv``/``.md``/``.png`` (:func:`paired_differences`) give, per pretrained
setting, count and region, the mean over seeds of (setting - ``scratch``) with a 95% interval.
``--probe frozen`` runs the same settings with the encoder frozen for the whole run
(``model.backbone.freeze_encoder``), as settings ``<setting>-frozen`` compared with
``scratch-frozen``. ``--collect DIR [DIR ...]`` merges sweeps run apart (pieces: ``--settings``,
``--seeds``) into ``--out``; ``--resume`` reruns a piece into its folder, skipping recorded runs.

Meant for GPU machines or long CPU runs, not CI; the config must name a logger with ``save_dir``
and ``name`` (CSVLogger or WandbLogger), which the script points at each run folder.

>>> from brainsegfounder.lowlabel import run_lowlabel  # doctest: +SKIP
>>> rows = run_lowlabel("experiments/lowlabel_brats.yaml", [0.1, 1.0], out="runs/ll")  # doctest: +SKIP
>>> [(r["setting"], r["fraction"], r["train_subjects"]) for r in rows]  # doctest: +SKIP
[('scratch', 0.1, 100), ('scratch', 1.0, 1000)]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from brainsegfounder.evaluation.paired import (  # noqa: F401 - re-exported: lowlabel's public names
    BASELINE,
    FROZEN,
    INTERVALS,
    _default_metric,
    _number,
    paired_differences,
    plot_curve,
    plot_paired,
    summarise,
    write_paired,
    write_table,
)
from brainsegfounder.evaluation.study_files import _paired_outputs, _read_rows, collect  # noqa: F401 - collect: public
from brainsegfounder.utils.errors import BrainSegFounderError, ConfigError, DataError, WeightsError

__all__ = ["run_lowlabel", "run_arguments", "summarise", "paired_differences", "collect", "write_table",
           "write_paired", "plot_curve", "plot_paired", "main"]

SETTINGS = ("scratch", "pretrained")
TABLE_NAMES = ("lowlabel.csv", "lowlabel.md", "lowlabel.png", "lowlabel_summary.csv", "lowlabel_paired.csv")


def _check(config: str | Path, fractions: Sequence[float], settings: Sequence[str], weights: dict[str, str],
           out: Path, counts: Sequence[int] = (), resume: bool = False) -> None:
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
    if existing and not resume:
        raise DataError(f"{existing[0]} exists already; results are never overwritten. Rerun with --resume to "
                        "keep its runs and do only the missing ones, or choose another --out.")


def _run_name(setting: str, size: float, seed: int | None = None) -> str:
    return f"{setting}_{size:g}" + ("" if seed is None else f"_s{seed}")


def _label(setting: str, probe: str | None) -> str:
    """The name a setting's runs carry: ``stage2`` or, in the frozen probe, ``stage2-frozen``."""
    return setting + (FROZEN if probe == "frozen" else "")


def run_arguments(config: str | Path, setting: str, size_key: str, size: float, seed: int | None, out: Path,
                  fit_args: Sequence[str] = (), weights: dict[str, str] | None = None,
                  setting_args: dict[str, Sequence[str]] | None = None, probe: str | None = None) -> list[str]:
    """The ``fit`` flags of one run: the pairing lives here.

    For one (``size``, ``seed``) every setting gets the same flags (config, ``fit_args`` with the
    steps, training-set size, ``split_seed`` = ``seed_everything`` = ``seed``) except where its run
    is written, its ``init_from`` and its own ``setting_args``; so every setting sees the same
    labelled subset, the same training seed and the same number of steps.

    >>> run_arguments("c.yaml", "scratch", "count", 2, 0, Path("o"))[-2:]
    ['--seed_everything=0', '--data.init_args.split_seed=0']
    """
    name = _run_name(_label(setting, probe), size, seed)
    args = ["--config", str(config), *fit_args,
            f"--data.init_args.train_{size_key}={size}",
            f"--trainer.default_root_dir={out / name}",
            f"--trainer.logger.init_args.save_dir={out}",
            f"--trainer.logger.init_args.name={name}"]
    if probe == "frozen":
        args.append("--model.init_args.backbone.freeze_encoder=true")
    if seed is not None:
        args += [f"--seed_everything={seed}", f"--data.init_args.split_seed={seed}"]
    if setting in (weights or {}):
        args.append(f"--model.init_args.backbone.init_from={Path(weights[setting]).expanduser()}")
    args += list((setting_args or {}).get(setting, ()))
    return args


def _subset_id(subject_ids: Sequence[str]) -> str:
    """A short fingerprint of a labelled subset (order-free), so pairs can be checked for sameness."""
    import hashlib

    return hashlib.sha1("\n".join(sorted(subject_ids)).encode()).hexdigest()[:12]


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
    probe: str | None = None,
    resume: bool = False,
    interval: str = "t",
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
        probe: ``"frozen"``: train only the decoder, the encoder frozen for the whole run
            (``model.backbone.freeze_encoder``); settings are recorded as ``<setting>-frozen``.
        resume: keep the runs ``out/lowlabel.csv`` records (same setting, size and seed) and run
            only the others; without it an existing table stops the sweep.
        interval: the paired summary's 95% interval, ``t`` or ``bootstrap``.

    Returns:
        One dict per run: ``setting``, ``fraction`` or ``count``, ``seed``, ``train_subjects``,
        ``train_subset`` (fingerprint of the labelled subjects), ``steps``, the ``val/`` (and
        ``test/``) metrics, ``run_dir``. With ``seeds``, also ``lowlabel_summary.csv``/``.md``
        (mean, standard deviation and number of runs per (setting, size) and metric) and, once a
        pretrained setting and ``scratch`` share a seed, ``lowlabel_paired.csv``/``.md``/``.png``.
    """
    from brainsegfounder.fit import main as fit_main

    out = Path(out)
    weights = dict(weights or {})
    if init_from:
        weights["pretrained"] = str(init_from)
    settings = list(settings or ["scratch", *weights])
    counts = sorted(int(c) for c in counts)
    fractions = sorted(float(f) for f in fractions)
    if probe not in (None, "frozen"):
        raise ConfigError(f"--probe {probe!r} is unknown; the probe is 'frozen' (encoder frozen, decoder trained).")
    if interval not in INTERVALS:
        raise ConfigError(f"--interval {interval!r} is unknown; choose one of {list(INTERVALS)}.")
    _check(config, fractions, settings, weights, out, counts, resume)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    size_key, sizes = ("count", counts) if counts else ("fraction", fractions)
    rows: list[dict] = _read_rows(out / "lowlabel.csv") if resume and (out / "lowlabel.csv").is_file() else []
    done = {_run_name(r["setting"], r[size_key], r.get("seed")) for r in rows if size_key in r}
    for seed in (seeds if seeds else [None]):
        for setting in settings:
            for size in sizes:
                label = _label(setting, probe)
                name = _run_name(label, size, seed)
                if name in done:
                    console.print(f"[bold]low-label[/] {name} is recorded in {out / 'lowlabel.csv'}: skipped")
                    continue
                console.print(f"[bold]low-label[/] {label}, {size:g} {'subjects' if counts else 'of the fold'}"
                              f"{'' if seed is None else f', seed {seed}'} -> {out / name}")
                cli = fit_main(run_arguments(config, setting, size_key, size, seed, out, fit_args, weights,
                                             setting_args, probe))
                found = cli.best_metrics or {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
                train_ids = [c.subject_id for c in cli.datamodule.train_cases]
                rows.append({"setting": label, size_key: size,
                             **({} if seed is None else {"seed": seed}),
                             "train_subjects": len(train_ids), "train_subset": _subset_id(train_ids),
                             "steps": int(cli.trainer.global_step),
                             **{k: float(v) for k, v in sorted(found.items()) if k.startswith(("val/", "test/"))},
                             "run_dir": str(cli.trainer.log_dir)})
                write_table(rows, out)
                if seeds:
                    write_table(summarise(rows), out, stem="lowlabel_summary")
                    _paired_outputs(rows, out, _default_metric(rows, metric), interval)
    metric = _default_metric(rows, metric)
    plot_curve(rows, out / "lowlabel.png", metric)
    if seeds:
        _paired_outputs(rows, out, metric, interval)
    _print(rows, metric, console)
    return rows


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
                        help="the metric plotted and paired (default: test/dice_mean with a test fold, else "
                             "val/dice_mean; a mean Dice brings every region's)")
    parser.add_argument("--probe", choices=["frozen"], default=None,
                        help="frozen: train only the decoder, the encoder (swinViT) frozen for the whole run "
                             "(model.backbone.freeze_encoder); runs are named <setting>-frozen")
    parser.add_argument("--resume", action="store_true",
                        help="rerun a piece into its --out: runs its lowlabel.csv records are kept, not refitted")
    parser.add_argument("--interval", choices=list(INTERVALS), default="t",
                        help="the paired summary's 95%% interval of the mean difference over seeds: "
                             "t (Student) or bootstrap (BCa, scipy)")
    args, fit_args = parser.parse_known_args(argv)
    try:
        if args.collect:
            return collect(args.collect, args.out, args.metric, args.interval)
        if not args.config:
            raise ConfigError("--config is required (a fit config, e.g. experiments/lowlabel_brats.yaml), "
                              "unless you --collect earlier sweeps.")
        weights, per_setting = _pairs(args.weights, "="), {}
        for name, flag in _pairs(args.setting_args, ":", many=True).items():
            per_setting[name] = flag
        return run_lowlabel(args.config, args.fractions, args.init_from, args.out, args.metric,
                            args.settings, fit_args, counts=args.counts, seeds=args.seeds, weights=weights,
                            setting_args=per_setting, probe=args.probe, resume=args.resume, interval=args.interval)
    except BrainSegFounderError as err:
        from brainsegfounder.utils.cli import fail

        fail(err)  # one line, never wrapped inside a path, exit 2


if __name__ == "__main__":
    main()
