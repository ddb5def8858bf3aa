"""Rich tables and panels for what a person reads at the end of a run.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> console = Console(width=40, record=True, file=io.StringIO())
    >>> print_metrics({"test/dice_tc": 0.91, "test/dice_wt": 0.87}, title="held-out test Dice", prefix="test/",
    ...               source="runs/demo/finetune/version_0/checkpoints/best-step=50.ckpt", console=console)
    >>> text = console.export_text()
    >>> "runs/demo/finetune/version_0/checkpoints/best-step=50.ckpt" in text  # one piece, never wrapped
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = ["metrics_table", "print_metrics", "outputs_panel"]


def metrics_table(metrics: Mapping[str, float], title: str = "metrics", prefix: str = "") -> Table:
    """A two-column table of the metrics whose names start with ``prefix`` (sorted by name)."""
    # A table is as wide as its columns; a longer title would wrap over several lines.
    table = Table(title=title, min_width=len(title) + 2)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    for name in sorted(metrics):
        if name.startswith(prefix):
            table.add_row(name, f"{float(metrics[name]):.4f}")
    return table


def print_metrics(metrics: Mapping[str, float], title: str = "metrics", prefix: str = "",
                  console: Console | None = None, source: str | Path | None = None) -> None:
    """Print :func:`metrics_table` to ``console`` (default: standard output), then ``source`` on its own line.

    A path inside the table's title or a cell would be cut mid-word at the table's width; on its
    own line (``soft_wrap``) it stays one piece that a terminal folds, and a mouse can copy.
    """
    console = console or Console()
    console.print(metrics_table(metrics, title, prefix))
    if source:
        console.print(Text.assemble(("checkpoint: ", "bold"), str(source)), soft_wrap=True)


def outputs_panel(written: Sequence[tuple[str, str | Path]], commands: Sequence[tuple[str, str]],
                  title: str = "what was written where, what to run next") -> Panel:
    """A short panel: ``(what, path)`` rows, then ``(purpose, command line)`` rows.

    Paths and commands are printed whole (no wrapping inside them) so that they can be copied.

    >>> import io
    >>> from rich.console import Console
    >>> console = Console(width=60, record=True, file=io.StringIO())
    >>> console.print(outputs_panel([("data", "data/x")], [("predict", "python -m brainsegfounder.predict")]))
    >>> "python -m brainsegfounder.predict" in console.export_text()
    True
    """
    places = Table.grid(padding=(0, 2))
    places.add_column(style="bold", no_wrap=True)
    places.add_column(no_wrap=True, overflow="fold")
    for what, path in written:
        places.add_row(what, str(path))
    lines: list = [places, Text("")]
    for purpose, line in commands:
        lines.append(Text(f"# {purpose}", style="dim"))
        lines.append(Text(line, no_wrap=False, overflow="fold"))
    return Panel(Group(*lines), title=title, expand=False)
