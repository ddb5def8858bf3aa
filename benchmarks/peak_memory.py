"""Peak memory and wall time of a whole command, its child processes included.

Samples every process of the command's tree every ``--every`` seconds from ``/proc`` and keeps the
peak of the summed RSS and of the summed PSS (proportional set size: a page shared by a forked
loader worker and its parent counts once, split between them; RSS counts it in each). The demo's
row in the README and docs/benchmarks.md comes from::

    python -m benchmarks.peak_memory -- python -m brainsegfounder.demo --run_dir /tmp/demo_a
    BRAINSEGFOUNDER_KEEP_FREED_MEMORY=0 python -m benchmarks.peak_memory -- python -m brainsegfounder.demo ...

It prints one JSON line (``peak_rss_gib``, ``peak_pss_gib``, ``wall_s``, ``exit``) after the
command's own output; ``--out FILE`` also writes it, ``--timeline FILE.csv`` every sample. Linux only (``/proc``).

Example:
    >>> from benchmarks.peak_memory import measure
    >>> record = measure(["python", "-c", "x = bytearray(300 * 2**20)"], every=0.05)
    >>> record["exit"], record["peak_rss_gib"] > 0.25
    (0, True)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["measure", "tree_memory", "main"]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def _kib(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """``(RSS, PSS)`` in KiB summed over ``pid`` and all its descendants, now."""
    rss = pss = 0
    for p in _tree(pid):
        rss += _kib(f"/proc/{p}/status", "VmRSS:")
        pss += _kib(f"/proc/{p}/smaps_rollup", "Pss:")
    return rss, pss


def measure(command: list[str], every: float = 0.5, timeline: str | None = None) -> dict:
    """Run ``command`` to its end, sampling its tree's memory; return the peaks (GiB) and wall time (s).

    ``timeline``: also write every sample (seconds, RSS GiB, PSS GiB, processes) to this CSV, to see
    which part of a long command holds the peak.
    """
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak_rss = peak_pss = 0
    rows = ["seconds,rss_gib,pss_gib,processes"]
    while process.poll() is None:
        rss, pss = tree_memory(process.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        if timeline:
            rows.append(f"{time.perf_counter() - start:.1f},{rss / 2**20:.3f},{pss / 2**20:.3f},{len(_tree(process.pid))}")
        time.sleep(every)
    if timeline:
        Path(timeline).write_text("\n".join(rows) + "\n")
    return {"command": " ".join(command), "exit": process.returncode,
            "peak_rss_gib": round(peak_rss / 2**20, 3), "peak_pss_gib": round(peak_pss / 2**20, 3),
            "wall_s": round(time.perf_counter() - start, 1), "load_avg_1m_at_end": os.getloadavg()[0],
            "keep_freed_memory": os.environ.get("BRAINSEGFOUNDER_KEEP_FREED_MEMORY", "default")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peak_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--out", default=None, help="also write the JSON record here")
    parser.add_argument("--timeline", default=None, help="also write every sample to this CSV")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    record = measure(command, args.every, args.timeline)
    line = json.dumps(record)
    print(line, flush=True)
    if args.out:
        Path(args.out).write_text(line + "\n")
    return 0 if record["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
