"""Row 5: peak memory (RSS) of training steps with and without gradient checkpointing.

Each measurement runs in a fresh Python process (the peak RSS of a process only grows, so
processes cannot be reused): it builds :class:`SegmentationModule` at the given preset, runs one
training step (forward, Dice + BCE loss, backward, AdamW step) on a batch of the given patch size,
and reports its own peak RSS (``VmHWM``) and its RSS just before the first step. With and
without checkpointing alternate. The ratio is peak(with) / peak(without); the note also gives
each one's growth above the idle process (imports, model, optimiser, batch), which is the part
checkpointing can shrink.

Example:
    >>> from benchmarks.memory import run  # doctest: +SKIP
    >>> run()[0].ratio  # doctest: +SKIP

One measurement from the shell (prints one JSON line)::

    python -m benchmarks.memory --child --preset tiny --feature-size 12 --patch 64 --checkpointing 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import Result

__all__ = ["run", "measure_in_child"]

REPO = Path(__file__).resolve().parent.parent


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _high_water_mib() -> float:
    """Peak RSS of this process image (``VmHWM`` of ``/proc/self/status``), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _child(preset: str, feature_size: int, patch: int, batch_size: int, checkpointing: bool,
           steps: int = 1) -> dict:
    import torch

    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    torch.manual_seed(0)
    model = SegmentationModule(backbone=Backbone(preset, feature_size, gradient_checkpointing=checkpointing),
                               in_channels=4, regions="brats2021", modalities=["flair", "t1ce", "t1", "t2"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 4, patch, patch, patch)
    label = torch.randint(0, 3, (batch_size, 1, patch, patch, patch)).to(torch.uint8)
    y = model.scheme.to_regions(label)
    model.train()
    idle = _current_rss_mib()
    for _ in range(steps):
        loss = model.loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    # VmHWM is this process image's own high-water mark. getrusage's ru_maxrss is not: Linux carries
    # it across fork + exec, so a child of a large runner reported the runner's RSS at fork time
    # (4059 MiB with and without checkpointing, while the step itself peaked near 1.6 GiB).
    peak = _high_water_mib()
    return {"peak_mib": peak, "idle_mib": idle, "step_mib": peak - idle}


def measure_in_child(preset: str, feature_size: int, patch: int, batch_size: int, checkpointing: bool,
                     timeout: float = 1800) -> dict:
    """Peak and pre-step RSS (MiB) of one training step, measured in a fresh process."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--child", "--preset", preset,
           "--feature-size", str(feature_size), "--patch", str(patch), "--batch-size", str(batch_size),
           "--checkpointing", str(int(checkpointing))]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(full: bool = False, preset: str | None = None, feature_size: int | None = None,
        patch: int | None = None, batch_size: int | None = None, repeats: int | None = None) -> list[Result]:
    """Measure row 5. Defaults: tiny preset, feature size 12, 64^3, batch 1 (``full``: small, 48, 96^3, batch 2)."""
    preset = preset or ("small" if full else "tiny")
    feature_size = feature_size or (48 if full else 12)
    patch = patch or (96 if full else 64)
    batch_size = batch_size or (2 if full else 1)
    # Peak RSS hardly varies between runs of the same step; one process each unless ``full``.
    repeats = repeats or (2 if full else 1)
    with_cp, without = [], []
    for _ in range(repeats):
        without.append(measure_in_child(preset, feature_size, patch, batch_size, False))
        with_cp.append(measure_in_child(preset, feature_size, patch, batch_size, True))

    def median(rows, key):
        return statistics.median(r[key] for r in rows)

    note = (f"{preset} preset, feature size {feature_size}, {patch}^3, batch {batch_size}, CPU fp32, one "
            f"training step (AdamW state included) per fresh process, {repeats} process(es) each. "
            f"Growth above the idle process: "
            f"{median(with_cp, 'step_mib'):.0f} MiB with vs {median(without, 'step_mib'):.0f} MiB without "
            "checkpointing. MONAI's use_checkpoint recomputes the Swin blocks only; the CNN encoder/decoder "
            "convolutions at full resolution are not checkpointed.")
    return [Result(name="5. memory: gradient checkpointing", ours="with checkpointing",
                   baseline="without", unit="MiB peak RSS",
                   ours_samples=[r["peak_mib"] for r in with_cp],
                   baseline_samples=[r["peak_mib"] for r in without], target_op="<=", target=None,
                   note=note, extra={"with": with_cp, "without": without, "preset": preset,
                                     "feature_size": feature_size, "patch": patch, "batch_size": batch_size})]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help="measure once and print one JSON line")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--feature-size", type=int, default=12)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--checkpointing", type=int, default=0)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.preset, args.feature_size, args.patch, args.batch_size,
                                bool(args.checkpointing))))
    else:
        for row in run(preset=args.preset, feature_size=args.feature_size, patch=args.patch,
                       batch_size=args.batch_size):
            print(row.to_dict())


if __name__ == "__main__":
    main()
