"""What ``fit`` refuses before training, and how it keeps its output quiet and its folders clean.

Config mistakes that would surface as a traceback deep inside PyTorch are said up front in one
line (:func:`check_config`, :func:`short_parser_error`); a refused start leaves no empty
``version_N`` folder behind (:func:`snapshot_run_folders`, :func:`remove_refused_start`); and
Lightning's advertisements and repeated notices are dropped (:func:`silence_lightning_noise`).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from pytorch_lightning.cli import LightningArgumentParser

from brainsegfounder.utils.cli import fail
from brainsegfounder.utils.errors import BrainSegFounderError, ConfigError

__all__ = ["check_config", "remove_refused_start", "short_parser_error", "silence_lightning_noise",
           "snapshot_run_folders"]


#: Lightning lines that say nothing about this run: advertisements, and notices repeated at every
#: stage of the demo about callbacks this CLI adds on purpose.
NOISE = ("💡 Tip:", "Trainer already configured with model summary callbacks")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def silence_lightning_noise() -> None:
    """Drop :data:`NOISE` from Lightning's log, and two warnings of library internals (idempotent).

    The warnings: LightningCLI's "args ... and command line arguments" when a program (the demo,
    the low-label study) calls :func:`main` with its own ``args``; and torch's deprecation of
    ``LeafSpec`` raised inside Lightning's own code, which a user cannot act on.
    """
    import warnings

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


_NOISE = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "Parser key", "- Expected a <class 'NoneType'>",
          "- Problem with given class_path")


def short_parser_error(message: str) -> str:
    r"""jsonargparse's nested union report as one line: the option's dotted name and the reason.

    >>> short_parser_error('Parser key "data":\n  Errors:\n    - Problem with given class_path \'X\':\n'
    ...                    '        Parser key "batch_size":\n          Expected a <class \'int\'>. Got value: abc\n'
    ...                    "    - Expected a <class 'NoneType'>")
    "data.batch_size: Expected a <class 'int'>. Got value: abc"
    """
    keys = re.findall(r'Parser key "([^"]+)"', message)
    reasons = [line.strip().lstrip("- ") for line in message.splitlines()
               if line.strip() and not line.strip().startswith(_NOISE)]
    where = ".".join(k for k in keys if k != "init_args")
    text = "; ".join(dict.fromkeys(reasons)) or message.strip().splitlines()[0]
    return f"{where}: {text}" if where else text


class _ShortErrorParser(LightningArgumentParser):
    """LightningCLI's parser whose errors are one line (not 80 lines of usage and a nested union report)."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        fail(f"{short_parser_error(message)} (see {self.prog} --help)")


# -- refused starts: one line, and nothing left behind ----------------------------------------------
def _config_value(config, dotted: str):
    node = config
    for key in dotted.split("."):
        node = node.get(key) if hasattr(node, "get") else getattr(node, key, None)
        if node is None:
            return None
    return node


def check_config(config) -> None:
    """Mistakes that would otherwise surface as a traceback deep inside PyTorch, said up front.

    >>> check_config({"data": {"init_args": {"batch_size": 2, "patch_size": 96}}})
    >>> check_config({"data": {"init_args": {"patch_size": [96, 96, 50]}}})
    Traceback (most recent call last):
    brainsegfounder.utils.errors.ConfigError: data.patch_size [96, 96, 50]: every side must be a multiple of 32 and at least 64 (the Swin UNETR halves it 5 times), e.g. 64 or 96.
    """
    for key in ("batch_size", "samples_per_volume", "queue_length"):
        value = _config_value(config, f"data.init_args.{key}")
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"data.{key} is {value!r}; it must be a whole number of at least 1.")
    patch = _config_value(config, "data.init_args.patch_size")
    if patch is not None:
        sides = list(patch) if isinstance(patch, list | tuple) else [patch]
        if any(not isinstance(v, int) or v % 32 or v < 64 for v in sides):
            raise ConfigError(f"data.patch_size {patch}: every side must be a multiple of 32 and at least 64 "
                              "(the Swin UNETR halves it 5 times), e.g. 64 or 96.")


def snapshot_run_folders(folders: list[Path]) -> dict[Path, set[Path]]:
    """The entries of each run folder now, so a refused start can tell which ``version_N`` it made."""
    return {f: set(f.iterdir()) if f.is_dir() else set() for f in folders}


def remove_refused_start(before: dict[Path, set[Path]], started: float) -> list[Path]:
    """Remove what a run that never trained left in its run folders; returns what was removed.

    Only entries that were not there before this run and hold nothing older than its start (nothing
    another run wrote) and no checkpoint are removed; a run folder this run created goes too when
    that leaves it empty.
    """
    removed = []
    for folder, earlier in before.items():
        if not folder.is_dir():
            continue
        for entry in sorted(set(folder.iterdir()) - earlier):
            files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
            if any(p.suffix == ".ckpt" or p.stat().st_mtime < started - 1 for p in files):
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry)
        if not earlier and not any(folder.iterdir()):
            folder.rmdir()
            removed.append(folder)
    return removed


def _config_mistake(err: BaseException) -> str | None:
    """The user-facing reason inside an exception jsonargparse raised while building a class."""
    seen = err
    while seen is not None:
        if isinstance(seen, BrainSegFounderError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    if type(err).__module__.startswith("jsonargparse") or "Does not validate against" in str(err):
        reasons = [line.strip()[2:] for line in str(err).splitlines()
                   if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line]
        return "; ".join(reasons) or str(err).splitlines()[0]
    return None
