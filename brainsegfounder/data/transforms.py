"""Preprocessing and augmentation, all TorchIO transforms, configurable from YAML.

Preprocessing (training, validation and prediction alike): canonical RAS orientation, optional
resampling to a target spacing, optional crop to the brain, padding to at least the patch size,
then per-modality z-score over brain (non-zero) voxels. Augmentation (training only): flips,
a small affine, per-modality intensity scale and shift, and (off by default) thick-slice
simulation per modality, for models that will read clinical series resampled from thick slices.

Example:
    >>> from brainsegfounder.data.transforms import Augmentation, preprocessing, augmentation
    >>> pre = preprocessing(patch_size=(64, 64, 64))
    >>> aug = augmentation(Augmentation(flip_probability=0.5))
    >>> [type(t).__name__ for t in pre]
    ['ToCanonical', 'PadToMinimumShape', 'ZNormalization']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchio as tio
from torchio.transforms.augmentation.random_transform import RandomTransform
from torchio.transforms.intensity_transform import IntensityTransform
from torchio.transforms.spatial_transform import SpatialTransform

from brainsegfounder.utils.errors import ConfigError

__all__ = ["Augmentation", "PreprocessingRecord", "ReplaceNonFinite", "preprocessing", "augmentation", "nonzero", "PadToMinimumShape",
           "RandomIntensityScaleShift", "CropToBrain"]


def nonzero(tensor: torch.Tensor) -> torch.Tensor:
    """Brain mask of a skull-stripped image: every voxel that is not exactly zero.

    A named function rather than a lambda so that transforms pickle into DataLoader workers.
    """
    return tensor != 0


class PadToMinimumShape(SpatialTransform):
    """Pad (with zeros, symmetrically) each spatial side that is shorter than ``min_shape`` voxels.

    TorchIO's ``CropOrPad`` forces one exact shape; this only grows what is too small, so that a
    patch of ``min_shape`` fits in every volume.

    Example:
        >>> import torch, torchio as tio
        >>> s = tio.Subject(t1=tio.ScalarImage(tensor=torch.ones(1, 50, 70, 40)))
        >>> PadToMinimumShape((64, 64, 64))(s).t1.shape
        (1, 64, 70, 64)
    """

    def __init__(self, min_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.min_shape = tuple(int(s) for s in min_shape)
        self.args_names = ["min_shape"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        shape = np.array(subject.spatial_shape)
        missing = np.maximum(np.array(self.min_shape) - shape, 0)
        if not missing.any():
            return subject
        before = missing // 2
        padding = tuple(int(v) for pair in zip(before, missing - before, strict=True) for v in pair)
        return tio.Pad(padding, padding_mode=0)(subject)


class RandomIntensityScaleShift(RandomTransform, IntensityTransform):
    """Multiply each modality by ``1 + U(-scale, scale)`` and add ``U(-shift, shift)``.

    The BraTS fine-tuning recipe's intensity augmentation (MONAI's ``RandScaleIntensity`` and
    ``RandShiftIntensity``, channel-wise) as a TorchIO transform, which TorchIO does not ship.
    Values are in z-score units when applied after normalisation.

    Example:
        >>> import torch, torchio as tio
        >>> s = tio.Subject(t1=tio.ScalarImage(tensor=torch.ones(1, 4, 4, 4)))
        >>> out = RandomIntensityScaleShift(scale=0.1, shift=0.1)(s)
        >>> bool((out.t1.data - 1).abs().max() <= 0.2 + 1e-6)
        True
    """

    def __init__(self, scale: float = 0.1, shift: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.shift = float(scale), float(shift)
        self.args_names = ["scale", "shift"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image in self.get_images(subject):
            factor = 1 + self.sample_uniform(-self.scale, self.scale)
            offset = self.sample_uniform(-self.shift, self.shift)
            image.set_data(image.data.float() * factor + offset)
        return subject


@dataclass
class Augmentation:
    """Training augmentation settings (probabilities are per transform, flips per axis).

    The defaults follow the BraTS fine-tuning recipe: flips on each axis with p = 0.5, intensity
    scale and shift of +-0.1; a small affine is off by default (it costs a whole-volume resample:
    about 5 s per 1 mm BraTS volume on one thread). On synthetic raw clinical studies,
    ``affine_probability=0.5`` made the small tumour core's volume steadier across the raw and the
    prepared path (largest TC difference 16.8% -> 7.4%, docs/clinical.md) without moving WT.
    """

    flip_probability: float = 0.5
    affine_probability: float = 0.0
    affine_degrees: float = 10.0
    affine_scales: float = 0.1
    intensity_probability: float = 1.0
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    #: Per modality, the probability that it is seen as if acquired with thick slices and
    #: resampled back (TorchIO's ``RandomAnisotropy``: one random axis, nearest-neighbour
    #: downsampling by a factor from ``anisotropy_downsampling``, linear upsampling). Each modality
    #: draws its own axis and factor, as each clinical series has its own slice direction and
    #: thickness (FLAIR 5 mm axial beside a 1 mm sagittal T1ce). Label maps are left as they are.
    #: 0 (default) turns it off. On synthetic raw studies, 0.5 gained nothing over the same steps
    #: without it (docs/clinical.md): measure it on your own thick-slice scans before relying on it.
    anisotropy_probability: float = 0.0
    anisotropy_downsampling: tuple[float, float] = (1.5, 5.0)

    def __post_init__(self):
        low, high = (float(v) for v in self.anisotropy_downsampling)
        if not 1 <= low <= high:
            raise ConfigError(f"data.augmentation.anisotropy_downsampling must be [low, high] with 1 <= low <= high "
                              f"(a slice-thickness factor), got {list(self.anisotropy_downsampling)}.")
        if not 0 <= self.anisotropy_probability <= 1:
            raise ConfigError(f"data.augmentation.anisotropy_probability must lie in 0..1, got {self.anisotropy_probability}.")


def preprocessing(
    patch_size: Sequence[int] | None = None,
    spacing: float | Sequence[float] | None = None,
    crop_to_brain: bool = False,
) -> list[tio.Transform]:
    """The deterministic steps applied to every subject, in order.

    Args:
        patch_size: pad volumes smaller than this (voxels) so a patch always fits.
        spacing: resample to this voxel size (mm); ``None`` keeps the data's own grid.
        crop_to_brain: crop to the bounding box of the non-zero (brain) voxels of the first modality.
    """
    steps: list[tio.Transform] = [tio.ToCanonical()]
    if spacing is not None:
        steps.append(tio.Resample(spacing))
    if crop_to_brain:
        steps.append(CropToBrain())
    if patch_size is not None:
        steps.append(PadToMinimumShape(patch_size))
    steps.append(tio.ZNormalization(masking_method=nonzero))
    return steps


@dataclass(frozen=True)
class PreprocessingRecord:
    """What prediction must repeat of training's data handling; owned by the data layer.

    A data module builds it (``datamodule.preprocessing_record``), tasks store it in every
    checkpoint under :data:`~brainsegfounder.checkpoints.PREPROCESSING_KEY`, and predictors and exports read it back, so a
    model always sees new scans the way it saw its training data.

    Example:
        >>> record = PreprocessingRecord(modalities=("flair", "t1ce", "t1", "t2"), layout="brats2021")
        >>> PreprocessingRecord.from_dict(record.to_dict()) == record
        True
        >>> record.accepts_missing       # a model trained with modality dropout lists them all
        ()
        >>> [type(t).__name__ for t in record.transforms()]
        ['ToCanonical', 'ZNormalization']
    """

    modalities: tuple[str, ...]
    layout: str | None = None
    spacing: float | None = None
    crop_to_brain: bool = False
    scheme: str | None = None
    roi_size: tuple[int, int, int] | None = None
    #: Modalities the model can do without (trained with modality dropout); empty: needs them all.
    accepts_missing: tuple[str, ...] = ()

    def transforms(self, patch_size: Sequence[int] | None = None, replace_non_finite: bool = False
                   ) -> list[tio.Transform]:
        """The deterministic preprocessing steps (:func:`preprocessing`) this record describes.

        ``replace_non_finite`` puts :class:`ReplaceNonFinite` first (``predict --non_finite zero``).
        """
        steps = preprocessing(patch_size, self.spacing, self.crop_to_brain)
        return [ReplaceNonFinite(), *steps] if replace_non_finite else steps

    def to_dict(self) -> dict:
        data = asdict(self)
        data["modalities"] = list(self.modalities)
        data["roi_size"] = list(self.roi_size) if self.roi_size is not None else None
        data["accepts_missing"] = list(self.accepts_missing)
        return data

    @classmethod
    def from_dict(cls, data: dict | None) -> PreprocessingRecord | None:
        """Read a stored record; ``None`` (or a record without modalities) gives ``None``."""
        if not data or not data.get("modalities"):
            return None
        known = {k: data.get(k) for k in ("layout", "spacing", "crop_to_brain", "scheme")}
        roi = data.get("roi_size")
        return cls(modalities=tuple(data["modalities"]), roi_size=tuple(roi) if roi else None,
                   accepts_missing=tuple(data.get("accepts_missing") or ()),
                   **{k: v for k, v in known.items() if v is not None})


class ReplaceNonFinite(tio.IntensityTransform):
    """Set NaN and +-Inf voxels of the intensity images to 0 (asked for with ``predict --non_finite zero``).

    Example:
        >>> import torch, torchio as tio
        >>> image = tio.ScalarImage(tensor=torch.tensor([[[[float("nan"), 1.0, float("inf")]]]]))
        >>> ReplaceNonFinite()(tio.Subject(t1=image))["t1"].data.flatten().tolist()
        [0.0, 1.0, 0.0]
    """

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image in self.get_images(subject):
            image.set_data(torch.nan_to_num(image.data, nan=0.0, posinf=0.0, neginf=0.0))
        return subject


class CropToBrain(SpatialTransform):
    """Crop every image to the bounding box of the non-zero voxels of the subject's first image."""

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        first = next(iter(subject.get_images(intensity_only=True)))
        mask = first.data.abs().sum(0) > 0
        if not mask.any():
            return subject
        idx = torch.nonzero(mask)
        low, high = idx.min(0).values.numpy(), idx.max(0).values.numpy() + 1
        shape = np.array(mask.shape)
        cropping = tuple(int(v) for pair in zip(low, shape - high, strict=True) for v in pair)
        return tio.Crop(cropping)(subject)


