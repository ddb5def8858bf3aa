"""Batch augmentations of the self-supervised objectives, vectorised on the batch's own device.

Two views of every sample are made by :func:`rotate_batch` (a 90-degree rotation in the plane of
the first two spatial axes, whose label the rotation head predicts) and :func:`mask_cuboids`
(random cuboids filled first with noise, then with the same region of another sample; the
inpainting decoder reconstructs what they hid). Nothing loops over samples or cuboids in Python:
rotations loop over the four angles, masks are built for all cuboids of all samples at once by
broadcasting, so a GPU batch never waits on the host.

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


def rotate_batch(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Rotate each sample ``x[i]`` by ``labels[i]`` quarter turns in :data:`ROTATION_PLANE`.

    ``rotate_batch(rotate_batch(x, k), (4 - k) % 4)`` is ``x`` again. The two rotated axes must be
    of equal length (cubic patches), so every sample keeps its shape.
    """
    a, b = ROTATION_PLANE
    if x.shape[a] != x.shape[b]:
        raise ValueError(f"rotation needs equal sides on axes {ROTATION_PLANE}, got shape {tuple(x.shape)}; "
                         "use cubic patches")
    labels = labels.to(x.device).long() % 4
    out = x.clone()
    # A loop over the three non-trivial angles, each applied at once to the samples that drew it
    # (gathered by index, so every sample is copied once, not once per angle).
    for k in (1, 2, 3):
        chosen = torch.nonzero(labels == k).flatten()
        if chosen.numel():
            out[chosen] = torch.rot90(x[chosen], k, dims=ROTATION_PLANE)
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide random cuboids of each sample: the first ones under noise, the rest under another sample.

    Per sample, ``n_cuboids`` cuboids are drawn and kept in draw order while the sum of their
    volumes stays within ``max_fraction`` of the voxels (the first always fits, since
    ``max_side ** 3 <= max_fraction`` is required), so the masked fraction (their union) lies in
    ``[min_side ** 3, max_fraction]``.
    The first ``noise_share`` of the cuboids are filled with Gaussian noise of the sample's own
    per-channel mean and standard deviation; the others with the same region of another sample of
    the batch (``x[(i + s) % B]`` for a random shift ``s`` in ``1..B-1``; noise when ``B == 1``).

    Args:
        x: batch ``(B, C, X, Y, Z)``.
        max_fraction: largest fraction of voxels masked per sample.
        n_cuboids: cuboids drawn per sample (before the fraction cap).
        min_side, max_side: cuboid side as a fraction of each axis.
        noise_share: fraction of the cuboids filled with noise (the rest with another sample).
        generator: random generator (its device must be ``x``'s, or None).

    Returns:
        ``(masked, mask)``: the masked batch and the boolean mask ``(B, 1, X, Y, Z)`` of hidden voxels.
    """
    if max_side ** 3 > max_fraction:
        raise ValueError(f"max_side {max_side} gives cuboids larger than max_fraction {max_fraction}; "
                         f"use max_side <= {max_fraction ** (1 / 3):.3f}")
    b, c, *spatial = x.shape
    spatial_shape = tuple(spatial)
    n_voxels = spatial[0] * spatial[1] * spatial[2]
    low, high = cuboid_boxes(b, spatial_shape, n_cuboids, min_side, max_side, generator, x.device)
    # The sum of volumes bounds their union, and is known before any mask is drawn.
    volumes = (high - low).prod(-1).float() / n_voxels  # (B, K)
    keep = torch.cumsum(volumes, dim=1) <= max_fraction + 1e-9  # a prefix of True per sample
    n_noise = max(1, int(round(noise_share * n_cuboids))) if b > 1 else n_cuboids
    noise_mask = boxes_to_masks(low[:, :n_noise], high[:, :n_noise], spatial_shape, keep[:, :n_noise])
    donor_mask = boxes_to_masks(low[:, n_noise:], high[:, n_noise:], spatial_shape, keep[:, n_noise:])

    flat = x.flatten(2)
    mean, std = flat.mean(-1), flat.std(-1)
    noise = torch.randn(x.shape, generator=generator, device=_gen_device(x, generator)).to(x.device, x.dtype)
    noise = noise * std[..., None, None, None] + mean[..., None, None, None]
    out = torch.where(noise_mask, noise, x)
    if b > 1:
        shift = int(torch.randint(1, b, (1,), generator=generator, device=_gen_device(x, generator)))
        donor = torch.roll(x, shifts=shift, dims=0)  # donor of sample i is sample (i - shift) % B
        out = torch.where(donor_mask, donor, out)
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
    both = torch.cat([x, x], dim=0)
    labels = random_rotations(both, generator)
    rotated = rotate_batch(both, labels)
    # Masking each view on its own keeps another-sample donors inside the same view.
    m1, k1 = mask_cuboids(rotated[: x.shape[0]], generator=generator, **mask_kwargs)
    m2, k2 = mask_cuboids(rotated[x.shape[0]:], generator=generator, **mask_kwargs)
    return {"rotated": rotated, "masked": torch.cat([m1, m2]), "labels": labels, "mask": torch.cat([k1, k2])}
