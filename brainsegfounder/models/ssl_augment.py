"""Batch augmentations of the self-supervised objectives, vectorised on the batch's own device.

Two views of every sample are made by :func:`rotate_batch` (a 90-degree rotation in the plane of
the first two spatial axes, whose label the rotation head predicts) and :func:`mask_cuboids`
(random cuboids filled first with noise, then with the same region of another sample; the
inpainting decoder reconstructs what they hid). Nothing loops over samples or cuboids in Python:
rotations loop over the four angles, masks are built for all cuboids of all samples at once by
broadcasting, and noise is drawn only for the voxels it fills. A call synchronises with the host
twice (the donor shift and the number of noise values), not once per sample or cuboid.

The cuboid masks are written here by hand: neither MONAI nor TorchIO has a batched cuboid
inpainting mask (MONAI's ``RandCoarseDropout`` works on one sample at a time, on the CPU).

Example:
    >>> import torch
    >>> from brainsegfounder.models.ssl_augment import random_rotations, rotate_batch, mask_cuboids
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(4, 2, 32, 32, 32)
    >>> labels = random_rotations(x, g)
    >>> back = rotate_batch(rotate_batch(x, labels), (4 - labels) % 4)
    >>> bool(torch.equal(back, x))
    True
    >>> masked, mask = mask_cuboids(x, generator=g)
    >>> 0 < float(mask.float().mean()) <= 0.3
    True
"""

from __future__ import annotations

import torch

__all__ = ["ROTATION_PLANE", "random_rotations", "rotate_batch", "cuboid_boxes", "boxes_to_masks",
           "mask_cuboids", "ssl_views"]

#: Spatial dimensions of a ``(B, C, X, Y, Z)`` batch that a rotation turns (the paper's choice: the
#: first two spatial axes).
ROTATION_PLANE = (2, 3)


