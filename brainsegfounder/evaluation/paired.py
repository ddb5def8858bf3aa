"""The summaries of a low-label study: per-point means, paired differences, their tables and plots.

Paired differences: each pretrained setting minus scratch, per seed, with a 95% interval.

The study (:mod:`brainsegfounder.lowlabel`) runs every setting on the same labelled subset, training
seed and steps, so setting - scratch is a paired difference per seed; :func:`paired_differences`
summarises them per size and metric (t interval or bootstrap, a t-test's p-value and its
Benjamini-Hochberg q-value over the table, all from scipy), :func:`write_paired` and
:func:`plot_paired` write the table and the plot."""

from __future__ import annotations

import csv
from pathlib import Path

from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["BASELINE", "FROZEN", "INTERVALS", "paired_differences", "plot_curve", "plot_paired", "summarise",
           "write_paired", "write_table"]


def _baseline_of(setting: str) -> str:
    """``scratch`` for a fine-tuned setting, ``scratch-frozen`` for a frozen-encoder one."""
    return BASELINE + (FROZEN if setting.endswith(FROZEN) else "")


def _seed_order(seed: int | None) -> int:
    return -1 if seed is None else int(seed)


def _metric_keys(rows: list[dict], metric: str) -> list[str]:
    """``metric`` and, when it is a mean Dice, every region's Dice of the same stage."""
    stage = metric.split("/", 1)[0]
    regions = sorted({k for r in rows for k in r if k.startswith(f"{stage}/dice_") and k != metric})
    return [metric, *regions] if metric.endswith("/dice_mean") else [metric]


def _interval(differences, interval: str, confidence: float) -> tuple[float, float]:
    """The ``confidence`` interval of the mean of ``differences``: Student's t or a BCa bootstrap (scipy)."""
    import numpy as np
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    if np.ptp(d) == 0:  # no spread between seeds: both intervals collapse to the mean (scipy would warn)
        return float(d[0]), float(d[0])
    if interval == "bootstrap":
        found = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=9999,
                                rng=np.random.default_rng(0)).confidence_interval
    else:
        found = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
    return float(found.low), float(found.high)


def _p_value(differences) -> float:
    """Two-sided one-sample t-test of a zero mean difference (scipy); NaN with one pair or no spread."""
    import numpy as np
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    return float("nan") if len(d) < 2 or np.ptp(d) == 0 else float(stats.ttest_1samp(d, 0.0).pvalue)


def _with_q_values(entries: list[dict]) -> list[dict]:
    """``q_value``: the Benjamini-Hochberg adjusted p-value (scipy) over every entry with a p-value, so
    that a table of many sizes and regions does not show its lucky rows as findings."""
    import numpy as np
    from scipy import stats

    tested = [e for e in entries if np.isfinite(e["p_value"])]
    adjusted = stats.false_discovery_control([e["p_value"] for e in tested]) if tested else []
    for e in entries:
        e["q_value"] = float("nan")
    for e, q in zip(tested, adjusted, strict=True):
        e["q_value"] = float(q)
    return entries


