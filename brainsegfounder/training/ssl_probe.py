"""What an SSL checkpoint learnt, measured on brains it never saw: rotation, contrastive, inpainting.

The validation metrics an SSL run logs are taken on a few centre crops (two brains give four views:
an accuracy moves in steps of 0.25), so "the rotation head is at chance" cannot be told from
"it is a little better than chance". This probe draws many random crops from held-out brains and
scores the three objectives on them, the way training poses them (:func:`ssl_views`: rotated,
then masked), with a fixed seed so that two checkpoints see the same crops, rotations and masks:

- **rotation accuracy**: every crop in each of the four quarter turns (chance 0.25);
- **contrastive accuracy**: among the ``2N`` views of all ``N`` crops at once, how often a view's
  most similar other view is its own pair (chance ``1 / (2N - 1)``, far harder than a batch of 2);
- **inpainting**: L1 error inside the hidden cuboids, of the reconstruction and of filling them
  with the visible voxels' mean (per view and channel: about what a decoder that learnt nothing
  about anatomy scores), and their ratio (below 1: the decoder fills in); the error of the masked
  input itself (noise and another crop's content) is in the JSON too.

Example (a checkpoint that ``python -m brainsegfounder.fit --config experiments/study_stage1.yaml`` wrote)::

    python -m brainsegfounder.training.ssl_probe --ckpt runs/study/stage1/version_0/checkpoints/last.ckpt \\
        --root data/heldout_ukb --layout ukb --crops 8
    python -m brainsegfounder.training.ssl_probe --ckpt "[paper=a/last.ckpt, ours=b/last.ckpt]" ...   # side by side

Written by hand: no library scores a SimMIM/SwinUNETR-style SSL checkpoint; the crops come from
TorchIO (``UniformSampler``), the views and the losses' parts from this package's SSL task.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torchio as tio

from brainsegfounder.data.datamodule import images_to_tensor
from brainsegfounder.data.layouts import cases_to_subjects, read_cases
from brainsegfounder.data.transforms import preprocessing
from brainsegfounder.models.ssl_augment import mask_cuboids, rotate_batch
from brainsegfounder.models.ssl_heads import contrastive_accuracy
from brainsegfounder.tasks.ssl import SSLPretrainModule
from brainsegfounder.utils.cli import command
from brainsegfounder.utils.errors import DataError, WeightsError

__all__ = ["held_out_crops", "probe", "main"]


def held_out_crops(root: str | Path, layout: str, modalities: list[str], patch_size: int, crops: int,
                   seed: int = 0, spacing: float | None = None, crop_to_brain: bool = False) -> torch.Tensor:
    """``crops`` random crops per brain under ``root``, preprocessed as SSL training does: ``(N, C, p, p, p)``."""
    cases = read_cases(layout, root, modalities=modalities)
    transform = tio.Compose(preprocessing((patch_size,) * 3, spacing, crop_to_brain))
    sampler = tio.UniformSampler(patch_size)
    torch.manual_seed(seed)  # TorchIO's samplers draw from torch's global generator
    out = []
    for subject in cases_to_subjects(cases):
        subject = transform(subject)
        for patch in sampler(subject, crops):
            out.append(images_to_tensor({m: patch[m].data[None] for m in modalities}, modalities))
    if not out:
        raise DataError(f"no {layout} brains under {root} to probe; pass --root a folder of held-out subjects.")
    return torch.cat(out)


@torch.no_grad()
def probe(module: SSLPretrainModule, x: torch.Tensor, seed: int = 0, chunk: int = 8) -> dict[str, float]:
    """Rotation, contrastive and inpainting scores of ``module`` on the crops ``x`` (see the module doc)."""
    module.eval()
    net = module.net
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    labels = torch.arange(4).repeat_interleave(n)  # every crop in every quarter turn
    rotated = rotate_batch(x, labels, repeats=4)
    masked, mask = mask_cuboids(rotated, generator=generator, groups=4, **module.mask_kwargs)
    logits, errors, mean_fill, masked_fill = [], [], [], []
    for i in range(0, 4 * n, chunk):
        view, target = masked[i:i + chunk], rotated[i:i + chunk]
        out = net(view)
        logits.append(out["rotation"])
        hidden = mask[i:i + chunk].expand_as(target)
        visible = (~hidden).float()
        fill = (view * visible).sum((2, 3, 4), keepdim=True) / visible.sum((2, 3, 4), keepdim=True).clamp(min=1)
        errors.append((out["reconstruction"] - target).abs()[hidden].sum())
        mean_fill.append((fill.expand_as(target) - target).abs()[hidden].sum())
        masked_fill.append((view - target).abs()[hidden].sum())
    predicted = torch.cat(logits).argmax(1)
    hidden_voxels = float(mask.expand_as(rotated).sum())
    # Contrastive: the first two quarter-turn views of each crop (0 and 1 turns) as its pair, all at once.
    pairs = torch.cat([masked[:n], masked[n:2 * n]])
    projections = torch.cat([net.contrastive_head(_pooled(net, pairs[i:i + chunk]))
                             for i in range(0, 2 * n, chunk)])
    projections = net.contrastive_norm(projections)
    l1, l1_mean, l1_masked = (float(sum(parts)) / hidden_voxels for parts in (errors, mean_fill, masked_fill))
    return {
        "crops": n,
        "rotation_accuracy": float((predicted == labels).float().mean()),
        **{f"rotation_accuracy_{k * 90}": float((predicted[labels == k] == k).float().mean()) for k in range(4)},
        "contrastive_accuracy": float(contrastive_accuracy(projections)),
        "contrastive_chance": 1 / (2 * n - 1),
        "inpainting_l1": l1,
        "mean_fill_l1": l1_mean,
        "masked_input_l1": l1_masked,
        "inpainting_ratio": l1 / l1_mean,
    }


def _pooled(net, x: torch.Tensor) -> torch.Tensor:
    tokens = net.swinViT(x.contiguous())[4].flatten(2).transpose(1, 2)
    return tokens.mean(1) if net.contrastive_pooling == "mean" else tokens[:, 1]


def run(ckpt: list[str] | str, root: str, layout: str = "ukb", crops: int = 8, seed: int = 0,
        out: str | None = None) -> list[dict]:
    """Probe SSL checkpoints on held-out brains; print one table, optionally write JSON.

    Args:
        ckpt: an SSL checkpoint (Stage 1 or 2) or a list of them, ``"[a=path, b=path]"``; each
            ``path`` or ``name=path``.
        root: a folder of brains none of the checkpoints trained on.
        layout: the data layout of ``root``.
        crops: random crops per brain (the same crops for every checkpoint).
        seed: seed of the crops, rotations and masks.
        out: JSON file to write the rows to.
    """
    entries = [entry.rpartition("=") for entry in ([ckpt] if isinstance(ckpt, str) else ckpt)]
    missing = [path for _, _, path in entries if not Path(path).is_file()]
    if missing:  # before minutes of probing the others
        raise WeightsError(f"checkpoint(s) not found: {', '.join(missing)}; pass the last.ckpt an SSL fit run wrote "
                           "(runs/<name>/stage1/version_N/checkpoints/last.ckpt).")
    rows, cache = [], {}
    for name, _, path in entries:
        module = SSLPretrainModule.from_checkpoint(path)
        record = module.preprocessing_record
        key = (tuple(module.modalities), module.hparams.get("roi_size", [64])[0])
        if key not in cache:
            cache[key] = held_out_crops(root, layout, list(module.modalities), key[1], crops, seed,
                                        getattr(record, "spacing", None), getattr(record, "crop_to_brain", False))
        rows.append({"name": name or Path(path).stem, "ckpt": path, **probe(module, cache[key], seed)})
    header = ["name", "crops", "rotation_accuracy", "contrastive_accuracy", "contrastive_chance", "inpainting_ratio"]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{row[h]:.3f}" if isinstance(row[h], float) else str(row[h]) for h in header) + " |")
    if out:
        Path(out).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main() -> None:
    command(run, prog="python -m brainsegfounder.training.ssl_probe")


if __name__ == "__main__":
    main()
