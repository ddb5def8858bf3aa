"""Fast CPU prediction: what ``predict`` gives against plain MONAI sliding-window inference, same weights.

One skull-stripped-looking case (a noisy ellipsoid "brain" on zeros, as BraTS volumes are) and
one network (seeded weights). Every path runs in a **fresh interpreter** (paths alternate, so load
falls on all alike), because the largest CPU difference is process-wide: how glibc's malloc
treats freed memory (:mod:`brainsegfounder.utils.allocator`), which cannot be switched back within one
process:

- baseline: MONAI ``sliding_window_inference`` over the full volume at the checkpoint's settings
  (96^3 windows, overlap 0.5, Gaussian, 2 windows per batch) in a plain process, glibc's defaults:
  what a MONAI user runs;
- kept: the same with the freed memory kept, as every ``python -m brainsegfounder.*`` command
  runs (the allocator's share of the gain, nothing else changed);
- default: ``predict``'s path: the brain's box aligned to the full volume's window grid (exact
  inside the brain, :func:`brainsegfounder.models.brain_box.brain_bbox`), memory kept;
- fast: the unaligned box and overlap 0.25 (``FAST_OVERLAP``), memory kept;
- onnxruntime: the default path with the network run by ONNX Runtime (if installed), memory kept.

Each row gives the time ratio to the baseline and, in its note, the ratio to ``kept`` (same
allocator), the Dice between its label map and the baseline's inside the brain (mean over
regions) and, for ONNX Runtime, the export round trip's max abs logit difference.

    python -m benchmarks.cpu_predict          # quick: 128 x 128 x 96, tiny preset, feature size 12
    python -m benchmarks.cpu_predict --full   # BraTS size 240 x 240 x 155 x 4, small preset, fs 48
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Result

__all__ = ["PATHS", "run"]

ROOT = Path(__file__).resolve().parent.parent
#: The timed paths, in the order they run; ``baseline`` runs with glibc's defaults.
PATHS = ("baseline", "kept", "default", "fast", "onnxruntime")


def _case(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    # BraTS: the brain fills about 160 x 190 x 140 of 240 x 240 x 155.
    semi = np.array([160 / 240, 190 / 240, 140 / 155]).reshape(3, 1, 1, 1)
    brain = ((grid / semi) ** 2).sum(0) < 1
    x = rng.normal(0, 1, (4, *shape)).astype(np.float32) * brain
    return torch.from_numpy(x)[None]


def _dice(a: np.ndarray, b: np.ndarray, brain: np.ndarray) -> float:
    # Inside the brain only: outside it a trained network predicts background, an untrained one
    # (what is timed here) noise that the box paths set to 0 by design.
    a, b = a & brain, b & brain
    scores = []
    for i in range(a.shape[0]):
        inter, total = int((a[i] & b[i]).sum()), int(a[i].sum() + b[i].sum())
        scores.append(1.0 if total == 0 else 2 * inter / total)
    return float(np.mean(scores))


def _settings(full: bool) -> dict:
    return {"shape": (240, 240, 155) if full else (128, 128, 96), "preset": "small" if full else "tiny",
            "feature_size": 48 if full else 12, "roi": (96,) * 3 if full else (64,) * 3}


def _worker(path: str, full: bool, out: str) -> dict:
    """Run one path once in this (fresh) process; save its label map; return seconds (and round trip)."""
    from brainsegfounder.utils.allocator import keep_freed_memory

    keep_freed_memory()  # BRAINSEGFOUNDER_KEEP_FREED_MEMORY=0 (the baseline) leaves glibc's defaults
    from monai.inferers import sliding_window_inference

    from brainsegfounder.models.brain_box import FAST_OVERLAP, infer_in_bbox
    from brainsegfounder.models.presets import build_swin_unetr

    s = _settings(full)
    roi = s["roi"]
    torch.manual_seed(0)
    net = build_swin_unetr(s["preset"], 4, 3, s["feature_size"]).eval()
    x = _case(s["shape"])
    model, round_trip = net, None
    if path == "onnxruntime":
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / "net.onnx"
            with torch.no_grad():
                torch.onnx.export(net, (torch.randn(1, 4, *roi),), str(onnx_path), input_names=["image"],
                                  output_names=["logits"], dynamic_axes={"image": {0: "b"}, "logits": {0: "b"}},
                                  dynamo=False)
            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

        def model(w: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"image": w.contiguous().numpy()})[0])

        probe = torch.randn(1, 4, *roi)
        with torch.no_grad():
            round_trip = float((net(probe) - model(probe)).abs().max())

    def sliding(inputs, overlap):
        return torch.sigmoid(sliding_window_inference(inputs, roi, 2, model, overlap=overlap, mode="gaussian"))

    with torch.inference_mode():
        model(torch.zeros(1, 4, *roi))  # first-call set-up (thread pools, kernels) is not the path's cost
        start = time.perf_counter()
        if path in ("baseline", "kept"):
            probs = sliding(x, 0.5)
        elif path == "fast":
            probs = infer_in_bbox(x, lambda v: sliding(v, FAST_OVERLAP), roi, FAST_OVERLAP, align=False)
        else:
            probs = infer_in_bbox(x, lambda v: sliding(v, 0.5), roi, 0.5)
        seconds = time.perf_counter() - start
    np.save(out, np.packbits((probs[0] > 0.5).numpy()))
    return {"seconds": seconds, "round_trip": round_trip, "threads": torch.get_num_threads()}


def _spawn(path: str, full: bool, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRAINSEGFOUNDER_KEEP_FREED_MEMORY": "0" if path == "baseline" else "1"}
    command = [sys.executable, "-m", "benchmarks.cpu_predict", "--worker", path, "--out", str(out)]
    result = subprocess.run(command + (["--full"] if full else []), cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(full: bool = False, repeats: int = 1) -> list[Result]:
    """Time each path (fresh interpreters, interleaved) against the baseline; one :class:`Result` row per path."""
    from brainsegfounder.models.brain_box import brain_bbox

    s = _settings(full)
    try:
        import onnxruntime  # noqa: F401

        paths = list(PATHS)
    except ImportError:
        paths = [p for p in PATHS if p != "onnxruntime"]
    samples: dict[str, list[float]] = {p: [] for p in paths}
    info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, repeats)):
            for path in paths:
                info[path] = _spawn(path, full, Path(tmp) / f"{path}.npy")
                samples[path].append(info[path]["seconds"])
        count = 3 * int(np.prod(s["shape"]))
        labels = {p: np.unpackbits(np.load(Path(tmp) / f"{p}.npy"))[:count].reshape(3, *s["shape"]).astype(bool)
                  for p in paths}
    x = _case(s["shape"])
    brain = (x[0] != 0).any(0).numpy()[None]
    box = brain_bbox(x[0], s["roi"], 0.5)
    kept = float(np.median(samples["kept"]))
    size = "x".join(map(str, s["shape"]))
    load = list(os.getloadavg())
    rows = []
    targets = {"kept": 0.8, "default": 0.5, "fast": 0.25, "onnxruntime": 0.5}
    for path in paths[1:]:
        dice = _dice(labels[path], labels["baseline"], brain)
        note = (f"{size} x 4, {s['preset']} preset, feature size {s['feature_size']}, {s['roi'][0]}^3 windows, "
                f"sw batch 2, fp32, {info[path]['threads']} threads, a fresh interpreter per path; "
                f"{float(np.median(samples[path])) / kept:.3f}x the time of MONAI with memory kept; "
                f"Dice vs the baseline's labels inside the brain {dice:.4f} (untrained network); "
                f"aligned box covers {box.fraction:.2f} of the volume; load {load[0]:.1f}")
        if path == "onnxruntime":
            note += f"; export round trip max abs logit difference {info[path]['round_trip']:.2e}"
        rows.append(Result(f"7. CPU predict: {path}", f"{path} path", "MONAI sliding window, full volume, glibc defaults",
                           "seconds", samples[path], samples["baseline"], "<=", targets[path], note=note,
                           extra={"dice": dice, "round_trip": info[path]["round_trip"], "load_average": load,
                                  "vs_kept": float(np.median(samples[path])) / kept, "time": time.time()}))
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="BraTS size 240x240x155x4, small preset, fs 48")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.full, args.out)))  # noqa: T201
        sys.exit(0)
    print(f"load average {os.getloadavg()}")  # noqa: T201
    for row in run(full=args.full, repeats=args.repeats):
        print(f"{row.name}: {row.ours_median:.1f} s vs {row.baseline_median:.1f} s, ratio {row.ratio:.3f}; {row.note}")  # noqa: T201