def paired_differences(rows: list[dict], metric: str = "val/dice_mean", interval: str = "t",
                       confidence: float = 0.95) -> list[dict]:
    """Mean paired difference (setting - ``scratch``) over seeds, per training-set size and region.

    Runs pair when they share the setting family's baseline (``scratch``, or ``scratch-frozen``
    for a ``-frozen`` setting), the number of labelled subjects and the seed. A seed that only one
    of the two has is left out (``left_out``), so ``n`` is the number of pairs. Pairs that did not
    train on the same subset (``train_subset``) or for the same ``steps`` stop with an error: the
    pieces they come from were run with different flags.

    Returns one dict per (setting, size, metric): ``setting``, ``baseline``, ``train_subjects``,
    ``metric`` (``metric`` and, for a mean Dice, each region's Dice), ``n``, ``seeds``,
    ``differences`` (each seed's, in the order of ``seeds``), ``left_out``, ``mean_difference``, ``ci_low``, ``ci_high`` (``confidence`` interval, NaN when
    n < 2), ``interval``, ``excludes_zero``, ``p_value`` (two-sided t-test of a zero mean) and
    ``q_value`` (``p_value`` adjusted by Benjamini-Hochberg over all the entries returned: with three
    sizes and four regions, twelve tests, one of which would clear p < 0.05 by luck about half the time).

    >>> rows = [{"setting": s, "seed": k, "train_subjects": 1, "val/dice_mean": v}
    ...         for s, values in (("scratch", (0.2, 0.3, 0.4)), ("stage2", (0.3, 0.5, 0.7)))
    ...         for k, v in enumerate(values)]
    >>> [(e["n"], round(e["mean_difference"], 3)) for e in paired_differences(rows)]
    [(3, 0.2)]
    """
    import numpy as np

    if interval not in INTERVALS:
        raise ConfigError(f"interval {interval!r} is unknown; choose one of {list(INTERVALS)}.")
    runs: dict[tuple, dict] = {}
    for row in rows:
        key = (row["setting"], row["train_subjects"], row.get("seed"))
        if key in runs:
            raise DataError(f"two runs of {row['setting']} at {row['train_subjects']} subjects, seed {row.get('seed')} "
                            f"({runs[key].get('run_dir')}, {row.get('run_dir')}); collect each piece once.")
        runs[key] = row
    keys = _metric_keys(rows, metric)
    entries: list[dict] = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        baseline = _baseline_of(setting)
        if setting == baseline or not any(r["setting"] == baseline for r in rows):
            continue
        for subjects in sorted({r["train_subjects"] for r in rows if r["setting"] == setting}):
            mine = {k[2] for k in runs if k[:2] == (setting, subjects)}
            theirs = {k[2] for k in runs if k[:2] == (baseline, subjects)}
            seeds = sorted(mine & theirs, key=_seed_order)
            for seed in seeds:
                a, b = runs[(setting, subjects, seed)], runs[(baseline, subjects, seed)]
                for field in ("train_subset", "steps"):
                    if field in a and field in b and a[field] != b[field]:
                        raise DataError(f"{setting} and {baseline} at {subjects} subjects, seed {seed} differ in "
                                        f"{field} ({a[field]} vs {b[field]}): not a pair. The pieces were run with "
                                        "different flags; rerun one so that only the weights differ.")
            for key in keys:
                pairs = [(s, runs[(setting, subjects, s)][key] - runs[(baseline, subjects, s)][key])
                         for s in seeds if key in runs[(setting, subjects, s)] and key in runs[(baseline, subjects, s)]]
                if not pairs:
                    continue
                differences = np.array([d for _, d in pairs], dtype=float)
                low, high = _interval(differences, interval, confidence)
                entries.append({
                    "setting": setting, "baseline": baseline, "train_subjects": subjects, "metric": key,
                    "n": len(pairs), "seeds": " ".join(str(s) for s, _ in pairs),
                    "differences": " ".join(f"{d:+.4f}" for _, d in pairs),
                    "left_out": " ".join(str(s) for s in sorted(mine ^ theirs, key=_seed_order)),
                    "mean_difference": float(differences.mean()), "ci_low": low, "ci_high": high,
                    "interval": interval, "excludes_zero": bool(low > 0 or high < 0),
                    "p_value": _p_value(differences)})
    return _with_q_values(entries)


def _signed(value: float) -> str:
    """``+0.123``; a value that rounds to zero is ``+0.000``, never ``-0.000``."""
    return f"{0.0 if abs(value) < 5e-4 else value:+.3f}"


