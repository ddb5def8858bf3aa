"""Training curves from the CSV logs of runs: did the SSL losses flatten, did fine-tuning plateau?

Reads each run's ``metrics.csv`` (Lightning's ``CSVLogger``), one panel per metric, one line per
run, the metric against the step (a running mean over ``--smooth`` logged points for noisy
training losses; validation points are drawn as they are)::

    python -m brainsegfounder.evaluation.curves --run stage1=runs/study/stage1/version_0 \\
        --run stage2=runs/study/stage2/version_0 --out docs/results/ssl_curves.png \\
        --metrics train/loss_rotation train/loss_contrastive train/loss_reconstruction \\
        val/rotation_accuracy val/contrastive_accuracy

and ``--table`` prints the first and last value of each metric per run (the flattening in numbers).

Example:
    >>> import csv, tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> with open(folder / "metrics.csv", "w", newline="") as f:
    ...     csv.writer(f).writerows([["step", "train/loss", "val/loss"],
    ...                               *[[step, 4 - step, ""] for step in range(1, 5)], [4, "", 0.5]])
    >>> curves = read_curves(folder, ["train/loss", "val/loss"])
    >>> curves["train/loss"], curves["val/loss"]
    ([(1, 3.0), (2, 2.0), (3, 1.0), (4, 0.0)], [(4, 0.5)])
    >>> smooth([(1, 3.0), (2, 2.0), (3, 1.0)], 2)
    [(1, 3.0), (2, 2.5), (3, 1.5)]
"""

from __future__ import annotations

import argparse
import csv
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["read_curves", "smooth", "plot_curves", "endpoints", "main"]


def _metrics_csv(run: str | Path) -> Path:
    run = Path(run)
    path = run if run.suffix == ".csv" else run / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.csv (give a CSVLogger run folder such as runs/study/stage1/version_0)")
    return path


def read_curves(run: str | Path, metrics: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """``metric -> [(step, value), ...]`` from a run folder's (or a file's) ``metrics.csv``; empty cells skipped."""
    curves: dict[str, list[tuple[int, float]]] = {m: [] for m in metrics}
    with open(_metrics_csv(run), newline="") as f:
        for row in csv.DictReader(f):
            for m in metrics:
                if row.get(m):
                    curves[m].append((int(float(row["step"])), float(row[m])))
    return curves


def smooth(points: Sequence[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    """Running mean over the last ``window`` points (fewer at the start), same steps."""
    values = [v for _, v in points]
    return [(s, sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1]))
            for i, (s, _) in enumerate(points)]


def endpoints(runs: Mapping[str, str | Path], metrics: Sequence[str]) -> list[dict]:
    """Per run and metric: first and last logged value and their steps (a table of the flattening)."""
    rows = []
    for name, run in runs.items():
        for metric, points in read_curves(run, metrics).items():
            if points:
                rows.append({"run": name, "metric": metric, "first_step": points[0][0], "first": points[0][1],
                             "last_step": points[-1][0], "last": points[-1][1]})
    return rows


def plot_curves(runs: Mapping[str, str | Path], metrics: Sequence[str], path: str | Path, window: int = 5,
                title: str = "") -> Path:
    """One panel per metric, one line per run; training metrics smoothed over ``window`` points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    read = {name: read_curves(run, metrics) for name, run in runs.items()}
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for name, curves in read.items():
            points = curves[metric]
            if not points:
                continue
            if metric.startswith("train/") and window > 1:
                ax.plot(*zip(*points, strict=True), color="0.85", lw=0.8)
                points = smooth(points, window)
            ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 15 else None, ms=3, label=name)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if title:  # wrapped to the figure's width: a one-panel figure is narrow
        fig.suptitle(textwrap.fill(title, 48 * cols), fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m brainsegfounder.evaluation.curves",
                                     description="Plot training curves of CSVLogger runs.")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER",
                        help="a run to draw (its CSVLogger version folder or metrics.csv); repeat")
    parser.add_argument("--metrics", nargs="+", default=["train/loss", "val/loss"])
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--smooth", type=int, default=5, help="running mean over this many logged training points")
    parser.add_argument("--title", default="")
    parser.add_argument("--table", action="store_true", help="also print first and last value per run and metric")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.run:
        name, sep, folder = item.partition("=")
        if not sep:
            parser.error(f"--run {item!r}: write NAME=FOLDER")
        runs[name] = folder
    path = plot_curves(runs, args.metrics, args.out, args.smooth, args.title)
    if args.table:
        for row in endpoints(runs, args.metrics):
            print(f"{row['run']:>12} {row['metric']:<28} step {row['first_step']:>4}: {row['first']:.4f} -> "
                  f"step {row['last_step']:>4}: {row['last']:.4f}")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
