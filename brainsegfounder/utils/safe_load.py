"""The one safe way this package reads a torch file: tensors and plain data only, honest messages.

Every checkpoint path a user gives (``model.init_from``, ``predict --ckpt``, ``fit --ckpt_path``)
is read by :func:`safe_load`: ``torch.load(weights_only=True)``, with the numpy scalars and dtypes
that legitimate training scripts store (``best_acc`` as ``numpy.float64``; numpy 1.x and 2.x module
paths alike) allowed, and nothing else. A file that references code is refused and *described as
such* (it was not run); a truncated or foreign file is called corrupt. No message ever suggests
``weights_only=False``.

:func:`non_finite_tensors` lists the tensors of a state dict that hold NaN or Inf.

Example:
    >>> import tempfile, pathlib, numpy as np, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "released.pt"
    >>> torch.save({"state_dict": {"w": torch.ones(2)}, "best_acc": np.float64(0.9)}, path)
    >>> float(safe_load(path)["best_acc"])
    0.9
    >>> non_finite_tensors({"w": torch.tensor([1.0, float("nan")]), "b": torch.zeros(1)})
    {'w': 1}
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsegfounder.utils.errors import WeightsError

__all__ = ["safe_load", "non_finite_tensors", "ALLOWED_NUMPY_GLOBALS"]


def _numpy_globals() -> list:
    """numpy objects that plain training scripts pickle, under the names both numpy 1 and 2 use."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed: list = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray.scalar, f"{module}.scalar"), (multiarray._reconstruct, f"{module}._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and n != "ObjectDType"]
    return allowed


#: What :func:`safe_load` allows beyond torch's own weights-only set.
ALLOWED_NUMPY_GLOBALS = _numpy_globals()

# "Unsupported operand N" is not here: it is what a file that is no pickle at all (text, a
# truncated header) produces, so it is called corrupt, not code-carrying.
_REFUSED = (re.compile(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked", re.IGNORECASE),
            re.compile(r"Unsupported global: GLOBAL (\S+)"))


def safe_load(path: str | Path, what: str = "checkpoint", map_location: Any = "cpu", mmap: bool = False) -> Any:
    """Read a torch file without running any code from it.

    Args:
        path: the file.
        what: how to name the file in messages (``"model.init_from weights file"``, ``"--ckpt"``).
        map_location: where tensors go.
        mmap: map the file instead of reading it (for peeking at a few keys of a big file).

    Raises:
        WeightsError: missing, corrupt/truncated, or refused (it references code), each said as such.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist. Check the path.")
    try:
        with torch.serialization.safe_globals(ALLOWED_NUMPY_GLOBALS), warnings.catch_warnings():
            # torch warns about raw pickles of protocol > 2 before refusing them; we say why below.
            warnings.filterwarnings("ignore", message=r"Detected pickle protocol \d+ in the checkpoint")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        text = str(err)
        names = [found[1] for pattern in _REFUSED if (found := pattern.search(text))]
        # torch's weights-only reader stops at the first opcode it lacks (protocol 4's FRAME) before
        # it reaches any code reference: the opcodes are then listed (never run) to say what it holds.
        raw = _pickled_globals(path) if not names and "Unsupported operand" in text else None
        names = names or raw or []
        if names:
            raise WeightsError(
                f"{what} {path} contains code references that are not allowed: {', '.join(names[:3])}; it was not "
                "run. Only tensors, numbers and plain containers are read from weights files, because "
                "unpickling anything else can run code. Use a checkpoint written by this package or a "
                "plain state dict (torch.save({'state_dict': model.state_dict()}, 'weights.pt'))."
            ) from None
        if raw is not None:
            raise WeightsError(f"{what} {path} is a plain pickle file, not a torch checkpoint; save the weights "
                               "with torch.save({'state_dict': model.state_dict()}, 'weights.pt').") from None
        raise WeightsError(f"{what} {path} is corrupt or not a torch checkpoint ({_first_line(text)}). "
                           "Copy or download it again.") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as err:
        raise WeightsError(f"{what} {path} is corrupt or truncated ({type(err).__name__}: {_first_line(str(err))}). "
                           "Copy or download it again, or pick another checkpoint.") from None


def _pickled_globals(path: Path) -> list[str] | None:
    """``module.name`` of every global a raw pickle file references, read from its opcodes.

    :func:`pickletools.genops` only parses the byte stream; nothing is imported or called. A
    stream that is no complete pickle (a torch zip file, text, a truncated file) gives ``None``.
    """
    found: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for opcode, arg, _ in pickletools.genops(handle):
                if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                    strings.append(str(arg))
                elif opcode.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                if opcode.name == "STOP":
                    return list(dict.fromkeys(found))
    except Exception:  # noqa: BLE001 - any parse failure means "not a pickle we can describe"
        return None
    return None  # no STOP: truncated


def _first_line(text: str) -> str:
    # torch's messages run over many lines and end in advice we do not pass on.
    line = next((t.strip() for t in text.splitlines() if t.strip()), "")
    return line.split(". ")[0].rstrip(".")[:200]


def non_finite_tensors(state: Mapping[str, Any]) -> dict[str, int]:
    """``{name: count of NaN/Inf values}`` for every floating tensor of ``state`` that has any."""
    found = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                found[name] = bad
    return found