def write_paired(entries: list[dict], out: str | Path, stem: str = "lowlabel_paired") -> tuple[Path, Path]:
    """``<stem>.csv`` (every field) and ``<stem>.md`` (a table to read: the interval, whether it
    excludes 0, p and q); returns both paths."""
    csv_path, md_path = write_table(entries, out, stem=stem)
    level = "95%"
    tests = sum(1 for e in entries if e.get("q_value") == e.get("q_value"))  # NaN != NaN
    lines = [f"| setting - baseline | labelled subjects | metric | pairs (seeds) | mean difference | {level} interval "
             f"| excludes 0 | p (t-test) | q (BH, {tests} tests) |", "| --- | ---: | --- | --- | ---: | --- | --- | ---: | ---: |"]
    for e in entries:
        seeds = f"{e['n']} ({e['seeds']}" + (f"; left out {e['left_out']}" if e["left_out"] else "") + ")"
        span = "n < 2" if e["n"] < 2 else f"[{_signed(e['ci_low'])}, {_signed(e['ci_high'])}] ({e['interval']})"
        lines.append(f"| {e['setting']} - {e['baseline']} | {e['train_subjects']} | {e['metric']} | {seeds} | "
                     f"{_signed(e['mean_difference'])} | {span} | {'yes' if e['excludes_zero'] else 'no'} | "
                     f"{_probability(e.get('p_value'))} | {_probability(e.get('q_value'))} |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _probability(value) -> str:
    """``0.031``, ``<0.001``, or ``-`` where there is none (one pair, no spread)."""
    if value is None or value != value:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def plot_paired(entries: list[dict], path: str | Path, title: str | None = None) -> Path:
    """The paired differences (PNG): one panel per metric (mean Dice, then each region), the mean
    difference against the number of labelled subjects, one series per setting, its interval as
    error bars, each seed's own difference as a small open dot beside it, and a zero line: a bar
    that stays off the line is a difference the seeds support.
    Points with fewer pairs than the most (a seed left out) are marked with their ``n``. ``title``
    replaces the default one.
    """
    import numpy as np
    from matplotlib.figure import Figure

    keys = list(dict.fromkeys(e["metric"] for e in entries))
    settings = list(dict.fromkeys(e["setting"] for e in entries))
    sizes = sorted({e["train_subjects"] for e in entries})
    most = max(e["n"] for e in entries)
    figure = Figure(figsize=(4.2 * len(keys), 4.0), layout="constrained")
    axes_list = np.atleast_1d(figure.subplots(1, len(keys)))
    for axes, key in zip(axes_list, keys, strict=True):
        axes.axhline(0.0, color="black", linewidth=1)
        for i, setting in enumerate(settings):
            mine = [e for e in entries if e["metric"] == key and e["setting"] == setting]
            if not mine:
                continue
            shift = 1.12 ** (i - (len(settings) - 1) / 2)  # side by side on the log axis
            x = np.array([e["train_subjects"] for e in mine], dtype=float) * shift
            y = np.array([e["mean_difference"] for e in mine])
            errors = np.array([[e["mean_difference"] - e["ci_low"], e["ci_high"] - e["mean_difference"]]
                               for e in mine]).T
            axes.errorbar(x, y, yerr=np.nan_to_num(errors), fmt="o-", capsize=3,
                          label=f"{setting} - {mine[0]['baseline']}" if key == keys[0] else None)
            colour = axes.lines[-1].get_color()
            for xi, e in zip(x, mine, strict=True):
                seeds = [float(d) for d in str(e.get("differences", "")).split()]
                axes.scatter([xi * 1.05] * len(seeds), seeds, s=14, facecolors="none", edgecolors=colour,
                             linewidths=0.8, zorder=3)
            for xi, yi, e in zip(x, y, mine, strict=True):
                if e["n"] < most:  # above its bar, clear of the other series
                    top = e["ci_high"] if np.isfinite(e["ci_high"]) else yi
                    axes.annotate(f"n={e['n']}", (xi, top), textcoords="offset points", xytext=(0, 4), fontsize=8,
                                  ha="center", color=axes.lines[-1].get_color())
        axes.margins(y=0.12)  # room for the n= marks above the bars
        _size_axis(axes, sizes)
        axes.set_title(key)
    axes_list[0].set_ylabel("paired difference (setting - baseline)")
    span = "/".join(sorted({e["interval"] for e in entries}))
    figure.suptitle(title or f"Paired difference per seed (open dots) and their mean (n = {most} pairs unless "
                             f"marked), 95% {span} interval")
    figure.legend(loc="outside lower center", ncols=len(settings), fontsize=9)
    figure.savefig(path, dpi=120)
    return Path(path)



#: The baseline every pretrained setting is paired with.
BASELINE = "scratch"


#: How ``--probe frozen`` marks its settings (run folders, table rows): ``stage2-frozen``.
FROZEN = "-frozen"


INTERVALS = ("t", "bootstrap")



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



def _default_metric(rows: list[dict], metric: str | None = None) -> str:
    return metric or ("test/dice_mean" if any("test/dice_mean" in r for r in rows) else "val/dice_mean")


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


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def plot_curve(rows: list[dict], path: str | Path, metric: str | None = "val/dice_mean") -> Path:
    """``metric`` against the number of labelled training subjects, one line per setting (PNG).

    Several seeds per point: the line is their mean and the band +- one standard deviation, each
    run a dot. With several regions (``val/dice_<region>``), one panel per region follows ``metric``.
    """
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed on servers

    metric = _default_metric(rows, metric)
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
        _size_axis(axes, sorted({r["train_subjects"] for r in rows}))
        axes.set_ylabel(key)
    axes_list[0].legend()
    figure.savefig(path, dpi=120)
    return Path(path)


def _size_axis(axes, sizes) -> None:
    """The labelled-set sizes along a log x axis, one tick per size, with a light grid, and room on
    each side for the settings and seed dots drawn beside a size (with one size, matplotlib's own
    limits would hug the mean and leave the dots at the edge)."""
    axes.set_xscale("log")
    axes.set_xlim(min(sizes) / 1.4, max(sizes) * 1.4)
    axes.set_xticks(sizes, [str(s) for s in sizes])
    axes.minorticks_off()
    axes.set_xlabel("labelled training subjects")
    axes.grid(alpha=0.3)
