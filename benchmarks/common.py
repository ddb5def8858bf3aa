"""What every benchmark shares: timing repeats, a result row, synthetic data, the machine's description.

Each benchmark module in this folder exposes ``run(full: bool = False) -> list[Result]``; the
runner (``python -m benchmarks.run``) collects them into one markdown table and one JSON file.
Every row is a ratio of ours against a baseline measured side by side in the same process, since
the machines are shared and absolute times are noisy.

Example:
    >>> from benchmarks.common import Result
    >>> row = Result("pipeline", "ours", "theirs", "patches/s", [4.0, 5.0, 6.0], [2.0, 2.5, 3.0],
    ...              target_op=">=", target=2.0)
    >>> row.ratio, row.status
    (2.0, 'met')
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Result", "time_repeats", "time_interleaved", "machine", "synthetic_brats", "fmt"]


@dataclass
class Result:
    """One row: a measured quantity for ours and for the baseline, and the target on their ratio.

    ``ratio`` is median(ours) / median(baseline) of the quantity in ``unit``; ``target_op`` is
    ``">="`` (e.g. throughput, at least 2x) or ``"<="`` (e.g. time, at most 1.05x); ``target``
    ``None`` means the row informs without a target. A row without samples was not measured (no
    GPU, module not merged yet, the benchmark failed); ``note`` says why.
    """

    name: str
    ours: str
    baseline: str
    unit: str
    ours_samples: list[float]
    baseline_samples: list[float]
    target_op: str = "<="
    target: float | None = 1.0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return bool(self.ours_samples) and bool(self.baseline_samples)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours_samples) if self.ours_samples else float("nan")

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_samples) if self.baseline_samples else float("nan")

    @property
    def ratio(self) -> float:
        return self.ours_median / self.baseline_median if self.baseline_median else float("nan")

    @property
    def met(self) -> bool:
        if not self.measured or self.target is None or math.isnan(self.ratio):
            return False
        return self.ratio >= self.target if self.target_op == ">=" else self.ratio <= self.target

    @property
    def status(self) -> str:
        """``met``, ``missed``, ``no target`` or ``not measured``."""
        if not self.measured:
            return "not measured"
        if self.target is None:
            return "no target"
        return "met" if self.met else "missed"

    @property
    def target_text(self) -> str:
        return "-" if self.target is None else f"{self.target_op} {self.target:g}x"

    def to_dict(self) -> dict:
        def span(samples: list[float]) -> list[float] | None:
            return [min(samples), max(samples)] if samples else None

        def finite(v: float) -> float | None:  # JSON has no NaN
            return None if math.isnan(v) else v

        return {**asdict(self), "ours_median": finite(self.ours_median),
                "baseline_median": finite(self.baseline_median),
                "ours_min_max": span(self.ours_samples), "baseline_min_max": span(self.baseline_samples),
                "ratio": finite(self.ratio), "met": self.met, "status": self.status}


def fmt(value: float) -> str:
    """Three significant digits, ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"


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


def time_interleaved(fns: Sequence[Callable[[], object]], repeats: int = 3,
                     warmup: int = 1) -> list[list[float]]:
    """Seconds of each of ``fns``, called in turn (a, b, a, b, ...), so that load that comes and
    goes on a shared machine falls on all of them alike. Returns one sample list per function."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            samples[i].append(time.perf_counter() - start)
    return samples


def synthetic_brats(subjects: int, spacing: float = 2.0, seed: int = 0) -> Path:
    """A synthetic BraTS 2021 set for the benchmarks, written once into the temp folder and reused.

    Existing subjects are kept (the generator skips them), so a second run costs nothing.
    """
    from brainsegfounder.data.synthetic import generate

    root = Path(tempfile.gettempdir()) / "brainsegfounder-bench" / f"brats2021-{spacing:g}mm-seed{seed}"
    generate("brats2021", root, subjects=subjects, seed=seed, spacing=spacing)
    return root


def machine() -> dict:
    """Processor, core count, load, memory, and library versions, for the results file."""
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
        if model:
            info["processor"] = model
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info
