"""The CPU demo: ``python -m brainsegfounder.demo`` (or ``make demo``).

Generates a synthetic BraTS 2021 set on real MNI152 anatomy when it is missing, fine-tunes the
tiny Swin UNETR with ``experiments/demo.yaml`` and prints the held-out Dice per region.
Every run writes a new version folder under ``runs/demo``; nothing is overwritten.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from brainsegfounder.data import synthetic
from brainsegfounder.fit import main as fit_main

__all__ = ["run_demo"]

CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "demo.yaml"


def run_demo(data: str | Path = "data/synthetic_brats2021", subjects: int = 15,
             config: str | Path = CONFIG, extra_args: list[str] | None = None) -> dict[str, float]:
    """Generate data if needed, fine-tune, and return the best checkpoint's held-out metrics."""
    console = Console()
    start = time.perf_counter()
    data = Path(data)
    if not any(data.glob("BraTS2021_*")):
        console.print(f"[bold]generating[/] {subjects} synthetic BraTS 2021 subjects in {data}")
        synthetic.generate("brats2021", data, subjects=subjects, seed=0)
    cli = fit_main(["--config", str(config), f"--data.init_args.root={data}", *(extra_args or [])])
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return getattr(cli, "best_metrics", {})


if __name__ == "__main__":
    run_demo()
