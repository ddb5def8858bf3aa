"""Make an input look like what the model was trained on, where that is safe, and say where it is not.

The network was trained on skull-stripped BraTS-style images: background exactly 0, the brain
z-scored over its non-zero voxels. Two things real inputs do that silently change a label map:

- **A constant background that is not 0** (an export that adds an offset, a scanner's floor value):
  every voxel is then "non-zero", the z-score is taken over the whole box of air, and the tumour
  volume more than doubles (measured: WT 152.8 -> 367.5 mL). :func:`border_constant` finds such a
  value (one value on nearly all of the volume's outer faces) and :class:`ZeroConstantBackground`
  subtracts it from the whole image before normalisation. That undoes any intensity map
  ``a * x + b`` of a 0-background image (an added offset, a rescaling to [-1, 1]) exactly: the
  background is 0 again and the brain's z-score, which ignores ``a`` and ``b``, is unchanged.
- **How much empty space surrounds the head**: MONAI's sliding window lays its grid from the
  volume's first voxel, so padding a case with zeros moved every window and changed the labels
  (WT 152.8 -> 172.4 mL for a case padded to 400 x 400 x 300). :class:`CropToForeground` crops
  every image to the box of the non-zero voxels of all modalities plus a margin (padding with 0
  where the margin passes the volume's edge), as nnU-Net crops to the non-zero region: the grid is
  then anchored to the brain, and the label map does not depend on the padding.

Inputs with no background at 0 at all (not skull-stripped: air is noise) cannot be made to conform
here; :func:`zero_fraction` lets the caller say so by name.

Example:
    >>> import numpy as np
    >>> volume = np.full((20, 20, 20), 10.0); volume[5:15, 5:15, 5:15] = 50.0
    >>> border_constant(volume), border_constant(volume - 10.0)
    (10.0, None)
    >>> round(zero_fraction(volume - 10.0), 3)
    0.875
"""

from __future__ import annotations

import numpy as np
import torch
import torchio as tio
from torchio.transforms import SpatialTransform

__all__ = ["CropToForeground", "ZeroConstantBackground", "border_constant", "zero_fraction",
           "MIN_ZERO_FRACTION", "FOREGROUND_MARGIN"]

#: Share of the outer faces' voxels that must hold one value for it to be called the background.
BORDER_AGREEMENT = 0.95
#: Below this share of voxels at exactly 0 an image does not look skull-stripped (BraTS: ~0.85).
MIN_ZERO_FRACTION = 0.05
#: Voxels kept around the non-zero voxels (a lesion's edge may sit there after resampling back).
FOREGROUND_MARGIN = 2


def _faces(data: np.ndarray) -> np.ndarray:
    return np.concatenate([data[0].ravel(), data[-1].ravel(), data[:, 0].ravel(), data[:, -1].ravel(),
                           data[:, :, 0].ravel(), data[:, :, -1].ravel()])


def border_constant(data: np.ndarray) -> float | None:
    """The background value of a 3-D image when it is one non-zero constant, else ``None``.

    One value on at least 95% of the voxels of the six outer faces, and not 0 (a 0 background is
    what the model expects) nor NaN.
    """
    faces = _faces(np.asarray(data))
    values, counts = np.unique(faces, return_counts=True)
    top = int(np.argmax(counts))
    value = float(values[top])
    if counts[top] < BORDER_AGREEMENT * faces.size or value == 0 or not np.isfinite(value):
        return None
    return value


def zero_fraction(data: np.ndarray) -> float:
    """Share of voxels that are exactly 0 (the background of a skull-stripped image)."""
    data = np.asarray(data)
    return float(np.count_nonzero(data == 0)) / max(data.size, 1)


class ZeroConstantBackground(tio.IntensityTransform):
    """Subtract a constant non-zero background (:func:`border_constant`) from every intensity image.

    Images whose background is already 0, or is not one constant, pass unchanged.
    """

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image in self.get_images(subject):
            data = image.data.numpy()
            changed = False
            for channel in range(data.shape[0]):
                value = border_constant(data[channel])
                if value is None:
                    continue
                if not changed:
                    data, changed = data.copy(), True
                data[channel] -= np.float32(value)
            if changed:
                image.set_data(torch.from_numpy(data))
        return subject


class CropToForeground(SpatialTransform):
    """Crop every image to the box of the non-zero voxels of all intensity images, plus ``margin``.

    Where the margin passes the volume's edge the images are padded with 0, so a case padded with
    zeros and the same case unpadded give the same cropped volume, voxel for voxel. A subject with
    no non-zero voxel passes unchanged.

    Example:
        >>> s = tio.Subject(t1=tio.ScalarImage(tensor=torch.zeros(1, 30, 30, 30)))
        >>> s.t1.data[0, 0:5, 10:20, 12:14] = 1
        >>> CropToForeground(margin=2)(s).t1.shape
        (1, 9, 14, 6)
    """

    def __init__(self, margin: int = FOREGROUND_MARGIN, **kwargs):
        super().__init__(**kwargs)
        self.margin = int(margin)
        self.args_names = ["margin"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = list(subject.get_images(intensity_only=True))
        mask = torch.zeros(images[0].spatial_shape, dtype=torch.bool)
        for image in images:
            mask |= image.data.ne(0).any(0)
        if not mask.any():
            return subject
        idx = torch.nonzero(mask)
        low = idx.min(0).values.numpy() - self.margin
        high = idx.max(0).values.numpy() + 1 + self.margin
        shape = np.array(mask.shape)
        padding = np.stack([np.maximum(-low, 0), np.maximum(high - shape, 0)], axis=1)
        if padding.any():
            subject = tio.Pad(tuple(int(v) for v in padding.ravel()), padding_mode=0)(subject)
            low, high, shape = low + padding[:, 0], high + padding[:, 0], shape + padding.sum(1)
        cropping = tuple(int(v) for pair in zip(low, shape - high, strict=True) for v in pair)
        return tio.Crop(cropping)(subject)
