"""Paired differences on many held-out brains: intervals over seeds *and* brains.

The low-label study validates every run on the same few brains of one fold, so its paired
interval (:func:`~brainsegfounder.evaluation.paired.paired_differences`) covers the seeds only: a
difference that lives in how four particular brains are segmented looks as firm as one that holds
for brains in general. Here every run's checkpoint is scored on a larger set of brains none of
them saw (``predict`` then ``evaluate``, one CSV per run), and the paired difference
``setting - scratch`` of seed ``s`` on brain ``b`` forms a seeds x brains table. Its mean gets:

- a **pigeonhole bootstrap** interval (Owen 2007, *The pigeonhole bootstrap*, Ann. Appl. Stat.):
  seeds and brains resampled independently, with replacement, each draw's mean over the resampled
  table; the percentile interval, and a two-sided p-value from where zero falls in the draws. It
  counts both sources of variation (and is known to be slightly conservative);
- for comparison, the t interval over seeds of each seed's mean over brains (the study's own
  protocol, now on more brains) and over brains of each brain's mean over seeds.

Scores are ``evaluate --out`` CSVs named after the run folders of ``lowlabel``
(``<setting>_<labelled subjects>_s<seed>.csv``, e.g. ``stage2_4_s0.csv``).

Example::

    python -m brainsegfounder.evaluation.heldout --scores runs/study/heldout/scores --out runs/study/heldout

Written by hand: scipy's ``bootstrap`` resamples one axis, not the two crossed axes of a seeds x
brains design; the t intervals and Benjamini-Hochberg q-values are scipy's.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from brainsegfounder.utils.errors import DataError

__all__ = ["read_scores", "pigeonhole_bootstrap", "paired_on_brains", "by_step", "run"]

_RUN = re.compile(r"^(?P<setting>.+)_(?P<count>\d+)_s(?P<seed>\d+)$")
_STEP = re.compile(r"^step(?P<step>\d+)$")
#: The region Dice columns of ``evaluate``'s CSV that are compared, mean first.
DICE = re.compile(r"^dice_(mean|[A-Za-z0-9]+)$")


def read_scores(folder: str | Path) -> dict[tuple[str, int, int], dict[str, dict[str, float]]]:
    """``{(setting, labelled subjects, seed): {case_id: {"dice_mean": ..., "dice_TC": ...}}}`` from the CSVs."""
    runs = {}
    for path in sorted(Path(folder).glob("*.csv")):
        found = _RUN.match(path.stem)
        if not found:
            continue
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        cases = {r["case_id"]: {k: float(v) for k, v in r.items() if DICE.match(k) and v != ""} for r in rows}
        runs[(found["setting"], int(found["count"]), int(found["seed"]))] = cases
    if not runs:
        raise DataError(f"no run scores under {folder}: expected evaluate CSVs named <setting>_<count>_s<seed>.csv "
                        "(e.g. stage2_4_s0.csv), one per run, on the same held-out brains.")
    return runs


def pigeonhole_bootstrap(differences, confidence: float = 0.95, n_resamples: int = 9999,
                         seed: int = 0) -> tuple[float, float, float]:
    """Percentile interval and two-sided p-value of the mean of a seeds x brains table.

    Rows (seeds) and columns (brains) are resampled independently with replacement.

    >>> import numpy as np
    >>> d = np.full((5, 30), 0.1) + np.random.default_rng(1).normal(0, 0.01, (5, 30))
    >>> low, high, p = pigeonhole_bootstrap(d)
    >>> bool(low > 0.09 and high < 0.11 and p < 0.001)
    True
    """
    import numpy as np

    d = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, d.shape[0], (n_resamples, d.shape[0]))
    cols = rng.integers(0, d.shape[1], (n_resamples, d.shape[1]))
    # mean of d[rows_i][:, cols_i] = (row weights) @ d @ (column weights) / (n_rows * n_cols)
    row_weights = np.stack([np.bincount(r, minlength=d.shape[0]) for r in rows])
    col_weights = np.stack([np.bincount(c, minlength=d.shape[1]) for c in cols])
    means = np.einsum("ri,ij,rj->r", row_weights, d, col_weights) / (d.shape[0] * d.shape[1])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    p = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()) + 1 / (n_resamples + 1))
    return float(low), float(high), float(p)


def paired_on_brains(runs: dict, baseline: str = "scratch", confidence: float = 0.95) -> list[dict]:
    """One entry per (setting, size, region): the seeds x brains paired differences summarised.

    Fields as :func:`~brainsegfounder.evaluation.paired.paired_differences` (so its table and plot
    writers take them; ``ci_low``/``ci_high``/``p_value`` are the pigeonhole bootstrap's,
    ``differences`` each seed's mean over brains), plus ``brains``, ``seed_t_low``/``seed_t_high``
    (t over seeds) and ``brain_t_low``/``brain_t_high`` (t over brains).
    """
    import numpy as np
    from scipy import stats

    from brainsegfounder.evaluation.paired import _with_q_values

    def t_interval(values):
        if len(values) < 2 or np.ptp(values) == 0:
            return float("nan"), float("nan")
        found = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
        return float(found.low), float(found.high)

    entries = []
    for setting in dict.fromkeys(k[0] for k in sorted(runs)):
        if setting == baseline:
            continue
        for count in sorted({k[1] for k in runs if k[0] == setting}):
            seeds = sorted(s for (st, c, s) in runs if st == setting and c == count and (baseline, c, s) in runs)
            if not seeds:
                continue
            cases = sorted(set.intersection(*(set(runs[(setting, count, s)]) & set(runs[(baseline, count, s)])
                                               for s in seeds)))
            if not cases:
                raise DataError(f"{setting} and {baseline} at {count} subjects share no scored brain; score both "
                                "on the same held-out set.")
            metrics = sorted({m for s in seeds for m in runs[(setting, count, s)][cases[0]]},
                             key=lambda m: (m != "dice_mean", m))
            for metric in metrics:
                d = np.array([[runs[(setting, count, s)][c][metric] - runs[(baseline, count, s)][c][metric]
                               for c in cases] for s in seeds])
                low, high, p = pigeonhole_bootstrap(d, confidence)
                per_seed = d.mean(1)
                entries.append({
                    "setting": setting, "baseline": baseline, "train_subjects": count, "metric": metric,
                    "n": len(seeds), "seeds": " ".join(map(str, seeds)), "brains": len(cases),
                    "differences": " ".join(f"{x:+.4f}" for x in per_seed), "left_out": "",
                    "mean_difference": float(d.mean()), "ci_low": low, "ci_high": high,
                    "interval": "seeds x brains bootstrap", "excludes_zero": bool(low > 0 or high < 0),
                    "p_value": p,
                    **dict(zip(("seed_t_low", "seed_t_high"), t_interval(per_seed), strict=True)),
                    **dict(zip(("brain_t_low", "brain_t_high"), t_interval(d.mean(0)), strict=True)),
                })
    return _with_q_values(entries)


def by_step(scores: str | Path, out: str | Path, baseline: str = "scratch") -> Path:
    """Held-out curves: the same runs' checkpoints at several steps, each step scored on the same brains.

    ``scores`` holds one folder per step, ``step<N>/`` (or ``step<N>/scores/``), of evaluate CSVs
    named as for :func:`read_scores`. Writes per run ``heldout_curve_<setting>_<count>_s<seed>.csv``
    (``step`` and ``heldout/dice_mean``, ``heldout/dice_TC``, ...: a ``metrics.csv`` that
    ``python -m brainsegfounder.evaluation.curves --run NAME=FILE`` draws), and ``heldout_by_step.md``:
    per step each run's mean over the brains and each setting's paired difference from ``baseline``
    with its seeds x brains interval. Where held-out Dice stops rising is the fine-tuning plateau.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for step, gain in ((50, 0.0), (100, 0.2)):
    ...     (root / f"step{step}").mkdir()
    ...     for setting, dice in (("scratch", 0.5), ("stage2", 0.5 + gain)):
    ...         rows = [f"b{i},{dice + i / 100}" for i in range(3)]
    ...         _ = (root / f"step{step}" / f"{setting}_4_s0.csv").write_text("case_id,dice_mean\\n" + "\\n".join(rows))
    >>> md = by_step(root, root / "out")
    >>> print((root / "out" / "heldout_curve_stage2_4_s0.csv").read_text().splitlines()[-1])
    100,0.71
    >>> "+0.200" in md.read_text()
    True
    """
    from brainsegfounder.evaluation.paired import _signed

    folders = {}
    for child in Path(scores).iterdir():
        found = _STEP.match(child.name)
        if found and child.is_dir():
            folders[int(found["step"])] = child / "scores" if (child / "scores").is_dir() else child
    if not folders:
        raise DataError(f"no step<N>/ folders under {scores}: score each step's checkpoints into "
                        f"{scores}/step<N>/ (evaluate CSVs named <setting>_<count>_s<seed>.csv).")
    Path(out).mkdir(parents=True, exist_ok=True)
    curves: dict[tuple, dict[int, dict[str, float]]] = {}
    lines = ["| step | run | mean over brains (dice_mean) | paired difference from " + baseline
             + " (dice_mean) | 95% interval (seeds x brains bootstrap) | regions (mean difference) |",
             "| ---: | --- | ---: | ---: | --- | --- |"]
    for step in sorted(folders):
        runs = read_scores(folders[step])
        for key, cases in runs.items():
            metrics = sorted({m for c in cases.values() for m in c}, key=lambda m: (m != "dice_mean", m))
            curves.setdefault(key, {})[step] = {m: sum(c[m] for c in cases.values()) / len(cases) for m in metrics}
        entries = paired_on_brains(runs, baseline)
        for key in sorted(runs):
            found = [e for e in entries if (e["setting"], e["train_subjects"]) == key[:2] and e["metric"] == "dice_mean"]
            regions = ", ".join(f"{e['metric'].removeprefix('dice_')} {_signed(e['mean_difference'])}" for e in entries
                                if (e["setting"], e["train_subjects"]) == key[:2] and e["metric"] != "dice_mean")
            difference = (f"{_signed(found[0]['mean_difference'])} | [{_signed(found[0]['ci_low'])}, "
                          f"{_signed(found[0]['ci_high'])}] | {regions}") if found else "| |"
            lines.append(f"| {step} | {key[0]}_{key[1]}_s{key[2]} | {curves[key][step]['dice_mean']:.3f} | {difference} |")
    for (setting, count, seed), points in curves.items():
        metrics = list(next(iter(points.values())))
        with (Path(out) / f"heldout_curve_{setting}_{count}_s{seed}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", *(f"heldout/{m}" for m in metrics)])
            writer.writerows([step, *(f"{points[step][m]:.6g}" for m in metrics)] for step in sorted(points))
    md = Path(out) / "heldout_by_step.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def run(scores: str, out: str, baseline: str = "scratch", steps: bool = False) -> Path:
    """Paired table and plot of the runs scored on held-out brains.

    Args:
        scores: folder of ``evaluate --out`` CSVs, one per run, named ``<setting>_<count>_s<seed>.csv``.
        out: folder for ``heldout_paired.csv``/``.md`` and ``heldout_paired.png``.
        baseline: the setting every other one is paired with.
        steps: ``scores`` holds ``step<N>/`` folders of the same runs at several steps: write the
            held-out curves and the table per step (:func:`by_step`) instead.
    """
    if steps:
        md = by_step(scores, out, baseline)
        print(md.read_text())
        return md
    from brainsegfounder.evaluation.paired import _probability, _signed, plot_paired, write_paired

    entries = paired_on_brains(read_scores(scores), baseline)
    Path(out).mkdir(parents=True, exist_ok=True)
    _, md = write_paired(entries, out, stem="heldout_paired")
    tests = sum(1 for e in entries if e["q_value"] == e["q_value"])
    lines = [f"| setting - baseline | labelled subjects | metric | seeds x brains | mean difference | 95% interval "
             f"(seeds x brains bootstrap) | t over seeds | t over brains | p (bootstrap) | q (BH, {tests} tests) |",
             "| --- | ---: | --- | --- | ---: | --- | --- | --- | ---: | ---: |"]
    for e in entries:
        span = f"[{_signed(e['ci_low'])}, {_signed(e['ci_high'])}]"
        bold = "**" if e["excludes_zero"] else ""
        lines.append(f"| {e['setting']} - {e['baseline']} | {e['train_subjects']} | {e['metric']} | {e['n']} x "
                     f"{e['brains']} | {bold}{_signed(e['mean_difference'])}{bold} | {bold}{span}{bold} | "
                     f"[{_signed(e['seed_t_low'])}, {_signed(e['seed_t_high'])}] | "
                     f"[{_signed(e['brain_t_low'])}, {_signed(e['brain_t_high'])}] | {_probability(e['p_value'])} | "
                     f"{_probability(e['q_value'])} |")
    md.write_text("\n".join(lines) + "\n")
    brains = max(e["brains"] for e in entries)
    plot_paired(entries, Path(out) / "heldout_paired.png",
                title=f"Each seed's mean paired difference over {brains} held-out brains (open dots), their mean "
                      "and its 95% seeds x brains bootstrap interval")
    print(md.read_text())
    return md


def main() -> None:
    from brainsegfounder.utils.cli import command

    command(run, prog="python -m brainsegfounder.evaluation.heldout")


if __name__ == "__main__":
    main()
