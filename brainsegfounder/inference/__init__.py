"""Inference: find the cases, run the one sliding-window predictor, write the results.

- :mod:`~brainsegfounder.inference.inputs`: cases from a data set root, a case folder or files.
- :mod:`~brainsegfounder.inference.sliding_window`: the one Gaussian sliding-window function
  (validation, the overlay callback and ``predict`` all use it).
- :mod:`~brainsegfounder.inference.predictor`: checkpoints -> an ensemble that segments a case.
- :mod:`~brainsegfounder.inference.writers`: label maps, probabilities, ``volumes.csv``, atomically.

Names are imported on first use, so ``import brainsegfounder.inference`` costs nothing and the
tasks can import the sliding window without a cycle.

>>> from brainsegfounder.inference import sliding_window_probabilities
>>> sliding_window_probabilities.__module__
'brainsegfounder.inference.sliding_window'
"""

from __future__ import annotations

import importlib

__all__ = ["CasePrediction", "Predictor", "find_inputs", "sliding_window_probabilities"]

_WHERE = {"CasePrediction": "predictor", "Predictor": "predictor", "find_inputs": "inputs",
          "sliding_window_probabilities": "sliding_window"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
