"""Run the benchmarks, print one table, write ``latest.md`` and ``latest.json``.

Usage::

    python -m benchmarks.run                      # small sizes, CPU-sized (make bench)
    python -m benchmarks.run --full               # the paper's sizes (96^3, feature size 48)
    python -m benchmarks.run --only data_pipeline --only memory --out /tmp/bench

Each row is one benchmark module in this folder exposing ``run(full: bool = False) -> list[Result]``.
A module that is not (yet) in the checkout is listed as "not yet available"; one that fails is
listed with its error and the runner exits with status 1 after writing the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.common import Result, fmt, machine

__all__ = ["BENCHMARKS", "run_benchmarks", "to_markdown", "write_results", "main"]

#: Module name -> the row title used while the module is missing, in table order.
BENCHMARKS: dict[str, str] = {
    "data_pipeline": "1. training data pipeline",
    "framework_overhead": "2. framework overhead",
    "ssl_augment": "3. SSL augmentation",
    "inference": "4. inference",
    "memory": "5. memory: gradient checkpointing",
    "gpu": "6. GPU step",
    "cpu_predict": "7. CPU predict: brain box, --fast, engines",
    "help": "8. --help start-up",
    "allocator": "9. CPU allocator: freed memory kept",
}


def _placeholder(name: str, note: str) -> Result:
    return Result(BENCHMARKS.get(name, name), "-", "-", "-", [], [], target=None, note=note)


def run_benchmarks(names: list[str], full: bool = False, console: Console | None = None) -> tuple[list[Result], list[str]]:
    """Run the named benchmark modules in order: their rows, and the names of those that failed."""
    console = console or Console(stderr=True)
    rows: list[Result] = []
    failed: list[str] = []
    for name in names:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"benchmarks.{name}":
                raise
            rows.append(_placeholder(name, "not yet available: this checkout has no "
                                           f"benchmarks/{name}.py"))
            continue
        console.print(f"[bold]running[/] {name} ({'full' if full else 'small'} sizes) ...")
        start = time.perf_counter()
        try:
            found = module.run(full=full)
        except Exception as err:  # one broken benchmark must not lose the others' figures
            failed.append(name)
            console.print(f"[bold red]{name} failed:[/] {err}")
            console.print(traceback.format_exc(), highlight=False, markup=False)
            rows.append(_placeholder(name, f"failed: {type(err).__name__}: {err}"))
            continue
        for row in found:
            row.extra.setdefault("benchmark_seconds", round(time.perf_counter() - start, 1))
        rows.extend(found)
    return rows, failed


def _spread(samples: list[float]) -> str:
    return f"{fmt(min(samples))}-{fmt(max(samples))}" if samples else "-"


def _cells(row: Result) -> list[str]:
    return [row.name, row.ours, row.baseline, row.unit,
            f"{fmt(row.ours_median)} ({_spread(row.ours_samples)})",
            f"{fmt(row.baseline_median)} ({_spread(row.baseline_samples)})",
            f"{fmt(row.ratio)}x" if row.measured else "-", row.target_text, row.status]


HEADER = ["benchmark", "ours", "baseline", "unit", "ours: median (min-max)", "baseline: median (min-max)",
          "ratio", "target", "status"]


def to_markdown(rows: list[Result], info: dict, date: str, full: bool = False) -> str:
    """The results as a markdown page: machine and date, the table, then each row's settings."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"# Benchmarks ({'full' if full else 'small'} sizes), {date}", "",
             f"Machine: {info.get('processor')}, {info.get('cpus')} CPUs, {info.get('memory_gib', '?')} GiB, "
             f"GPU: {info.get('cuda') or 'none'}; torch {info.get('torch')} ({info.get('torch_threads')} threads), "
             f"Python {info.get('python')}; load average at the start {info.get('load_average', '?')}.",
             "Ratios are ours / baseline, measured side by side in the same process (alternating "
             "repeats); absolute figures vary with the machine's load.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell(c) for c in _cells(r)) + " |" for r in rows]
    lines += ["", "## Settings and notes", ""]
    lines += [f"- **{r.name}**: {r.note}" for r in rows if r.note]
    return "\n".join(lines) + "\n"


def write_results(rows: list[Result], out: Path, full: bool = False, info: dict | None = None) -> tuple[Path, Path]:
    """Write ``latest.md`` and ``latest.json`` into ``out`` (created if needed)."""
    info = info or machine()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "latest.md", out / "latest.json"
    md.write_text(to_markdown(rows, info, date, full))
    js.write_text(json.dumps({"date": date, "full": full, "machine": info,
                              "results": [r.to_dict() for r in rows]}, indent=2) + "\n")
    return md, js


def print_table(rows: list[Result], console: Console) -> None:
    """The table without the long ours/baseline descriptions (those are in latest.md)."""
    table = Table(title="BrainSegFounder benchmarks (ratio = ours / baseline)")
    keep = [0, 3, 4, 5, 6, 7, 8]
    for i in keep:
        table.add_column(HEADER[i], overflow="fold")
    colour = {"met": "green", "missed": "red", "not measured": "dim", "no target": "cyan"}
    for r in rows:
        cells = _cells(r)
        cells[-1] = f"[{colour[r.status]}]{cells[-1]}[/]"
        table.add_row(*(cells[i] for i in keep))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the paper's sizes instead of CPU-sized ones")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for latest.md and latest.json (default: benchmarks/results)")
    args = parser.parse_args(argv)
    # A pipe or a log file gets a wide table rather than 80 columns of wrapped cells.
    console = Console() if sys.stdout.isatty() else Console(width=140)
    info = machine()
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    rows, failed = run_benchmarks(names, args.full, Console(stderr=True))
    print_table(rows, console)
    md, js = write_results(rows, args.out, args.full, info)
    console.print(f"wrote {md} and {js}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
