"""What every benchmark shares: timing repeats, a result row, and the machine's description.

Each benchmark module in this folder exposes ``run(full: bool = False) -> list[Result]``; the
runner (``python -m benchmarks.run``) collects them into one markdown table and one JSON file.
Every row is a ratio of ours against a baseline measured side by side in the same process, since
the machines are shared and absolute times are noisy.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

__all__ = ["Result", "time_repeats", "machine"]


@dataclass
class Result:
    """One row: a measured quantity for ours and for the baseline, and the target on their ratio.

    ``ratio`` is median(ours) / median(baseline) of the quantity in ``unit``; ``target_op`` is
    ``">="`` (e.g. throughput, at least 2x) or ``"<="`` (e.g. time, at most 1.05x).
    """

    name: str
    ours: str
    baseline: str
    unit: str
    ours_samples: list[float]
    baseline_samples: list[float]
    target_op: str = "<="
    target: float = 1.0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours_samples)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_samples)

    @property
    def ratio(self) -> float:
        return self.ours_median / self.baseline_median if self.baseline_median else float("nan")

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.target_op == ">=" else self.ratio <= self.target

    def to_dict(self) -> dict:
        return {**asdict(self), "ours_median": self.ours_median, "baseline_median": self.baseline_median,
                "ours_min_max": [min(self.ours_samples), max(self.ours_samples)],
                "baseline_min_max": [min(self.baseline_samples), max(self.baseline_samples)],
                "ratio": self.ratio, "met": self.met}


def time_repeats(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def machine() -> dict:
    """Processor, core count, memory, and library versions, for the results file."""
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info
