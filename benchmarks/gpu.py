"""Row 6: the small preset on a GPU at 96^3, bf16-mixed, batch 2: step time, peak memory and MFU.

Model FLOP utilisation (MFU) = model FLOPs per training step (forward + backward, counted once by
``torch.utils.flop_counter.FlopCounterMode``) / measured seconds per step / the card's dense
bf16 peak. Steps run through ``Trainer.fit`` with :class:`SegmentationModule` (so the figure is
what users get), timed start-to-start with the device synchronised, first steps dropped. A second
row compares the same run with the network under ``torch.compile``.

Without CUDA both rows are reported as not measured. The card's peak comes from a table of known
cards (dense bf16, no sparsity); set ``BSF_GPU_PEAK_TFLOPS`` for others.

Example:
    >>> from benchmarks.gpu import measure  # doctest: +SKIP
    >>> measure(device="cuda", preset="small", patch=96, batch_size=2)["step_s"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import tempfile
import time

import pytorch_lightning as pl
import torch

from benchmarks.common import Result
from benchmarks.framework_overhead import MODALITIES, make_batches

__all__ = ["run", "measure", "training_flops", "peak_bf16_tflops"]

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets; first match wins.
PEAK_BF16_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
                    ("GH200", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
                    ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0)]


def peak_bf16_tflops(name: str | None) -> float | None:
    """The card's dense bf16 peak in TFLOP/s (``BSF_GPU_PEAK_TFLOPS`` overrides), or None if unknown."""
    if os.environ.get("BSF_GPU_PEAK_TFLOPS"):
        return float(os.environ["BSF_GPU_PEAK_TFLOPS"])
    for key, value in PEAK_BF16_TFLOPS:
        if name and key in name:
            return value
    return None


