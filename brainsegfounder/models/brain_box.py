"""Fast CPU prediction: the sliding window over the brain's bounding box only, and CPU settings.

A skull-stripped BraTS volume (240 x 240 x 155) holds the brain in about 160 x 190 x 140 voxels;
everything around it is zero and is label 0 anyway. :func:`brain_bbox` finds the non-zero voxels
of all modalities (plus a margin) and widens them to whole windows *of the full volume's own
sliding-window grid*, so that every voxel of the brain is covered by exactly the windows (same
positions, same Gaussian weights) that covered it in the full volume: inside the box the
probabilities are those of the full-volume path, outside they are 0 (background). No window that
sees only background is run.

Inputs that are not skull-stripped (air is noisy, not exactly zero) give a box of about the whole
volume: no gain and no harm, the result is then the full-volume one. A volume with no non-zero
voxel at all runs one window only and returns probability 0 everywhere.

Example (a 4-modality volume with a "brain" in the middle, 64^3 windows, overlap 0.5):
    >>> import torch
    >>> image = torch.zeros(4, 192, 192, 128)
    >>> image[:, 70:120, 60:130, 40:90] = 1.0
    >>> box = brain_bbox(image, roi_size=64, overlap=0.5, margin=2)
    >>> box.keep
    (slice(68, 122, None), slice(58, 132, None), slice(38, 92, None))
    >>> box.crop  # on the full volume's window grid (multiples of 32, or size - 64)
    (slice(32, 160, None), slice(0, 192, None), slice(0, 128, None))
    >>> brain_bbox(image, roi_size=64, overlap=0.5, align=False).crop  # --fast: the box, >= one window
    (slice(63, 127, None), slice(58, 132, None), slice(33, 97, None))
    >>> probs = infer_in_bbox(image[None], lambda x: torch.sigmoid(x[:, :3]), 64, 0.5)
    >>> probs.shape, float(probs[0, 0, 0, 0, 0])
    (torch.Size([1, 3, 192, 192, 128]), 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["BrainBox", "brain_bbox", "infer_in_bbox", "axis_window_starts",
           "cpu_threads", "FAST_OVERLAP", "DEFAULT_MARGIN"]

#: Window overlap of the ``--fast`` preset (the checkpoint's is usually 0.5).
FAST_OVERLAP = 0.25
#: Voxels kept around the non-zero voxels (a lesion's boundary may reach just outside them after
#: resampling back to the input grid, which interpolates linearly).
DEFAULT_MARGIN = 2


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    values = (int(value),) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"expected one or three window sides, got {value}")
    return values


def axis_window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Window starts along one axis exactly as MONAI's ``sliding_window_inference`` places them.

    Regular steps of ``int(roi * (1 - overlap))`` from 0, the last one moved back to ``size - roi``
    (MONAI's ``_get_scan_interval`` and ``dense_patch_slices``).

    >>> axis_window_starts(240, 96, 0.5)
    [0, 48, 96, 144]
    >>> axis_window_starts(155, 96, 0.5)
    [0, 48, 59]
    """
    if size <= roi:
        return [0]
    step = max(int(roi * (1 - overlap)), 1)
    starts = []
    for start in range(0, size, step):
        starts.append(min(start, size - roi))
        if start + roi >= size:
            break
    return sorted(set(starts))


@dataclass(frozen=True)
class BrainBox:
    """Where to run the sliding window and where to keep its result.

    Attributes:
        crop: the region given to the sliding window; its own window grid is a subset of the full
            volume's (voxels, per axis).
        keep: non-zero voxels plus the margin; probabilities are pasted back here only.
        shape: the full volume's spatial shape.
        empty: no non-zero voxel at all.
    """

    crop: tuple[slice, slice, slice]
    keep: tuple[slice, slice, slice]
    shape: tuple[int, int, int]
    empty: bool = False

    @property
    def fraction(self) -> float:
        """Voxels in ``crop`` over voxels in the volume (the share of work left, roughly)."""
        inside = 1
        for s in self.crop:
            inside *= s.stop - s.start
        return inside / (self.shape[0] * self.shape[1] * self.shape[2])


def _foreground(image: torch.Tensor, background: float | Sequence[float] | None) -> torch.Tensor:
    if background is None:
        # z-scored skull-stripped volumes: the zeros became one constant per channel; the first
        # voxel (a corner, outside any skull-stripped brain) holds it.
        reference = image[:, :1, :1, :1]
    else:
        reference = torch.as_tensor(background, dtype=image.dtype, device=image.device).reshape(-1, 1, 1, 1)
    return (image != reference).any(0)


