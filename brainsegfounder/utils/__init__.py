"""Base utilities every layer may use; they import nothing else of the package.

- :mod:`~brainsegfounder.utils.errors`: the user-facing error classes (one line, no traceback).
- :mod:`~brainsegfounder.utils.cli`: the commands' shared style (``command``, ``fail``, help).
- :mod:`~brainsegfounder.utils.safe_load`: reading any torch file with ``weights_only=True``.
- :mod:`~brainsegfounder.utils.allocator`: keeping freed memory for reuse (glibc malloc settings).
"""
