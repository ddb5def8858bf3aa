"""What keeping freed memory in the process buys (``brainsegfounder.utils.allocator``), per CPU step.

Each sample is a fresh interpreter that builds the tiny Swin UNETR and times a few steps; the
baseline interpreter runs with ``BRAINSEGFOUNDER_KEEP_FREED_MEMORY=0`` (glibc's defaults), ours
with the setting every command applies. The two alternate so that load falls on both alike.
Rows: a training step (batch 2 x 4 x 64^3, forward + backward + AdamW) and a sliding-window
prediction of one 2 mm BraTS-sized volume (96 x 120 x 78, 64^3 windows, overlap 0.25); time
per step, ratio = ours / baseline (target: at most 0.8, i.e. at least 1.25x faster).

    python -m benchmarks.allocator          # the table, with the load average
    python -m benchmarks.run --only allocator
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import Result

__all__ = ["WORK", "step_seconds", "run"]

ROOT = Path(__file__).resolve().parent.parent

#: The measured program: prints {"seconds": per step, "system": system CPU s per step}.
WORK = r"""
import json, resource, sys, time, torch
from brainsegfounder.utils.allocator import keep_freed_memory
keep_freed_memory()
from monai.inferers import sliding_window_inference
from monai.networks.nets import SwinUNETR
kind, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
net = SwinUNETR(in_channels=4, out_channels=3, feature_size=12)
opt = torch.optim.AdamW(net.parameters(), 1e-3)
def train():
    opt.zero_grad(); net(torch.randn(2, 4, 64, 64, 64)).mean().backward(); opt.step()
volume = torch.randn(1, 4, 96, 120, 78)
def infer():
    with torch.inference_mode():
        sliding_window_inference(volume, (64, 64, 64), 2, net.eval(), overlap=0.25)
work = train if kind == "train" else infer
work()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    work()
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": (time.perf_counter() - t0) / steps, "system": (r1.ru_stime - r0.ru_stime) / steps}))
"""


def step_seconds(kind: str, keep: bool, steps: int = 3) -> dict:
    """Seconds per ``kind`` step (``train`` | ``predict``) in a fresh interpreter, setting on or off."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRAINSEGFOUNDER_KEEP_FREED_MEMORY": "1" if keep else "0"}
    out = subprocess.run([sys.executable, "-c", WORK, kind, str(steps)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(full: bool = False) -> list[Result]:
    repeats, steps = (3, 5) if full else (2, 3)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for kind, title in (("train", "training step"), ("predict", "sliding-window predict")):
        ours, base, ours_sys, base_sys = [], [], [], []
        for _ in range(repeats):
            b = step_seconds(kind, keep=False, steps=steps)
            o = step_seconds(kind, keep=True, steps=steps)
            base.append(b["seconds"]), base_sys.append(b["system"])
            ours.append(o["seconds"]), ours_sys.append(o["system"])
        rows.append(Result(f"allocator: {title}", "freed memory kept", "glibc defaults", "s/step", ours, base,
                           target_op="<=", target=0.8, note=f"load average {load:.1f}",
                           extra={"system_s_per_step_ours": min(ours_sys), "system_s_per_step_baseline": min(base_sys)}))
    return rows


if __name__ == "__main__":
    from benchmarks.common import fmt

    print(f"load average {os.getloadavg()}")
    for row in run():
        print(f"{row.name:36s} ours {fmt(row.ours_median)} s  glibc defaults {fmt(row.baseline_median)} s  "
              f"ratio {fmt(row.ratio)}  {row.status}  (system s/step {row.extra})")
