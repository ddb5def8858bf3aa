"""The one sliding-window prediction: validation, the overlay callback and ``predict`` all call it.

MONAI's :func:`~monai.inferers.sliding_window_inference` with Gaussian weighting tiles a whole
volume with windows of the training patch size; each network's sigmoid probabilities are averaged
over the networks given (an ensemble) and over mirrorings (test-time augmentation). With
``bbox=True`` only the brain's bounding box is run (:mod:`brainsegfounder.models.brain_box`): on the
full volume's own window grid (``align=True``) the result inside the brain is the full-volume
one and outside it is background; ``align=False`` is the ``--fast`` box (not identical). A network
may be any callable returning logits: a module, or an ONNX Runtime session
(:class:`~brainsegfounder.inference.engines.OnnxRuntimeNetwork`).

Example:
    >>> import torch
    >>> net = torch.nn.Conv3d(2, 3, 1)
    >>> x = torch.randn(1, 2, 40, 40, 40)
    >>> sliding_window_probabilities(x, [net], roi_size=(32, 32, 32)).shape
    torch.Size([1, 3, 40, 40, 40])
    >>> len(mirror_axes(True)), mirror_axes(False)
    (8, [()])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import torch
from monai.inferers import sliding_window_inference

from brainsegfounder.utils.errors import ConfigError

#: Swin UNETR halves the grid five times: every side of a window must be a multiple of 2**5.
WINDOW_MULTIPLE = 32

__all__ = ["check_window", "member_probabilities", "mirror_axes", "sliding_window_logits", "sliding_window_probabilities"]


def mirror_axes(tta: bool) -> list[tuple[int, ...]]:
    """The spatial axes to flip for each pass: ``[()]`` without TTA, all 8 mirrorings with it."""
    if not tta:
        return [()]
    return [()] + [axes for n in (1, 2, 3) for axes in itertools.combinations((2, 3, 4), n)]


def check_window(roi_sizes: Sequence[Sequence[int]], overlaps: Sequence[float]) -> None:
    """Refuse, in one line, a window Swin UNETR cannot run or an overlap MONAI cannot tile with.

    >>> check_window([(64, 64, 64)], [0.5])
    >>> check_window([(50, 64, 64)], [0.5])
    Traceback (most recent call last):
    ...
    brainsegfounder.utils.errors.ConfigError: --roi_size 50x64x64: every side must be a multiple of 32 (Swin UNETR halves the grid 5 times); try 64 or 96, or leave it out to use the checkpoint's training patch size.
    """
    for size in roi_sizes:
        if any(int(s) <= 0 or int(s) % WINDOW_MULTIPLE for s in size):
            up = max(WINDOW_MULTIPLE, -(-max(int(s) for s in size) // WINDOW_MULTIPLE) * WINDOW_MULTIPLE)
            raise ConfigError(f"--roi_size {'x'.join(str(int(s)) for s in size)}: every side must be a multiple of "
                              f"{WINDOW_MULTIPLE} (Swin UNETR halves the grid 5 times); try {up} or "
                              f"{up + WINDOW_MULTIPLE}, or leave it out to use the checkpoint's training patch size.")
    for overlap in overlaps:
        if not 0 <= float(overlap) < 1:
            raise ConfigError(f"--overlap {overlap}: the fraction of a window shared with its neighbour must be "
                              "at least 0 and below 1 (0.5 is the default, 0.25 is faster).")


def sliding_window_logits(x: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor], roi_size: Sequence[int],
                          sw_batch_size: int = 2, overlap: float = 0.5) -> torch.Tensor:
    """One network's Gaussian-weighted logits ``(B, R, X, Y, Z)`` over a whole volume (the one call of
    MONAI's :func:`~monai.inferers.sliding_window_inference`; ``calibrate`` fits temperatures on these)."""
    return sliding_window_inference(x, tuple(roi_size), int(sw_batch_size), network, overlap=float(overlap),
                                    mode="gaussian")


def sliding_window_probabilities(x: torch.Tensor, networks: Sequence[Callable[[torch.Tensor], torch.Tensor]],
                                 *args, **kwargs) -> torch.Tensor:
    """Mean sigmoid probabilities ``(B, R, X, Y, Z)`` of the ``networks`` over a whole volume.

    The mean of :func:`member_probabilities` (every network x every mirroring), which takes the
    same arguments and documents them.
    """
    total, count = None, 0
    for probabilities in member_probabilities(x, networks, *args, **kwargs):
        total = probabilities if total is None else total.add_(probabilities)
        count += 1
    return total / count


def member_probabilities(
    x: torch.Tensor,
    networks: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    roi_size: Sequence[int] | Sequence[Sequence[int]],
    sw_batch_size: int | Sequence[int] = 2,
    overlap: float | Sequence[float] = 0.5,
    tta: bool = False,
    bbox: bool = False,
    align: bool = True,
) -> Iterator[torch.Tensor]:
    """Each member's sigmoid probabilities, one at a time: every network x every mirroring.

    :func:`sliding_window_probabilities` averages these; a caller that wants the spread across
    members (``predict --uncertainty``) sums them and their squares as they come, so memory does
    not grow with the number of members.

    Args:
        x: ``(B, C, X, Y, Z)`` preprocessed volumes, already on the networks' device.
        networks: callables returning logits (one network, or an ensemble averaged in probability).
        roi_size: window size in voxels, or one per network.
        sw_batch_size: windows per forward pass, or one per network.
        overlap: fraction of a window shared with its neighbour, or one per network.
        tta: also the 8 mirrorings of the volume (8x the time).
        bbox: run only the brain's bounding box (non-zero voxels of the raw input are the brain; the
            z-scored input's background is its corner value), pasting background elsewhere.
        align: with ``bbox``, keep the full volume's window grid (identical inside the brain).
    """
    count = len(networks)
    one_roi = isinstance(roi_size[0], int)
    rois = [roi_size] * count if one_roi else list(roi_size)
    batches = list(sw_batch_size) if isinstance(sw_batch_size, Sequence) else [sw_batch_size] * count
    overlaps = list(overlap) if isinstance(overlap, Sequence) else [overlap] * count
    for network, roi, batch, lap in zip(networks, rois, batches, overlaps, strict=True):
        for axes in mirror_axes(tta):
            inputs = torch.flip(x, axes) if axes else x
            probabilities = _window_pass(inputs, network, tuple(roi), int(batch), float(lap), bbox, align)
            yield torch.flip(probabilities, axes) if axes else probabilities


def _window_pass(x: torch.Tensor, network, roi: tuple, batch: int, overlap: float, bbox: bool,
                 align: bool) -> torch.Tensor:
    def window(inputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(sliding_window_logits(inputs, network, roi, batch, overlap).float())

    if not bbox:
        return window(x)
    from brainsegfounder.models.brain_box import infer_in_bbox

    return infer_in_bbox(x, window, roi, overlap, background=None, align=align)
