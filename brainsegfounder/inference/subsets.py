"""Dice per region for each subset of a model's modalities: the one loop ``calibrate`` and ``robustness`` share.

A subset's absent modalities are given as missing (``None``; a predictor turns them into the
constant channel a missing file becomes, :func:`~brainsegfounder.data.modality_dropout.missing_channels_tensor`),
the region masks predicted from what is left are scored against the reference by the challenges'
Dice (:func:`brainsegfounder.metrics.dice`, 1.0 when both are empty).

>>> import numpy as np
>>> reference = np.zeros((1, 4, 4, 4), bool); reference[0, :2] = True
>>> images = {"t1": np.ones((4, 4, 4)), "flair": np.ones((4, 4, 4))}
>>> oracle = lambda given: reference if given["flair"] is not None else np.zeros_like(reference)
>>> subset_dice(oracle, images, reference, ["t1", "flair"], [("t1", "flair"), ("t1",), ("flair",)])
{'t1+flair': [1.0], 't1': [0.0], 'flair': [1.0]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from brainsegfounder.metrics import dice

__all__ = ["given_images", "subset_dice", "subset_name", "window_masks"]

#: ``given images -> (R, X, Y, Z)`` boolean region masks, one per output channel.
PredictMasks = Callable[[Mapping[str, Any]], Any]


def subset_name(subset: Sequence[str]) -> str:
    """``("flair", "t1") -> "flair+t1"`` (the name tables and checkpoints use)."""
    return "+".join(subset)


def given_images(images: Mapping[str, Any], modalities: Sequence[str], subset: Sequence[str]) -> dict[str, Any]:
    """``images`` with the modalities outside ``subset`` given as missing (``None``), in channel order."""
    return {m: (images[m] if m in subset else None) for m in modalities}


def subset_dice(predict_masks: PredictMasks, images: Mapping[str, Any], reference, modalities: Sequence[str],
                subsets: Sequence[Sequence[str]]) -> dict[str, list[float]]:
    """``{subset name: [Dice per region]}`` of one case, each subset predicted by ``predict_masks``.

    Args:
        predict_masks: given images (``None`` for a missing one) -> region masks ``(R, X, Y, Z)``.
        images: modality -> the case's preprocessed ``(X, Y, Z)`` image (array or tensor).
        reference: the reference region masks ``(R, X, Y, Z)``.
        modalities: the model's modalities in channel order.
        subsets: the subsets to try.
    """
    reference = np.asarray(reference)
    out = {}
    for subset in subsets:
        predicted = np.asarray(predict_masks(given_images(images, modalities, subset)))
        out[subset_name(subset)] = [dice(p, r) for p, r in zip(predicted, reference, strict=True)]
    return out


def window_masks(module, modalities: Sequence[str], threshold: float) -> PredictMasks:
    """A segmentation module's region masks through the one sliding window (brain box, as ``predict``)."""
    from brainsegfounder.data.modality_dropout import missing_channels_tensor
    from brainsegfounder.models.sliding_window import sliding_window_probabilities

    roi, batch, overlap = module.roi_size, module.hparams.sw_batch_size, module.hparams.sw_overlap

    def predict(given: Mapping[str, Any]):
        x = missing_channels_tensor(dict(given), list(modalities)).unsqueeze(0)
        probabilities = sliding_window_probabilities(x, [module], roi, batch, overlap, bbox=True)
        return (probabilities[0] > threshold).cpu().numpy()

    return predict
