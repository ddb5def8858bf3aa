"""What pretraining bought in the demo: its fine-tuned test Dice beside the same fine-tuning from scratch.

The demo's last line compares, on its own held-out test brains, the model fine-tuned from Stage 2
with the same fine-tuning (same config, data, split, seed and steps) started from random weights.
The scratch run is one more fine-tune (``python -m brainsegfounder.demo --stages finetune``, about
6 minutes on 2 cores), so by default its figure is read from ``experiments/demo_scratch.json``,
recorded with the command that measured it; ``python -m brainsegfounder.demo --scratch`` runs it
live instead. Both runs are deterministic (the demo's configs turn on deterministic algorithms), so
the recorded figure is what the live run gives on the same library versions.

The record holds the SHA-256 of ``experiments/demo.yaml``: after a change to the fine-tuning
config it is stale, and the line says so instead of comparing unlike runs
(``tests/test_demo_scratch.py`` fails until it is re-recorded with
``python -m brainsegfounder.demo --stages finetune --record_scratch``).

Example:
    >>> ft = {"test/dice_mean": 0.90, "test/dice_tc": 0.86, "test/dice_wt": 0.91, "test/dice_et": 0.93}
    >>> scratch = {"test/dice_mean": 0.85, "test/dice_tc": 0.80, "test/dice_wt": 0.88, "test/dice_et": 0.87}
    >>> print(comparison_line(ft, {"metrics": scratch, "steps": 100, "command": "demo --stages finetune"}, live=True))
    Pretraining bought +0.0500 mean test Dice: 0.9000 fine-tuned from Stage 2 vs 0.8500 from scratch, same 100 steps (TC +0.0600, WT +0.0300, ET +0.0600; scratch run here by demo --stages finetune). 3 test brains, one seed: a demonstration, not a study (docs/results.md).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["REFERENCE", "config_digest", "load_reference", "record_reference", "comparison_line"]

REFERENCE = Path(__file__).resolve().parents[2] / "experiments" / "demo_scratch.json"
REGIONS = ("tc", "wt", "et")


def config_digest(config: str | Path) -> str:
    """SHA-256 of the fine-tuning config's bytes (what the recorded scratch figure was made with)."""
    return hashlib.sha256(Path(config).read_bytes()).hexdigest()


def load_reference(config: str | Path, path: str | Path = REFERENCE) -> tuple[dict | None, str]:
    """``(record, why)``: the recorded scratch run if it matches ``config``, else ``None`` and the reason."""
    path = Path(path)
    if not path.is_file():
        return None, f"no recorded scratch figure ({path.name} is missing)"
    record = json.loads(path.read_text())
    if record.get("config_sha256") != config_digest(config):
        return None, (f"the recorded scratch figure ({path.name}) was made with another {Path(config).name}; "
                      "re-record it with: python -m brainsegfounder.demo --stages finetune --record_scratch")
    return record, ""


def record_reference(metrics: Mapping[str, float], config: str | Path, steps: int, seconds: float,
                     path: str | Path = REFERENCE) -> Path:
    """Write the scratch run's test metrics with what made them (config digest, command, date, load)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    record = {
        "metrics": {k: round(float(v), 6) for k, v in sorted(metrics.items()) if k.startswith("test/")},
        "steps": steps,
        "seconds": round(seconds),
        "config_sha256": config_digest(config),
        "command": "python -m brainsegfounder.demo --stages finetune",
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_1min": load,
    }
    Path(path).write_text(json.dumps(record, indent=2) + "\n")
    return Path(path)


def comparison_line(finetuned: Mapping[str, float], reference: Mapping | None, live: bool = False,
                    why: str = "") -> str:
    """One line: the fine-tuned test Dice against scratch's, mean then per region, and where scratch came from."""
    if reference is None:
        return (f"Pretraining vs scratch: not compared ({why}). "
                "`python -m brainsegfounder.demo --scratch` runs the scratch fine-tune here (~6 min).")
    scratch = reference["metrics"]
    mean_ft, mean_sc = float(finetuned["test/dice_mean"]), float(scratch["test/dice_mean"])
    regions = ", ".join(f"{r.upper()} {float(finetuned[f'test/dice_{r}']) - float(scratch[f'test/dice_{r}']):+.4f}"
                        for r in REGIONS if f"test/dice_{r}" in finetuned and f"test/dice_{r}" in scratch)
    where = (f"scratch run here by {reference['command']}" if live else
             f"scratch recorded {reference.get('measured', '')} by `{reference['command']}`; --scratch reruns it")
    verb = "bought" if mean_ft >= mean_sc else "cost"
    return (f"Pretraining {verb} {mean_ft - mean_sc:+.4f} mean test Dice: {mean_ft:.4f} fine-tuned from Stage 2 vs "
            f"{mean_sc:.4f} from scratch, same {reference['steps']} steps ({regions}; {where}). "
            "3 test brains, one seed: a demonstration, not a study (docs/results.md).")