def random_rotations(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One rotation label in ``{0, 1, 2, 3}`` (quarter turns) per sample of ``x``, on ``x``'s device."""
    return torch.randint(0, 4, (x.shape[0],), generator=generator, device=_gen_device(x, generator)).to(x.device)


def rotate_batch(x: torch.Tensor, labels: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Rotate each sample ``x[i]`` by ``labels[i]`` quarter turns in :data:`ROTATION_PLANE`.

    ``rotate_batch(rotate_batch(x, k), (4 - k) % 4)`` is ``x`` again. The two rotated axes must be
    of equal length (cubic patches), so every sample keeps its shape. With ``repeats=n`` the batch
    is taken ``n`` times over (``labels`` has ``n * B`` entries): the same as rotating
    ``torch.cat([x] * n)``, without making that copy first.
    """
    a, b = ROTATION_PLANE
    if x.shape[a] != x.shape[b]:
        raise ValueError(f"rotation needs equal sides on axes {ROTATION_PLANE}, got shape {tuple(x.shape)}; "
                         "use cubic patches")
    labels = labels.to(x.device).long() % 4
    if labels.shape[0] != repeats * x.shape[0]:
        raise ValueError(f"{labels.shape[0]} rotation labels for {repeats} x {x.shape[0]} samples")
    out = x.new_empty((repeats * x.shape[0], *x.shape[1:]))
    # A loop over the four angles, each applied at once to the samples that drew it (gathered by
    # index, so every sample is written once, not once per angle).
    for k in range(4):
        chosen = torch.nonzero(labels == k).flatten()
        if chosen.numel():
            source = x[chosen % x.shape[0]]
            out[chosen] = torch.rot90(source, k, dims=ROTATION_PLANE) if k else source
    return out


def _gen_device(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else x.device


def cuboid_boxes(
    batch_size: int,
    spatial_shape: tuple[int, int, int],
    n_cuboids: int,
    min_side: float,
    max_side: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random cuboids ``[low, high)`` of shape ``(B, K, 3)`` (voxels), each side a fraction in
    ``[min_side, max_side]`` of its axis, placed uniformly inside the volume."""
    gen_device = generator.device if generator is not None else torch.device(device)
    shape = torch.tensor(spatial_shape, device=gen_device, dtype=torch.float32)
    frac = min_side + (max_side - min_side) * torch.rand(batch_size, n_cuboids, 3, generator=generator,
                                                         device=gen_device)
    sides = torch.clamp((frac * shape).round(), min=1).long()
    room = (shape.long() - sides + 1).float()
    low = (torch.rand(batch_size, n_cuboids, 3, generator=generator, device=gen_device) * room).long()
    return low.to(device), (low + sides).to(device)


def boxes_to_masks(low: torch.Tensor, high: torch.Tensor, spatial_shape: tuple[int, int, int],
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean union ``(B, 1, X, Y, Z)`` of the cuboids ``[low, high)`` (``(B, K, 3)``) whose ``keep`` is True.

    Each cuboid is the outer product of three 1-D interval indicators, so the number of cuboids
    covering each voxel is one batched contraction over the cuboids (a matrix product), with no
    ``(B, K, X, Y, Z)`` intermediate.
    """
    axes = []
    for d, n in enumerate(spatial_shape):
        coord = torch.arange(n, device=low.device)
        axes.append(((coord >= low[..., d, None]) & (coord < high[..., d, None])).float())  # (B, K, n)
    ix, iy, iz = axes
    if keep is not None:
        ix = ix * keep[..., None].float()
    count = torch.einsum("bkx,bky,bkz->bxyz", ix, iy, iz)
    return (count > 0.5)[:, None]


def mask_cuboids(
    x: torch.Tensor,
    max_fraction: float = 0.3,
    n_cuboids: int = 32,
    min_side: float = 0.1,
    max_side: float = 0.3,
    noise_share: float = 0.5,
    generator: torch.Generator | None = None,
    groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide random cuboids of each sample: the first ones under noise, the rest under another sample.

    Per sample, ``n_cuboids`` cuboids are drawn and kept in draw order while the sum of their
    volumes stays within ``max_fraction`` of the voxels (the first always fits, since
    ``max_side ** 3 <= max_fraction`` is required), so the masked fraction (their union) lies in
    ``[min_side ** 3, max_fraction]``.
    The first ``noise_share`` of the cuboids are filled with Gaussian noise of the sample's own
    per-channel mean and standard deviation (estimated on every second voxel along each axis); the
    others with the same region of another sample of the batch (``x[(i + s) % B]`` for a random
    shift ``s`` in ``1..B-1``, within the sample's group; noise when a group has one sample).

    Args:
        x: batch ``(B, C, X, Y, Z)``.
        max_fraction: largest fraction of voxels masked per sample.
        n_cuboids: cuboids drawn per sample (before the fraction cap).
        min_side, max_side: cuboid side as a fraction of each axis.
        noise_share: fraction of the cuboids filled with noise (the rest with another sample).
        generator: random generator (its device must be ``x``'s, or None).
        groups: the batch is this many equal blocks (e.g. the two views of :func:`ssl_views`) and
            a donor is always another sample of the same block.

    Returns:
        ``(masked, mask)``: the masked batch and the boolean mask ``(B, 1, X, Y, Z)`` of hidden voxels.
    """
    if max_side ** 3 > max_fraction:
        raise ValueError(f"max_side {max_side} gives cuboids larger than max_fraction {max_fraction}; "
                         f"use max_side <= {max_fraction ** (1 / 3):.3f}")
    if x.shape[0] % groups:
        raise ValueError(f"a batch of {x.shape[0]} samples does not split into {groups} equal groups")
    n, c, *spatial = x.shape
    b = n // groups  # samples per block
    spatial_shape = tuple(spatial)
    n_voxels = spatial[0] * spatial[1] * spatial[2]
    low, high = cuboid_boxes(n, spatial_shape, n_cuboids, min_side, max_side, generator, x.device)
    # The sum of volumes bounds their union, and is known before any mask is drawn.
    volumes = (high - low).prod(-1).float() / n_voxels  # (N, K)
    keep = torch.cumsum(volumes, dim=1) <= max_fraction + 1e-9  # a prefix of True per sample
    n_noise = max(1, int(round(noise_share * n_cuboids))) if b > 1 else n_cuboids
    noise_mask = boxes_to_masks(low[:, :n_noise], high[:, :n_noise], spatial_shape, keep[:, :n_noise])
    donor_mask = boxes_to_masks(low[:, n_noise:], high[:, n_noise:], spatial_shape, keep[:, n_noise:])

    if b > 1:
        shift = int(torch.randint(1, b, (1,), generator=generator, device=_gen_device(x, generator)))
        # The donor of sample i is sample (i - shift) % b of its own block.
        donor = torch.roll(x.view(groups, b, *x.shape[1:]), shifts=shift, dims=1).view_as(x)
        out = torch.where(donor_mask, donor, x)
    else:
        out = x.clone()
    # Noise is drawn only for the voxels it fills (donor cuboids drawn later cover earlier noise):
    # one value per hidden voxel and channel, in ``masked_scatter_``'s (B, C, X, Y, Z) order, scaled
    # by its own sample's and channel's statistics. Drawing a whole batch of noise and selecting
    # from it cost most of this function's time on the CPU (see benchmarks/ssl_augment.py).
    noise_only = noise_mask & ~donor_mask
    counts = noise_only.flatten(1).sum(1).repeat_interleave(c)  # (B * C,) noise values per sample and channel
    total = int(counts.sum())
    if total:
        # Every second voxel along each axis gives the statistics at an eighth of the cost.
        std, mean = torch.std_mean(x[:, :, ::2, ::2, ::2].float(), dim=(2, 3, 4))
        z = torch.randn(total, generator=generator, device=_gen_device(x, generator)).to(x.device)
        z = z * std.flatten().repeat_interleave(counts, output_size=total) \
            + mean.flatten().repeat_interleave(counts, output_size=total)
        out.masked_scatter_(noise_only.expand_as(x), z.to(x.dtype))
    return out, noise_mask | donor_mask


def ssl_views(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    **mask_kwargs,
) -> dict[str, torch.Tensor]:
    """Two independently rotated and masked views of a batch, with their targets.

    Returns a dict of ``(2B, ...)`` tensors (view 1 then view 2): ``rotated`` (the reconstruction
    target), ``masked`` (the network's input), ``labels`` (rotation labels) and ``mask``.
    """
    labels = torch.cat([random_rotations(x, generator), random_rotations(x, generator)])
    rotated = rotate_batch(x, labels, repeats=2)
    # Two groups keep another-sample donors inside the same view.
    masked, mask = mask_cuboids(rotated, generator=generator, groups=2, **mask_kwargs)
    return {"rotated": rotated, "masked": masked, "labels": labels, "mask": mask}
