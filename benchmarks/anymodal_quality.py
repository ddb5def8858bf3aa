"""Does the quality score find the bad cases? Spearman rho between quality score and true Dice.

Held-out cases (a run's ``split.json`` ``val`` subjects) are written again with deliberate
degradations, each a plain nibabel rewrite of the case's files on its own grid:

- ``original``: unchanged;
- ``noise``: Gaussian noise of 0.5 and 1.0 times the brain's intensity standard deviation;
- ``bias``: a strong smooth multiplicative bias field, ``exp(+-0.8)`` across the head, and a
  weaker one (``exp(+-0.4)``);
- ``no_t1ce``: the T1ce file left out (the model must accept it missing);
- ``lowres``: every modality averaged over 3 x 3 x 3 voxel blocks and repeated back (a coarser
  acquisition on the same grid).

Each is predicted with ``uncertainty`` by the real predictor; its Dice (mean over regions,
the reference on the input grid) and its quality score go into ``quality.csv``, and Spearman's
rho over all of them is printed (expected negative: less sure, lower Dice).

::

    python benchmarks/anymodal_quality.py --ckpt runs/demo_anymodal/.../last.ckpt --data /tmp/am_data \\
        --split runs/demo_anymodal/finetune/version_0/split.json --out /tmp/am_quality
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np

MODALITIES = ("flair", "t1ce", "t1", "t2")


def _bias(shape: tuple[int, int, int], strength: float) -> np.ndarray:
    """A smooth field exp(strength * g), g a fixed linear-plus-quadratic ramp in -1..1 across the grid."""
    axes = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    g = 0.6 * axes[0] + 0.3 * axes[1] ** 2 - 0.4 * axes[2]
    g = 2 * (g - g.min()) / (g.max() - g.min()) - 1
    return np.exp(strength * g)


def _lowres(data: np.ndarray, block: int = 3) -> np.ndarray:
    shape = data.shape
    padded = np.pad(data, [(0, -s % block) for s in shape], mode="edge")
    p = padded.shape
    means = padded.reshape(p[0] // block, block, p[1] // block, block, p[2] // block, block).mean((1, 3, 5))
    return np.repeat(np.repeat(np.repeat(means, block, 0), block, 1), block, 2)[: shape[0], : shape[1], : shape[2]]


def variants(images: dict[str, np.ndarray], seed: int) -> dict[str, dict[str, np.ndarray | None]]:
    """The degraded versions of one case's images (``None``: the file is left out)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray | None]] = {"original": dict(images)}
    for level in (0.5, 1.0):
        noisy = {}
        for m, x in images.items():
            brain = x != 0
            noisy[m] = np.where(brain, x + rng.normal(0, level * x[brain].std(), x.shape), 0).astype(np.float32)
        out[f"noise{level:g}"] = noisy
    for strength in (0.4, 0.8):
        field = _bias(next(iter(images.values())).shape, strength)
        out[f"bias{strength:g}"] = {m: (x * field).astype(np.float32) for m, x in images.items()}
    out["no_t1ce"] = {m: (None if m == "t1ce" else x) for m, x in images.items()}
    out["lowres"] = {m: _lowres(x).astype(np.float32) for m, x in images.items()}
    return out


def write_cases(data: Path, subjects: list[str], out: Path) -> list[Path]:
    """Write every variant of every subject as a BraTS 2021 case folder under ``out``."""
    folders = []
    for n, subject in enumerate(subjects):
        source = data / subject
        reference = nib.load(source / f"{subject}_seg.nii.gz")
        images = {m: np.asarray(nib.load(source / f"{subject}_{m}.nii.gz").dataobj, np.float32) for m in MODALITIES}
        for name, given in variants(images, seed=n).items():
            case = f"{subject}-{name}"
            folder = out / case
            folder.mkdir(parents=True, exist_ok=True)
            for m, x in given.items():
                if x is not None:
                    nib.save(nib.Nifti1Image(x, reference.affine), folder / f"{case}_{m}.nii.gz")
            nib.save(nib.Nifti1Image(np.asarray(reference.dataobj), reference.affine), folder / f"{case}_seg.nii.gz")
            folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> dict:
    from scipy.stats import spearmanr

    from brainsegfounder.inference.inputs import find_inputs
    from brainsegfounder.inference.predictor import Predictor
    from brainsegfounder.metrics import dice

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    subjects = json.loads(args.split.read_text())["val"]
    folders = write_cases(args.data, subjects, args.out / "cases")
    predictor = Predictor.from_checkpoints([args.ckpt], device="cpu")
    rows = []
    for folder in folders:
        case = find_inputs([folder], predictor.modalities, allow_missing=True)[0]
        result = predictor.predict_case(case, uncertainty=True)
        reference = np.asarray(nib.load(folder / f"{folder.name}_seg.nii.gz").dataobj)
        scores = [dice(p, r) for p, r in zip(predictor.scheme.channel_masks(result.label),
                                             predictor.scheme.channel_masks(reference), strict=True)]
        rows.append({"case": folder.name, "variant": folder.name.split("-", 1)[1], "quality": result.quality,
                     "dice_mean": float(np.mean(scores)), "missing": "+".join(result.missing)})
        print(f"{folder.name}: quality {result.quality:.4f}  Dice {rows[-1]['dice_mean']:.3f}", flush=True)
    with (args.out / "quality.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rho = spearmanr([r["quality"] for r in rows], [r["dice_mean"] for r in rows])
    complete = [r for r in rows if not r["missing"]]
    rho_complete = spearmanr([r["quality"] for r in complete], [r["dice_mean"] for r in complete])
    summary = {"cases": len(rows), "spearman_rho": float(rho.statistic), "p_value": float(rho.pvalue),
               "complete_cases": len(complete), "spearman_rho_complete": float(rho_complete.statistic),
               "p_value_complete": float(rho_complete.pvalue)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
