"""Peak memory and time of one SSL step with MONAI's window attention and with chunked attention.

Each setting runs in a fresh interpreter (every command's allocator setting applied, as in the
demo): the tiny preset, feature size 12, an SSL batch of 2 x 2 x 64^3 (4 views) through
``SSLPretrainModule``'s network and losses, AdamW. It prints the peak ``VmHWM`` and the median
time of steps 2..N per setting, rounds interleaved so that load falls on all alike, then the
load average. The table in docs/benchmarks.md ("The cause, and the fix") comes from::

    python -m benchmarks.attention_memory            # chunks 0 (MONAI's), 64 (default), 16
    python -m benchmarks.attention_memory --chunks 0 64 --rounds 3 --steps 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["WORK", "one_setting", "main"]

ROOT = Path(__file__).resolve().parent.parent

#: The measured program: argv = chunk (0: MONAI's attention), steps; prints one JSON line.
WORK = r"""
import json, sys, time, torch
from brainsegfounder.utils.allocator import keep_freed_memory
keep_freed_memory()
from brainsegfounder.models.backbone import Backbone
from brainsegfounder.models.ssl_augment import ssl_views
from brainsegfounder.tasks.ssl import SSLPretrainModule
chunk, steps = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
module = SSLPretrainModule(backbone=Backbone(preset="tiny", feature_size=12, attention_chunk=chunk or None),
                           in_channels=2)
opt = torch.optim.AdamW(module.parameters(), 1e-3)
times = []
for _ in range(steps):
    start = time.perf_counter()
    views = ssl_views(torch.randn(2, 2, 64, 64, 64), max_fraction=0.3, n_cuboids=32)
    opt.zero_grad()
    module.loss_fn(module(views["masked"]), views["labels"], views["rotated"])["total"].backward()
    opt.step()
    times.append(time.perf_counter() - start)
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
later = sorted(times[1:])
print(json.dumps({"peak_gb": round(int(peak) / 1e6, 2), "median_s": round(later[len(later) // 2], 2)}))
"""


def one_setting(chunk: int, steps: int = 6) -> dict:
    """``{"peak_gb", "median_s"}`` of ``steps`` SSL steps with ``attention_chunk=chunk`` (0: MONAI's)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", WORK, str(chunk), str(steps)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attention_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 64, 16], help="0 is MONAI's attention")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    print("| round | attention | peak (GB) | step (s) |\n| --- | --- | --- | --- |")
    for round_ in range(1, args.rounds + 1):
        for chunk in args.chunks:
            record = one_setting(chunk, args.steps)
            name = "MONAI's" if chunk == 0 else f"chunks of {chunk} windows"
            print(f"| {round_} | {name} | {record['peak_gb']} | {record['median_s']} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
