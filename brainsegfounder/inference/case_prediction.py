"""What predicting one case gives: its label map, probabilities and uncertainty on the input's own grid.

:class:`~brainsegfounder.inference.predictor.Predictor` returns one :class:`CasePrediction` per case;
:mod:`brainsegfounder.inference.writers` writes it (label map, probabilities, uncertainty maps) and
``predict --png`` draws it.

Example:
    >>> import numpy as np, nibabel as nib
    >>> result = CasePrediction("case1", np.zeros((2, 2, 2), np.uint8), np.zeros((3, 2, 2, 2), np.float32),
    ...                         np.eye(4), nib.Nifti1Header(), (1.0, 1.0, 1.0), quality=0.2)
    >>> round(result.expected_dice, 2)
    0.8
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

__all__ = ["CasePrediction"]


@dataclass
class CasePrediction:
    """One case's segmentation on the input's own grid.

    Attributes:
        case_id: the case's id (the output file is ``<case_id>.nii.gz``).
        label: uint8 label map (X, Y, Z) in the scheme's convention, shaped like the input.
        probabilities: float32 (R, X, Y, Z) region probabilities on the same grid.
        affine: the input's affine (voxel -> mm, as nibabel reads it).
        header: the first modality's NIfTI header (written with the outputs).
        spacing: voxel size in mm along the three axes.
        image: the first modality's voxels on the input grid (the overlay's background).
        missing: the modalities the case lacked (or that were left out), given as constant channels.
        entropy: with ``uncertainty``, (X, Y, Z) predictive entropy of the mean probability, the
            largest over regions (bits, 0..1), on the input grid.
        variance: with ``uncertainty`` and two members or more, (R, X, Y, Z) variance of the
            probability across members (checkpoints x mirrorings).
        quality: with ``uncertainty``, the case's quality score (``1 -`` the Dice the model expects
            of itself, scaled by what its missing modalities cost; 0..1, higher = look first).
    """

    case_id: str
    label: np.ndarray
    probabilities: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, float, float]
    image: np.ndarray | None = None
    missing: tuple[str, ...] = ()
    entropy: np.ndarray | None = None
    variance: np.ndarray | None = None
    quality: float | None = None

    @property
    def expected_dice(self) -> float | None:
        """``1 - quality``: the Dice the model expects of its label map (higher = better; it means
        that only when the checkpoints were calibrated, :attr:`Predictor.calibrated`)."""
        return None if self.quality is None else 1.0 - self.quality
