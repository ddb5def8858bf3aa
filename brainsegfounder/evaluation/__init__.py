"""Evaluation: rule sets that score a label scheme's regions, and pairing predictions with references.

- :mod:`~brainsegfounder.evaluation.rules`: which metrics a rule set (``brats2021``, ``brats2023``,
  ``brats2024``, ``atlas``, ``plain``) computes for each evaluated region of a label scheme.
- :mod:`~brainsegfounder.evaluation.pairing`: which prediction goes with which reference (the naming
  rules, to be replaced by the layout authority).
- :mod:`~brainsegfounder.evaluation.paired`, :mod:`~brainsegfounder.evaluation.study_files`: the
  low-label study's tables, paired differences with intervals, plots.
- :mod:`~brainsegfounder.evaluation.curves`: training curves from runs' ``metrics.csv`` (SSL losses, plateaus).

The command is :mod:`brainsegfounder.evaluate`.
"""
