"""Optional dependencies: import them where they are needed, or say in one line how to install them.

Example:
    >>> require("json").__name__
    'json'
    >>> require("no_such_module_xyz", "clinical")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    brainsegfounder.utils.errors.ConfigError: this needs no_such_module_xyz: pip install brainsegfounder[clinical]
"""

from __future__ import annotations

import importlib
from types import ModuleType

from brainsegfounder.utils.errors import ConfigError

__all__ = ["require"]


def require(module: str, extra: str = "clinical") -> ModuleType:
    """``import module``, or raise :class:`ConfigError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"this needs {module}: pip install brainsegfounder[{extra}]") from None
