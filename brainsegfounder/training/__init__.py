"""The training run's machinery around ``Trainer.fit`` (used by the ``fit`` command).

- :mod:`~brainsegfounder.training.checkpointing`: atomic checkpoints, best and last, resume.
- :mod:`~brainsegfounder.training.callbacks`: run identity, config to loggers, overlays, seen subjects.
- :mod:`~brainsegfounder.training.guards`: stop on a non-finite loss or weights.
- :mod:`~brainsegfounder.training.progress`: the step progress bar.
- :mod:`~brainsegfounder.training.console`: what a run prints (metrics table, outputs panel).
- :mod:`~brainsegfounder.training.preflight`: the checks before a run starts.
- :mod:`~brainsegfounder.training.fast_help`: ``--help`` read from the source, without importing torch.

Nothing here is imported by this ``__init__``: ``fit --help`` must stay light.
"""
