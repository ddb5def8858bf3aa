"""Kept so that ``from brainsegfounder.data.manifest import read_manifest`` still works.

The manifest reader is a layout family now: :mod:`brainsegfounder.data.layouts.manifest`.
"""

from brainsegfounder.data.layouts.manifest import *  # noqa: F403
from brainsegfounder.data.layouts.manifest import __all__  # noqa: F401