def augmentation(settings: Augmentation | None = None, modalities: Sequence[str] | None = None
                 ) -> list[tio.Transform]:
    """The random training transforms for the given :class:`Augmentation` settings.

    ``modalities`` names the subject's images, so that thick-slice simulation draws for each one on
    its own; without it, one draw applies to every intensity image alike.

    Example:
        >>> steps = augmentation(Augmentation(anisotropy_probability=0.5), modalities=["flair", "t1"])
        >>> [(type(t).__name__, t.include) for t in steps if type(t).__name__ == "RandomAnisotropy"]
        [('RandomAnisotropy', ['flair']), ('RandomAnisotropy', ['t1'])]
    """
    s = settings or Augmentation()
    steps: list[tio.Transform] = []
    if s.flip_probability > 0:
        steps.append(tio.RandomFlip(axes=(0, 1, 2), flip_probability=s.flip_probability))
    if s.affine_probability > 0:
        steps.append(tio.RandomAffine(scales=s.affine_scales, degrees=s.affine_degrees, p=s.affine_probability))
    if s.intensity_probability > 0 and (s.intensity_scale > 0 or s.intensity_shift > 0):
        steps.append(RandomIntensityScaleShift(s.intensity_scale, s.intensity_shift, p=s.intensity_probability))
    if s.anisotropy_probability > 0:
        low, high = (float(v) for v in s.anisotropy_downsampling)
        groups = [[m] for m in modalities] if modalities else [None]
        steps.extend(tio.RandomAnisotropy(axes=(0, 1, 2), downsampling=(low, high), include=group,
                                          p=s.anisotropy_probability) for group in groups)
    return steps
