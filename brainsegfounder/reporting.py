"""Rich tables for what a person reads at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

__all__ = ["metrics_table", "print_metrics"]


def metrics_table(metrics: Mapping[str, float], title: str = "metrics", prefix: str = "") -> Table:
    """A two-column table of the metrics whose names start with ``prefix`` (sorted by name)."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        if name.startswith(prefix):
            table.add_row(name, f"{float(metrics[name]):.4f}")
    return table


def print_metrics(metrics: Mapping[str, float], title: str = "metrics", prefix: str = "",
                  console: Console | None = None) -> None:
    """Print :func:`metrics_table` to ``console`` (default: standard output)."""
    (console or Console()).print(metrics_table(metrics, title, prefix))