def brain_bbox(image: torch.Tensor, roi_size: int | Sequence[int], overlap: float,
               margin: int = DEFAULT_MARGIN, background: float | Sequence[float] | None = 0.0,
               align: bool = True) -> BrainBox:
    """The bounding box of the brain, widened to whole windows of the full volume's grid.

    Args:
        image: ``(C, X, Y, Z)`` volume; a voxel belongs to the brain if any channel differs from
            ``background``.
        roi_size: window side(s) in voxels, as given to the sliding window.
        overlap: the sliding window's overlap (it sets the window grid).
        margin: voxels kept around the non-zero voxels (clipped at the volume's border).
        background: the value of voxels outside the brain: 0 for raw skull-stripped images, one
            value per channel, or ``None`` for "the first voxel's value per channel" (z-scored
            images, where the zeros became ``-mean / std``).
        align: widen the box to whole windows of the full volume's grid (exact; the default).
            ``False`` (the ``--fast`` preset) crops to the box itself, grown to at least one window:
            fewer windows, but at other positions, so probabilities differ slightly.

    Returns:
        A :class:`BrainBox`. Aligned, any window of the full volume that touches ``keep`` lies
        inside ``crop`` and is a window of ``crop``'s own grid, so inside ``keep`` the sliding
        window over ``crop`` gives exactly the full volume's result.
    """
    if image.ndim != 4:
        raise ValueError(f"expected a (C, X, Y, Z) volume, got shape {tuple(image.shape)}")
    shape = tuple(int(s) for s in image.shape[1:])
    roi = _triple(roi_size)
    mask = _foreground(image, background)
    if not mask.any():
        crop = tuple(slice(0, min(r, n)) for r, n in zip(roi, shape, strict=True))
        return BrainBox(crop, tuple(slice(0, 0) for _ in shape), shape, empty=True)
    crop, keep = [], []
    for axis, (n, r) in enumerate(zip(shape, roi, strict=True)):
        others = tuple(a for a in range(3) if a != axis)
        present = torch.nonzero(mask.any(dim=others)).flatten()
        low = max(int(present[0]) - margin, 0)
        high = min(int(present[-1]) + 1 + margin, n)
        keep.append(slice(low, high))
        if n <= r:  # MONAI pads such an axis to one window: keep it whole
            crop.append(slice(0, n))
            continue
        if not align:
            grow = max(r - (high - low), 0)
            start = min(max(low - grow // 2, 0), n - max(r, high - low))
            crop.append(slice(start, start + max(r, high - low)))
            continue
        touching = [s for s in axis_window_starts(n, r, overlap) if s < high and s + r > low]
        crop.append(slice(touching[0], touching[-1] + r))
    return BrainBox(tuple(crop), tuple(keep), shape)


def infer_in_bbox(image: torch.Tensor, infer_fn: Callable[[torch.Tensor], torch.Tensor],
                  roi_size: int | Sequence[int], overlap: float, margin: int = DEFAULT_MARGIN,
                  background: float | Sequence[float] | None = 0.0,
                  box: BrainBox | None = None, align: bool = True) -> torch.Tensor:
    """Run ``infer_fn`` (a sliding window) on the brain's box only; probabilities on the full grid.

    Args:
        image: ``(B, C, X, Y, Z)``; the box is that of the first item (predict runs one case a time).
        infer_fn: ``(B, C, x, y, z) -> (B, R, x, y, z)`` probabilities, a sliding window with the
            same ``roi_size`` and ``overlap``.
        roi_size, overlap, margin, background, align: as :func:`brain_bbox`.
        box: a box found already (skips :func:`brain_bbox`).

    Returns:
        ``(B, R, X, Y, Z)`` probabilities: ``infer_fn``'s inside ``box.keep``, 0 outside.
    """
    box = box or brain_bbox(image[0], roi_size, overlap, margin, background, align)
    inner = infer_fn(image[(slice(None), slice(None), *box.crop)])
    out = inner.new_zeros((*inner.shape[:2], *box.shape))
    if box.empty:
        return out
    # `keep` in the crop's own coordinates.
    local = tuple(slice(k.start - c.start, k.stop - c.start) for k, c in zip(box.keep, box.crop, strict=True))
    out[(slice(None), slice(None), *box.keep)] = inner[(slice(None), slice(None), *local)]
    return out


def cpu_threads(threads: int | None = None) -> int:
    """Set (``threads``) or keep torch's intra-op thread count; returns the count in use.

    Measured (benchmarks/cpu_predict.py): torch's default, one thread per physical core, is the
    best on the CPU; more threads than cores only adds contention.
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()
