"""Inference: find the cases, run the predictor over checkpoints, write the results.

- :mod:`~brainsegfounder.inference.inputs`: cases from a data set root, a case folder or files.
- :mod:`~brainsegfounder.inference.predictor`: checkpoints -> an ensemble that segments a case,
  through the one Gaussian sliding window (:mod:`brainsegfounder.models.sliding_window`, which
  validation and the overlay callback use too; it lives with the network so tasks can use it).
- :mod:`~brainsegfounder.inference.engines`: the ONNX Runtime engine and model export (ONNX,
  TorchScript, MONAI Bundle).
- :mod:`~brainsegfounder.inference.uncertainty`: entropy and variance maps, the quality score.
- :mod:`~brainsegfounder.inference.calibration`: temperatures, ECE/Brier, the flag threshold.
- :mod:`~brainsegfounder.inference.subsets`: Dice per available-modality subset (calibrate, robustness).
- :mod:`~brainsegfounder.inference.writers`: what ``predict`` writes (names, volumes, provenance).

Names are imported on first use, so ``import brainsegfounder.inference`` costs nothing.

>>> from brainsegfounder.inference import sliding_window_probabilities
>>> sliding_window_probabilities.__module__
'brainsegfounder.models.sliding_window'
"""

from __future__ import annotations

import importlib

__all__ = ["CasePrediction", "Predictor", "find_inputs", "sliding_window_probabilities"]

_WHERE = {"CasePrediction": "brainsegfounder.inference.case_prediction", "Predictor": "brainsegfounder.inference.predictor",
          "find_inputs": "brainsegfounder.inference.inputs",
          "sliding_window_probabilities": "brainsegfounder.models.sliding_window"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
