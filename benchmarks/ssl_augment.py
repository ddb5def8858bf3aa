"""SSL view augmentation: our batched rotation + cuboid masking vs a per-sample, per-cuboid loop.

The baseline is the shape of the original pretraining code's augmentation (written here from its
description, not copied): for each sample, rotate it, then add cuboids one at a time, each filled
with noise of its own size, checking the masked fraction after each until the cap is reached; then
a second round of cuboids filled with another sample's content. Ours
(:func:`brainsegfounder.models.ssl_augment.ssl_views`) makes both views of the whole batch with no
Python loop over samples or cuboids. Both run on the same batch, on the GPU when there is one.

    python -m benchmarks.ssl_augment          # quick (64^3), prints the rows
"""

from __future__ import annotations

import torch

from benchmarks.common import Result, time_repeats
from brainsegfounder.models.ssl_augment import ssl_views

__all__ = ["run", "loop_views"]


def _loop_mask(x: torch.Tensor, donor: torch.Tensor | None, max_fraction: float, min_side: float,
               max_side: float, generator: torch.Generator) -> torch.Tensor:
    """One sample ``(C, X, Y, Z)``: cuboids one at a time until ``max_fraction / 2`` is covered."""
    c, *shape = x.shape
    out = x.clone()
    mask = torch.zeros(shape, dtype=torch.bool, device=x.device)
    total = mask.numel()
    mean, std = x.mean(), x.std()
    while True:
        sides = [max(1, int(round(n * (min_side + (max_side - min_side) * float(torch.rand(1, generator=generator))))))
                 for n in shape]
        starts = [int(torch.randint(0, n - s + 1, (1,), generator=generator)) for n, s in zip(shape, sides, strict=True)]
        region = tuple(slice(a, a + s) for a, s in zip(starts, sides, strict=True))
        trial = mask.clone()
        trial[region] = True
        if float(trial.sum()) / total > max_fraction / 2:
            break
        mask = trial
        if donor is None:
            noise = torch.randn((c, *sides), generator=generator).to(x.device) * std + mean
            out[(slice(None), *region)] = noise
        else:
            out[(slice(None), *region)] = donor[(slice(None), *region)]
    return out


def loop_views(x: torch.Tensor, generator: torch.Generator, max_fraction: float = 0.3) -> torch.Tensor:
    """Two views of ``x`` made one sample and one cuboid at a time (the baseline)."""
    views = []
    for _ in range(2):
        batch = []
        rotated = []
        for i in range(x.shape[0]):
            k = int(torch.randint(0, 4, (1,), generator=generator))
            rotated.append(torch.rot90(x[i], k, dims=(1, 2)))
        for i in range(x.shape[0]):
            sample = _loop_mask(rotated[i], None, max_fraction, 0.1, 0.3, generator)
            j = int(torch.randint(0, x.shape[0], (1,), generator=generator))
            if j != i:
                sample = _loop_mask(sample, rotated[j], max_fraction, 0.1, 0.3, generator)
            batch.append(sample)
        views.append(torch.stack(batch))
    return torch.cat(views)


def run(full: bool = False) -> list[Result]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    side, repeats = (96, 7) if full else (64, 5)
    x = torch.randn(4, 2, side, side, side, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g_cpu = torch.Generator().manual_seed(0)
    g_dev = torch.Generator(device=device).manual_seed(0)

    def ours():
        ssl_views(x, generator=g_dev)
        sync()

    def baseline():
        loop_views(x, g_cpu)
        sync()

    # Interleaved, one call of each per round, so that load from other processes hits both alike.
    ours_s, base_s = [], []
    for _ in range(repeats):
        ours_s += time_repeats(ours, 1, warmup=0 if ours_s else 1)
        base_s += time_repeats(baseline, 1, warmup=0 if base_s else 1)
    return [Result(
        name=f"SSL views (rotation + cuboid masking), batch 4x2x{side}^3, {device.type}",
        ours="ssl_views (batched, no per-sample or per-cuboid loop)",
        baseline="per-sample, per-cuboid Python loop (the original's shape)",
        unit="batches/s", ours_samples=[1 / t for t in ours_s], baseline_samples=[1 / t for t in base_s],
        target_op=">=", target=10.0,
        note="two views per batch; masked fraction capped at 0.3 in both",
        extra={"device": str(device)},
    )]


if __name__ == "__main__":
    for r in run():
        print(f"{r.name}: ours {r.ours_median:.2f} {r.unit}, baseline {r.baseline_median:.2f} {r.unit}, "
              f"ratio {r.ratio:.1f}x (target {r.target_op} {r.target}x, {'met' if r.met else 'not met'})")
