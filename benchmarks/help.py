"""How fast each ``python -m brainsegfounder.* --help`` answers, against importing torch.

A user's first contact is ``--help``; it must not wait for torch, Lightning and MONAI to load.
Each row times one command's ``--help`` in a fresh interpreter (subprocess wall time) against a
fresh interpreter that only imports torch (what a heavy import costs on this machine), calls
interleaved so that shared-machine load falls on both alike. Target: the help costs at most half
a torch import (idle, the absolute target: under 1.5 s). ``fit --help
full`` (LightningCLI's complete help, which needs the heavy imports) is the informative last row.

    python -m benchmarks.run --only help
    python -m benchmarks.help            # the table alone, with the load average
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import Result, time_interleaved

__all__ = ["COMMANDS", "help_seconds", "run"]

ROOT = Path(__file__).resolve().parent.parent
#: The package's commands, each run as ``python -m brainsegfounder.<name> --help``.
COMMANDS = ("fit", "demo", "lowlabel", "predict", "evaluate", "report", "export", "calibrate", "robustness",
            "data.synthetic")


def _call(argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def help_seconds(command: str, extra: tuple[str, ...] = (), repeats: int = 3) -> tuple[list[float], list[float]]:
    """Wall seconds of ``command --help`` and of ``python -c 'import torch'``, interleaved."""
    ours, torch_import = time_interleaved(
        [lambda: _call(["-m", f"brainsegfounder.{command}", "--help", *extra]),
         lambda: _call(["-c", "import torch"])], repeats=repeats, warmup=1)
    return ours, torch_import


def run(full: bool = False) -> list[Result]:
    repeats = 5 if full else 3
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for command in COMMANDS:
        if not (ROOT / "brainsegfounder" / (command.replace(".", "/") + ".py")).exists() and \
                not (ROOT / "brainsegfounder" / command.replace(".", "/") / "__main__.py").exists():
            rows.append(Result(f"--help: {command}", f"{command} --help", "import torch", "s", [], [],
                               note="command not in this checkout"))
            continue
        ours, base = help_seconds(command, repeats=repeats)
        rows.append(Result(f"--help: {command}", f"{command} --help", "import torch", "s", ours, base,
                           target_op="<=", target=0.5, note=f"load average {load:.1f}",
                           extra={"help_s_min": min(ours), "torch_import_s_min": min(base)}))
    ours, base = help_seconds("fit", ("full",), repeats=repeats)
    rows.append(Result("--help full: fit (LightningCLI)", "fit --help full", "import torch", "s", ours, base,
                       target=None, note="needs torch + Lightning by design"))
    return rows


if __name__ == "__main__":
    from benchmarks.common import fmt

    print(f"load average {os.getloadavg()}")
    for row in run():
        print(f"{row.name:34s} ours {fmt(row.ours_median)} s  import torch {fmt(row.baseline_median)} s  "
              f"ratio {fmt(row.ratio)}  {row.status}")