def training_flops(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, dtype=None) -> int:
    """FLOPs of one forward and backward pass of ``net`` on ``x`` (matrix products and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = copy.deepcopy(net)
    counter = FlopCounterMode(display=False)
    autocast = torch.autocast(x.device.type, dtype=dtype) if dtype else torch.autocast(x.device.type, enabled=False)
    with counter, autocast:
        loss = loss_fn(net(x), y)
        loss.backward()
    return int(counter.get_total_flops())


class _SyncedStepTimer(pl.Callback):
    def __init__(self):
        self.starts: list[float] = []
        self.end = 0.0

    def _now(self, device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(self._now(pl_module.device))

    def on_train_end(self, trainer, pl_module):
        self.end = self._now(pl_module.device)

    @property
    def steps(self) -> list[float]:
        marks = [*self.starts, self.end]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def measure(device: str = "cuda", preset: str = "small", feature_size: int | None = None, patch: int = 96,
            batch_size: int = 2, precision: str = "bf16-mixed", compile: bool = False, steps: int = 12,
            skip: int = 3, gradient_checkpointing: bool = False) -> dict:
    """Train ``steps`` steps through ``Trainer.fit``; per-step seconds (first ``skip`` dropped),
    peak device memory (GiB, CUDA only), FLOPs per step, and MFU where the card's peak is known."""
    from brainsegfounder.models.backbone import Backbone
    from brainsegfounder.tasks.segmentation import SegmentationModule

    pl.seed_everything(0, verbose=False)
    model = SegmentationModule(backbone=Backbone(preset, feature_size, gradient_checkpointing=gradient_checkpointing),
                               in_channels=4, regions="brats2021", modalities=MODALITIES, roi_size=patch)
    batches = make_batches(steps, batch_size, patch)
    dev = torch.device(device)
    x = torch.cat([batches[0][m] for m in MODALITIES], 1).to(dev)
    y = model.scheme.to_regions(batches[0]["label"]).to(dev)
    flops = training_flops(model.net.to(dev), x, y, model.loss_fn,
                           torch.bfloat16 if precision.startswith("bf16") else None)
    if compile:
        model.net = torch.compile(model.net)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    timer = _SyncedStepTimer()
    with tempfile.TemporaryDirectory() as log_dir:
        trainer = pl.Trainer(accelerator="gpu" if dev.type == "cuda" else "cpu", devices=1, precision=precision,
                             max_steps=steps, logger=pl.loggers.CSVLogger(log_dir), log_every_n_steps=5,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
                             default_root_dir=log_dir)
        trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    step_s = timer.steps[skip:]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else None
    peak = peak_bf16_tflops(name) if dev.type == "cuda" else None
    median = sorted(step_s)[len(step_s) // 2]
    return {"step_s": step_s, "flops_per_step": flops, "tflops_per_s": [flops / s / 1e12 for s in step_s],
            "peak_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None,
            "device": name or "cpu", "peak_bf16_tflops": peak,
            "mfu": flops / median / 1e12 / peak if peak else None}


def run(full: bool = False) -> list[Result]:
    """Measure row 6 (both rows) on the first CUDA device; not measured without one."""
    settings = "small preset, feature size 48, 96^3, batch 2, bf16-mixed, Trainer.fit"
    if not torch.cuda.is_available():
        why = f"not measured: no CUDA device on this machine ({settings})."
        return [Result("6a. GPU step: model FLOP utilisation", "achieved model TFLOP/s", "card bf16 peak",
                       "TFLOP/s", [], [], target=None, note=why),
                Result("6b. GPU step: torch.compile", "compiled", "eager", "s/step", [], [], "<=", 1.0, note=why)]
    eager = measure("cuda", steps=16 if full else 12)
    compiled = measure("cuda", compile=True, steps=24 if full else 16, skip=6)
    peak = eager["peak_bf16_tflops"]
    extra = {"eager": eager, "compiled": compiled}
    mem = f"peak memory {eager['peak_memory_gib']:.1f} GiB eager, {compiled['peak_memory_gib']:.1f} GiB compiled"
    flops = f"{eager['flops_per_step'] / 1e12:.2f} TFLOP per step (FlopCounterMode, fwd+bwd)"
    mfu_row = Result("6a. GPU step: model FLOP utilisation", "achieved model TFLOP/s",
                     f"{eager['device']} bf16 peak" if peak else "card peak unknown (set BSF_GPU_PEAK_TFLOPS)",
                     "TFLOP/s", eager["tflops_per_s"], [peak] if peak else [], target=None,
                     note=(f"{settings} on {eager['device']}; median step "
                           f"{sorted(eager['step_s'])[len(eager['step_s']) // 2] * 1e3:.0f} ms; {flops}; {mem}; "
                           "ratio = MFU."), extra=extra)
    compile_row = Result("6b. GPU step: torch.compile", "compiled", "eager", "s/step", compiled["step_s"],
                         eager["step_s"], "<=", 1.0,
                         note=f"{settings} on {eager['device']}; torch.compile(net), compile steps dropped; {mem}.",
                         extra=extra)
    return [mfu_row, compile_row]


def predict_seconds(device: str, preset: str, feature_size: int | None, shape, roi: int, bf16: bool,
                    repeats: int = 2) -> list[float]:
    """Seconds of Gaussian sliding-window inference over one volume (overlap 0.5, 4 windows a batch)."""
    from monai.inferers import sliding_window_inference

    from brainsegfounder.models.presets import build_swin_unetr

    dev = torch.device(device)
    net = build_swin_unetr(preset, 4, 3, feature_size).eval().to(dev)
    x = torch.randn(1, 4, *shape, device=dev)
    times = []
    for _ in range(repeats + 1):  # the first call warms up (cuDNN, allocator)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            sliding_window_inference(x, roi, 4, net, overlap=0.5, mode="gaussian")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
    return times[1:]


def sweep(dry_run: bool = False, out: str = "benchmarks/results/gpu_sweep.json") -> dict:
    """Everything one lent GPU should record, written to ``out`` after every step (a timeout keeps
    what was measured): training step time, peak memory and MFU for tiny/small/base at 96^3 bf16,
    with and without gradient checkpointing and ``torch.compile``; the SSL augmentation ratio; and
    seconds per BraTS-sized case for predict. ``dry_run``: the same path on the CPU at toy size
    (tiny preset only, feature size 12, 64^3, fp32, 2 steps, no compile)."""
    import json
    import pathlib

    from benchmarks.common import machine

    device = "cpu" if dry_run else "cuda"
    if not dry_run and not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu needs a CUDA GPU (or --dry-run)")
    presets = ["tiny"] if dry_run else ["tiny", "small", "base"]
    settings = dict(feature_size=12, patch=64, precision="32-true", steps=3, skip=1) if dry_run else \
        dict(feature_size=None, patch=96, precision="bf16-mixed", steps=12, skip=4)
    record: dict = {"machine": machine(), "dry_run": dry_run, "training": [], "settings": settings}
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        path.write_text(json.dumps(record, indent=1, default=str) + "\n")

    # Eager first for every preset, compiled last: a run cut short still holds the main table.
    for compile in ([False] if dry_run else [False, True]):
        for preset in presets:
            for checkpointing in (False, True):
                row = {"preset": preset, "gradient_checkpointing": checkpointing, "compile": compile}
                try:
                    found = measure(device, preset, compile=compile, gradient_checkpointing=checkpointing,
                                    **settings)
                    median = sorted(found["step_s"])[len(found["step_s"]) // 2]
                    row.update(step_s_median=median, peak_memory_gib=found["peak_memory_gib"],
                               mfu=found["mfu"], flops_per_step=found["flops_per_step"])
                except Exception as err:  # out of memory, a compile failure: record it, go on
                    row["error"] = f"{type(err).__name__}: {err}"[:500]
                record["training"].append(row)
                save()
    from benchmarks import ssl_augment

    record["ssl_augment"] = [r.to_dict() for r in ssl_augment.run(full=not dry_run)]
    save()
    shape, roi = ((96, 96, 64), 64) if dry_run else ((240, 240, 155), 96)
    for preset in (["tiny"] if dry_run else ["tiny", "small"]):
        record.setdefault("predict_seconds", {})[preset] = predict_seconds(
            device, preset, 12 if dry_run else None, shape, roi, bf16=not dry_run, repeats=1 if dry_run else 2)
        save()
    return record


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=sweep.__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the whole path on the CPU at toy size")
    parser.add_argument("--out", default="benchmarks/results/gpu_sweep.json")
    args = parser.parse_args(argv)
    record = sweep(args.dry_run, args.out)
    for row in record["training"]:
        print(row)  # noqa: T201
    print({"ssl_augment_ratio": [r["ratio"] for r in record["ssl_augment"]],  # noqa: T201
           "predict_seconds": record.get("predict_seconds")})
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
