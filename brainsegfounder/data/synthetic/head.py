"""A head around a synthetic (skull-stripped) brain: CSF rim, skull, scalp, air with noise.

The synthetic cases are skull-stripped BraTS look-alikes (0 outside the brain). A clinical scan
is not: :func:`add_head` wraps the brain in shells measured outward from a smoothed brain
envelope, with intensities per contrast relative to the brain's own median signal:

=====================  ==========  =========================================================
shell (mm outward)      thickness   signal (T1 / T1ce / T2 / FLAIR, x the brain's median)
=====================  ==========  =========================================================
CSF rim                 0-1.5       0.3 / 0.3 / 1.8 / 0.2 (also fills the envelope's gaps)
inner + outer table     1.5 + 1.5   0.08 (cortical bone: no signal in any contrast)
diploe (marrow)         2           1.1 / 1.1 / 0.9 / 0.9 (fatty marrow)
muscle / galea          2           0.55 / 0.55 / 0.5 / 0.5
subcutaneous fat        4           1.3 / 1.3 / 1.0 / 1.1
skin                    1.5         0.7 / 0.7 / 0.6 / 0.6
air                     rest        0, with Rician noise (2% of the brain's median)
=====================  ==========  =========================================================

Each shell's thickness varies smoothly by up to about +-1 mm, so the skull is not a perfect
offset of the brain. It is a simplification (no face, eyes, sinuses or neck; a closed shell also
wraps the brainstem's lower end), good enough to test skull-stripping and registration glue, not
to benchmark a skull-stripping method. Hand-written glue over scipy.ndimage.

Example:
    >>> import numpy as np
    >>> brain = np.zeros((40, 40, 40), bool); brain[12:28, 12:28, 12:28] = True
    >>> image = np.where(brain, 100.0, 0.0).astype(np.float32)
    >>> head = add_head({"t1": image}, brain, spacing=2.0, rng=np.random.default_rng(0))
    >>> float((head.images["t1"] == 0).mean()) < 0.05, head.pad
    (True, 11)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Head", "add_head", "SHELLS"]

#: (name, thickness mm, {contrast: signal relative to the brain's median}), inside out.
SHELLS: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("csf", 1.5, {"t1": 0.3, "t1ce": 0.3, "t2": 1.8, "flair": 0.2}),
    ("inner table", 1.5, {"t1": 0.08, "t1ce": 0.08, "t2": 0.08, "flair": 0.08}),
    ("diploe", 2.0, {"t1": 1.1, "t1ce": 1.1, "t2": 0.9, "flair": 0.9}),
    ("outer table", 1.5, {"t1": 0.08, "t1ce": 0.08, "t2": 0.08, "flair": 0.08}),
    ("muscle", 2.0, {"t1": 0.55, "t1ce": 0.55, "t2": 0.5, "flair": 0.5}),
    ("fat", 4.0, {"t1": 1.3, "t1ce": 1.3, "t2": 1.0, "flair": 1.1}),
    ("skin", 1.5, {"t1": 0.7, "t1ce": 0.7, "t2": 0.6, "flair": 0.6}),
)
#: Room left around the head (mm) when the volume is padded.
MARGIN_MM = 6.0
_NOISE = 0.02


@dataclass
class Head:
    """Images with a head, on the input grid padded by ``pad`` voxels on every side.

    Attributes:
        images: modality -> float32 volume (brain, shells, noisy air).
        brain: bool brain mask (the input's brain, padded).
        head: bool mask of everything that is not air.
        pad: voxels added on each side (the affine's origin moves by ``-pad`` voxels).
    """

    images: dict[str, np.ndarray]
    brain: np.ndarray
    head: np.ndarray
    pad: int

    def affine(self, affine: np.ndarray) -> np.ndarray:
        """The padded volume's voxel-to-world matrix, from the input's."""
        out = np.array(affine, dtype=float)
        out[:3, 3] = affine[:3, :3] @ np.full(3, -self.pad) + affine[:3, 3]
        return out


def _contrast(modality: str) -> str:
    from brainsegfounder.data.synthetic.contrasts import CONTRAST

    return CONTRAST.get(modality.lower(), "t1")


def add_head(images: dict[str, np.ndarray], brain: np.ndarray, spacing: float,
             rng: np.random.Generator) -> Head:
    """Wrap each skull-stripped image's brain in a head (see the module's table).

    Args:
        images: modality name (flair, t1ce, t1, t2 or a synonym) -> volume, 0 outside ``brain``.
        brain: bool brain mask on the same grid.
        spacing: the (isotropic) voxel size in mm.
        rng: random stream for the shells' thickness and the noise.
    """
    total = sum(t for _, t, _ in SHELLS) + MARGIN_MM + 1.0
    pad = int(math.ceil(total / spacing))
    brain = np.pad(np.asarray(brain, bool), pad)
    # The skull follows a smoothed envelope of the brain, not its sulci.
    envelope = ndimage.gaussian_filter(brain.astype(np.float32), sigma=3.0 / spacing) > 0.2
    envelope = ndimage.binary_fill_holes(envelope | brain)
    outside = ndimage.distance_transform_edt(~envelope, sampling=spacing).astype(np.float32)
    wobble = ndimage.gaussian_filter(rng.standard_normal(brain.shape).astype(np.float32), sigma=8.0 / spacing)
    wobble *= np.float32(1.0 / max(float(np.abs(wobble).max()), 1e-6))
    depth = outside + wobble  # about +-1 mm of smooth variation
    edges = np.cumsum([t for _, t, _ in SHELLS])
    shell = np.searchsorted(edges, depth, side="right")  # 0 = csf rim ... len(SHELLS) = air
    shell[envelope & ~brain] = 0
    head = (shell < len(SHELLS)) & ~brain
    out = {}
    for name, image in images.items():
        image = np.pad(np.asarray(image, np.float32), pad)
        median = float(np.median(image[brain & (image > 0)])) if (brain & (image > 0)).any() else 1.0
        signal = np.array([s[_contrast(name)] for _, _, s in SHELLS] + [0.0], np.float32) * np.float32(median)
        texture = 1 + 0.05 * ndimage.gaussian_filter(rng.standard_normal(brain.shape).astype(np.float32), 1.0)
        scalp = ndimage.gaussian_filter(signal[shell] * texture, sigma=0.5)  # partial volume at the edges
        sigma = np.float32(_NOISE * median)
        noise = rng.standard_normal((2, *brain.shape), dtype=np.float32) * sigma
        rician = np.sqrt((scalp + noise[0]) ** 2 + noise[1] ** 2)
        out[name] = np.where(brain, image, rician).astype(np.float32)
    return Head(images=out, brain=brain, head=head | brain, pad=pad)
