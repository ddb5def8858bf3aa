"""Temperature scaling per region: probabilities that mean what they say.

A segmentation network trained with Dice loss is over-confident (probabilities all near 0 or 1).
Temperature scaling (Guo et al., ICML 2017) divides each region channel's logits by one scalar
``T`` fitted on held-out (validation) voxels by minimising the binary negative log-likelihood;
``T > 1`` softens, ``T < 1`` sharpens. Dividing by a positive scalar keeps the sign of every
logit, so the label map at threshold 0.5 is unchanged; only the probabilities (uncertainty maps,
quality score, ECE) change.

The fitted temperatures travel in the checkpoint under :data:`TEMPERATURE_KEY` (a list, one per
region channel, in the scheme's channel order).

Example:
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> z = torch.randn(1, 2, 40, 40, 40) * 2                    # calibrated logits, 2 regions
    >>> y = torch.bernoulli(torch.sigmoid(z))
    >>> t = fit_temperature(5 * z, y)                              # a 5x over-confident model
    >>> [round(v, 1) for v in t.tolist()]
    [5.0, 5.0]
    >>> bool((binary_nll(5 * z, y, t) < binary_nll(5 * z, y)).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["FLAG_THRESHOLD_KEY", "SUBSET_DICE_KEY", "TEMPERATURE_KEY", "apply_temperature", "binary_nll", "fit_temperature", "flatten_channels"]

#: Checkpoint key of the fitted temperatures (list of floats, one per region channel).
TEMPERATURE_KEY = "brainsegfounder_temperature"
#: Checkpoint key of the quality-score threshold above which ``predict`` flags a case (a float).
FLAG_THRESHOLD_KEY = "brainsegfounder_flag_threshold"
#: Checkpoint key of the validation Dice per region for each subset of the modalities (a dict
#: ``"flair+t1" -> [Dice per region]``, the full set included), measured by ``calibrate`` for a
#: model trained with modality dropout; ``predict`` scales the quality score of a case that lacks
#: modalities by the ratio to the full set.
SUBSET_DICE_KEY = "brainsegfounder_subset_dice"


def flatten_channels(values: torch.Tensor | Sequence[torch.Tensor], channel_dim: int = 1) -> torch.Tensor:
    """``(B, R, ...)`` (or a list of ``(R, ...)`` volumes of any sizes, ``channel_dim=0``) -> ``(R, N)``."""
    if isinstance(values, torch.Tensor):
        values = [values]
    flat = [v.movedim(channel_dim, 0).reshape(v.shape[channel_dim], -1) for v in values]
    return torch.cat(flat, dim=1).float()


def apply_temperature(logits: torch.Tensor, temperature: torch.Tensor | Sequence[float],
                      channel_dim: int = 1) -> torch.Tensor:
    """Divide each region channel's logits by its temperature (then apply the sigmoid as before).

    >>> import torch
    >>> apply_temperature(torch.ones(1, 2, 3), [2.0, 0.5])[0, :, 0].tolist()
    [0.5, 2.0]
    """
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    shape = [1] * logits.ndim
    shape[channel_dim] = -1
    return logits / t.reshape(shape)


def binary_nll(logits, targets, temperature=None, channel_dim: int = 1) -> torch.Tensor:
    """Mean binary negative log-likelihood (nats per voxel) of each region channel, ``(R,)``.

    ``logits`` and ``targets`` as for :func:`fit_temperature`; ``temperature`` (optional) is applied first.
    """
    z, y = flatten_channels(logits, channel_dim), flatten_channels(targets, channel_dim)
    if temperature is not None:
        z = z / torch.as_tensor(temperature, dtype=z.dtype).reshape(-1, 1)
    return F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(dim=1)


def fit_temperature(logits, targets, max_voxels: int = 200_000, seed: int = 0, channel_dim: int = 1,
                    max_iter: int = 100) -> torch.Tensor:
    """One temperature per region channel, minimising the binary NLL of ``logits / T`` on ``targets``.

    Args:
        logits: validation logits, ``(B, R, X, Y, Z)``, or a list of ``(R, X, Y, Z)`` volumes of
            any sizes with ``channel_dim=0``.
        targets: the region masks (0/1) shaped like ``logits``.
        max_voxels: a seeded uniform subsample of this many voxels (the same voxels for every
            channel) keeps the fit fast on whole validation folds; the NLL is smooth in ``T`` and
            two hundred thousand voxels pin it to about 1%.
        seed: seed of the subsample.
        channel_dim: the channel dimension of ``logits`` and ``targets``.
        max_iter: LBFGS iterations.

    Returns:
        ``(R,)`` float tensor of temperatures, > 0. ``log T`` is what is optimised (so ``T`` stays
        positive); the channels are independent, so one LBFGS on their summed NLL fits them all.
    """
    z, y = flatten_channels(logits, channel_dim).detach(), flatten_channels(targets, channel_dim).detach()
    if z.shape != y.shape:
        raise ValueError(f"logits {tuple(z.shape)} and targets {tuple(y.shape)} do not match (channels, voxels)")
    if z.shape[1] > max_voxels:
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(z.shape[1], generator=generator)[:max_voxels]
        z, y = z[:, keep.to(z.device)], y[:, keep.to(y.device)]
    log_t = torch.zeros(z.shape[0], 1, dtype=z.dtype, device=z.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z / log_t.exp(), y, reduction="none").mean(dim=1).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return log_t.detach().exp().reshape(-1).cpu()
