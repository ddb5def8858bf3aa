"""Fast CPU prediction: brain box and ``--fast`` against plain sliding-window inference, same weights.

One skull-stripped-looking case (a noisy ellipsoid "brain" on zeros, as BraTS volumes are), one
network, side by side in one process (alternating repeats):

- baseline: MONAI ``sliding_window_inference`` over the full volume at the checkpoint's settings
  (96^3 windows, overlap 0.5, Gaussian, 2 windows per batch);
- default: the same on the brain's box aligned to the full volume's window grid (exact inside
  the brain, :func:`brainsegfounder.inference.fast.brain_bbox`);
- fast: the unaligned box and overlap 0.25 (``FAST_OVERLAP``);
- onnxruntime: the default path with the network run by ONNX Runtime (if installed).

Each row gives the time ratio and, in its note, the Dice between its label map and the
baseline's (mean over regions) and the export round trip's max abs logit difference.

    python -m benchmarks.cpu_predict          # quick: 128 x 128 x 96, tiny preset, feature size 12
    python -m benchmarks.cpu_predict --full   # BraTS size 240 x 240 x 155 x 4, small preset, fs 48
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from benchmarks.common import Result

__all__ = ["run"]


def _case(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    # BraTS: the brain fills about 160 x 190 x 140 of 240 x 240 x 155.
    semi = np.array([160 / 240, 190 / 240, 140 / 155]).reshape(3, 1, 1, 1)
    brain = ((grid / semi) ** 2).sum(0) < 1
    x = rng.normal(0, 1, (4, *shape)).astype(np.float32) * brain
    return torch.from_numpy(x)[None]


def _dice(a: torch.Tensor, b: torch.Tensor, brain: torch.Tensor) -> float:
    # Inside the brain only: outside it a trained network predicts background, an untrained one
    # (what is timed here) noise that the box paths set to 0 by design.
    a, b = (a > 0.5) & brain, (b > 0.5) & brain
    scores = []
    for i in range(a.shape[1]):
        inter, total = (a[:, i] & b[:, i]).sum().item(), a[:, i].sum().item() + b[:, i].sum().item()
        scores.append(1.0 if total == 0 else 2 * inter / total)
    return float(np.mean(scores))


def run(full: bool = False, repeats: int = 1) -> list[Result]:
    """Time each path against the full-volume sliding window; one :class:`Result` row per path."""
    from brainsegfounder.inference.fast import FAST_OVERLAP, brain_bbox, infer_in_bbox
    from brainsegfounder.models.presets import build_swin_unetr

    shape = (240, 240, 155) if full else (128, 128, 96)
    preset, feature_size = ("small", 48) if full else ("tiny", 12)
    roi = (96,) * 3 if full else (64,) * 3
    torch.manual_seed(0)
    net = build_swin_unetr(preset, 4, 3, feature_size).eval()
    x = _case(shape)

    def sliding(inputs, model, overlap):
        return torch.sigmoid(sliding_window_inference(inputs, roi, 2, model, overlap=overlap, mode="gaussian"))

    def plain(model=net):
        with torch.inference_mode():
            return sliding(x, model, 0.5)

    def default(model=net):
        with torch.inference_mode():
            return infer_in_bbox(x, lambda v: sliding(v, model, 0.5), roi, 0.5)

    def fast():
        with torch.inference_mode():
            return infer_in_bbox(x, lambda v: sliding(v, net, FAST_OVERLAP), roi, FAST_OVERLAP, align=False)

    paths = {"default": default, "fast": fast}
    round_trip = None
    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = Path(tmp) / "net.onnx"
            with torch.no_grad():
                torch.onnx.export(net, (torch.randn(1, 4, *roi),), str(onnx_path), input_names=["image"],
                                  output_names=["logits"], dynamic_axes={"image": {0: "b"}, "logits": {0: "b"}},
                                  dynamo=False)
            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

        def ort_net(w: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"image": w.contiguous().numpy()})[0])

        probe = torch.randn(1, 4, *roi)
        with torch.no_grad():
            round_trip = float((net(probe) - ort_net(probe)).abs().max())
        paths["onnxruntime"] = lambda: default(ort_net)
    except ImportError:
        pass

    box = brain_bbox(x[0], roi, 0.5)
    brain = (x != 0).any(1)[:, None]
    # Timed calls alternate (plain, default, fast, ...) so that load falls on all alike; the label
    # maps of the last repeat give the Dice, so nothing runs twice only to be compared.
    samples: list[list[float]] = [[] for _ in range(len(paths) + 1)]
    outputs: list[torch.Tensor] = []
    for _ in range(max(1, repeats)):
        outputs = []
        for i, fn in enumerate([plain, *paths.values()]):
            start = time.perf_counter()
            outputs.append(fn())
            samples[i].append(time.perf_counter() - start)
    dice = {name: _dice(out, outputs[0], brain) for name, out in zip(paths, outputs[1:], strict=True)}
    size = "x".join(map(str, shape))
    rows = []
    for (name, _), ours in zip(paths.items(), samples[1:], strict=True):
        note = (f"{size} x 4, {preset} preset, feature size {feature_size}, {roi[0]}^3 windows, sw batch 2, fp32, "
                f"{torch.get_num_threads()} threads; Dice vs full-volume labels inside the brain {dice[name]:.4f} (untrained network); "
                f"aligned box covers {box.fraction:.2f} of the volume")
        if name == "onnxruntime":
            note += f"; export round trip max abs logit difference {round_trip:.2e}"
        rows.append(Result(f"7. CPU predict: {name}", f"{name} path", "sliding window, full volume", "seconds",
                           ours, samples[0], "<=", 0.5 if name == "default" else 0.25 if name == "fast" else 1.0,
                           note=note, extra={"dice": dice[name], "round_trip": round_trip,
                                             "load_average": list(__import__("os").getloadavg()),
                                             "time": time.time()}))
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="BraTS size 240x240x155x4, small preset, fs 48")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    for row in run(full=args.full, repeats=args.repeats):
        print(f"{row.name}: {row.ours_median:.1f} s vs {row.baseline_median:.1f} s, ratio {row.ratio:.3f}; {row.note}")  # noqa: T201
