"""What pretraining bought in the demo: its fine-tuned test Dice beside the same fine-tuning from scratch.

The demo's last line compares, on its own held-out test brains, the model fine-tuned from Stage 2
with the same fine-tuning (same config, data, split, seed and steps) started from random weights.
The scratch run is one more fine-tune (``python -m brainsegfounder.demo --stages finetune``, about
6 minutes on 2 cores), so by default its figure is read from ``experiments/demo_scratch.json``,
recorded with the command that measured it, one record per machine; ``python -m brainsegfounder.demo
--scratch`` runs it live instead. Both runs are deterministic (the demo's configs turn on deterministic algorithms), so
the recorded figure is what the live run gives on the same library versions, the same kind of CPU
and the same number of threads. On another CPU the generated images and the sums differ in their
last bits, which moves three test brains' Dice by about 0.01 (seen: mean 0.8686 on one machine,
0.8827 on an AMD EPYC, same commit and lock), enough to flip the sign of the comparison; so the
record names its machine (:func:`machine`), the file keeps one record per machine, and on a
machine without its own record the line says so instead of claiming what pretraining bought.

The record holds the SHA-256 of ``experiments/demo.yaml``: after a change to the fine-tuning
config it is stale, and the line says so instead of comparing unlike runs
(``tests/test_demo_scratch.py`` fails until it is re-recorded with
``python -m brainsegfounder.demo --stages finetune --record_scratch``).

Example:
    >>> ft = {"test/dice_mean": 0.90, "test/dice_tc": 0.86, "test/dice_wt": 0.91, "test/dice_et": 0.93}
    >>> scratch = {"test/dice_mean": 0.85, "test/dice_tc": 0.80, "test/dice_wt": 0.88, "test/dice_et": 0.87}
    >>> print(comparison_line(ft, {"metrics": scratch, "steps": 100, "command": "demo --stages finetune"}, live=True))
    Pretraining bought +0.0500 mean test Dice: 0.9000 fine-tuned from Stage 2 vs 0.8500 from scratch, same 100 steps (TC +0.0600, WT +0.0300, ET +0.0600; scratch run here by demo --stages finetune). 3 test brains, one seed: a demonstration, not a study (docs/results.md).
    >>> elsewhere = {"metrics": scratch, "steps": 100, "command": "c", "machine": "CPU A, 2 threads"}
    >>> print(comparison_line(ft, elsewhere, here="CPU B, 2 threads"))  # doctest: +ELLIPSIS
    Pretraining vs a scratch figure recorded on CPU A, 2 threads, not this one (CPU B, 2 threads): +0.0500 mean test Dice, ... so this is no verdict: ...
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["REFERENCE", "config_digest", "machine", "load_reference", "record_reference", "comparison_line"]

REFERENCE = Path(__file__).resolve().parents[2] / "experiments" / "demo_scratch.json"
REGIONS = ("tc", "wt", "et")


def config_digest(config: str | Path) -> str:
    """SHA-256 of the fine-tuning config's bytes (what the recorded scratch figure was made with)."""
    return hashlib.sha256(Path(config).read_bytes()).hexdigest()


def machine() -> str:
    """This machine as the record names it: the CPU's model and the threads torch computes with.

    Example:
        >>> "thread" in machine()
        True
    """
    import platform

    import torch

    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text(errors="replace").splitlines()
                    if line.lower().startswith("model name")), "")
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads != 1 else ''}"


def _records(path: Path) -> list[dict]:
    """The file's records: ``{"records": [...]}``, one per machine (a lone record, the older form, is one)."""
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data["records"]) if "records" in data else [data]


def load_reference(config: str | Path, path: str | Path = REFERENCE, here: str | None = None
                   ) -> tuple[dict | None, str]:
    """``(record, why)``: the recorded scratch run that matches ``config``, else ``None`` and the reason.

    The file keeps one record per machine; the one made on ``here`` (default :func:`machine`) is
    preferred, else the latest that matches ``config`` (which :func:`comparison_line` shows without
    a verdict).
    """
    path = Path(path)
    records = _records(path)
    if not records:
        return None, f"no recorded scratch figure ({path.name} is missing)"
    digest = config_digest(config)
    matching = [r for r in records if r.get("config_sha256") == digest]
    if not matching:
        return None, (f"the recorded scratch figure ({path.name}) was made with another {Path(config).name}; "
                      "re-record it with: python -m brainsegfounder.demo --stages finetune --record_scratch")
    here = here or machine()
    return next((r for r in matching if r.get("machine") == here), matching[-1]), ""


def record_reference(metrics: Mapping[str, float], config: str | Path, steps: int, seconds: float,
                     path: str | Path = REFERENCE) -> Path:
    """Add this machine's scratch run (test metrics, config digest, command, date, load) to the file.

    A record made earlier on the same machine is replaced; other machines' records are kept.
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    record = {
        "metrics": {k: round(float(v), 6) for k, v in sorted(metrics.items()) if k.startswith("test/")},
        "steps": steps,
        "seconds": round(seconds),
        "config_sha256": config_digest(config),
        "command": "python -m brainsegfounder.demo --stages finetune",
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_1min": load,
        "machine": machine(),
    }
    path = Path(path)
    kept = [r for r in _records(path) if r.get("machine") != record["machine"]]
    path.write_text(json.dumps({"records": [*kept, record]}, indent=2) + "\n")
    return path


def comparison_line(finetuned: Mapping[str, float], reference: Mapping | None, live: bool = False,
                    why: str = "", here: str | None = None) -> str:
    """One line: the fine-tuned test Dice against scratch's, mean then per region, and where scratch came from.

    ``here`` names this machine (default :func:`machine`); a recorded figure from another machine
    (or one that names none) is shown as such, without a verdict: across CPUs the demo's figures
    move by about its own noise.
    """
    if reference is None:
        return (f"Pretraining vs scratch: not compared ({why}). "
                "`python -m brainsegfounder.demo --scratch` runs the scratch fine-tune here (~6 min).")
    scratch = reference["metrics"]
    mean_ft, mean_sc = float(finetuned["test/dice_mean"]), float(scratch["test/dice_mean"])
    regions = ", ".join(f"{r.upper()} {float(finetuned[f'test/dice_{r}']) - float(scratch[f'test/dice_{r}']):+.4f}"
                        for r in REGIONS if f"test/dice_{r}" in finetuned and f"test/dice_{r}" in scratch)
    where = (f"scratch run here by {reference['command']}" if live else
             f"scratch recorded {reference.get('measured', '')} by `{reference['command']}`; --scratch reruns it")
    recorded_on = reference.get("machine")
    if not live and recorded_on != (here or machine()):
        on = f"on {recorded_on}" if recorded_on else "on a machine it does not name"
        return (f"Pretraining vs a scratch figure recorded {on}, not this one ({here or machine()}): "
                f"{mean_ft - mean_sc:+.4f} mean test Dice, {mean_ft:.4f} fine-tuned from Stage 2 vs {mean_sc:.4f} "
                f"from scratch, same {reference['steps']} steps ({regions}). Across CPUs the demo's figures move by "
                "about its own noise (0.01), so this is no verdict: `python -m brainsegfounder.demo --scratch` "
                "runs scratch here (~6 min).")
    verb = "bought" if mean_ft >= mean_sc else "cost"
    return (f"Pretraining {verb} {mean_ft - mean_sc:+.4f} mean test Dice: {mean_ft:.4f} fine-tuned from Stage 2 vs "
            f"{mean_sc:.4f} from scratch, same {reference['steps']} steps ({regions}; {where}). "
            "3 test brains, one seed: a demonstration, not a study (docs/results.md).")
