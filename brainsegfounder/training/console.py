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

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["metrics_table", "print_metrics", "print_outputs"]


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


def print_outputs(console, written: Sequence[tuple[str, str | Path]], commands: Sequence[tuple[str, str]],
                  title: str = "what was written where, what to run next") -> None:
    """Print ``(what, path)`` rows, then ``(purpose, command line)`` rows, each path and command whole.

    No box and no wrapping by rich: a long path or command is one line that the terminal wraps
    itself, so it copies as it is (a panel at 80 columns cut ``best-step=75.ckpt`` to
    ``best-step=75.c`` and broke commands across its borders).

    >>> import io
    >>> from rich.console import Console
    >>> console = Console(width=40, record=True, file=io.StringIO())
    >>> line = "python -m brainsegfounder.predict --ckpt runs/demo/best-step=75.ckpt --input data/x"
    >>> print_outputs(console, [("best checkpoint", "runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt")],
    ...               [("predict", line)])
    >>> text = console.export_text()
    >>> line in text.splitlines(), "runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt" in text
    (True, True)
    """
    from rich.markup import escape

    console.rule(title, align="left")
    width = max((len(what) for what, _ in written), default=0)
    for what, path in written:
        console.print(f"[bold]{escape(what):<{width}}[/]  {escape(str(path))}", soft_wrap=True, highlight=False)
    for purpose, line in commands:
        console.print()
        console.print(f"[dim]# {escape(purpose)}[/]", soft_wrap=True, highlight=False)
        console.print(escape(line), soft_wrap=True, highlight=False)
