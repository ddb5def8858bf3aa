"""Checkpoints that survive crashes, and finding the one to resume from.

:class:`AtomicCheckpointIO` is the Trainer's checkpoint writer in every ``brainsegfounder.fit`` run:
a checkpoint is written to a temporary file in the same folder, flushed to disk, and renamed over
its final name in one step, so a process killed at any moment (``kill -9``, pre-emption, power
loss) leaves either the previous complete ``last.ckpt`` or the new complete one, never half a file.

:class:`BestAndLastCheckpoint` also writes ``last.ckpt`` every ``last_every_n_steps`` optimizer
steps (10 by default), so a kill between validations loses at most that many steps.
``--ckpt_path last`` resumes from the newest readable checkpoint of the run: when ``last.ckpt`` is
unreadable, the newest other one beside it (``best-step=N.ckpt``), saying which and why.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> AtomicCheckpointIO().save_checkpoint({"global_step": 3}, folder / "run" / "last.ckpt")
    >>> read_checkpoint(folder / "run" / "last.ckpt")["global_step"]
    3
    >>> find_last_checkpoint([folder]).name
    'last.ckpt'
    >>> sorted(p.name for p in (folder / "run").iterdir())  # no temporary file is left behind
    ['last.ckpt']
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from brainsegfounder.checkpoints import WANDB_RUN_ID_KEY, read_checkpoint
from brainsegfounder.utils.errors import BrainSegFounderError, ConfigError, WeightsError

__all__ = ["AtomicCheckpointIO", "BestAndLastCheckpoint", "CheckpointError", "checkpoint_step", "find_last_checkpoint",
           "find_readable_last_checkpoint", "wandb_run_id_of"]


class CheckpointError(BrainSegFounderError):
    """A checkpoint to resume from is missing or unreadable."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic: temporary file, fsync, rename.

    Lightning's own writer wraps the write in an fsspec transaction, whose temporary file lies in
    the system temp folder; when that is another file system (a cluster's ``/tmp`` against its
    shared scratch) the final move is a copy, and a kill during the copy leaves a truncated file.
    Here the temporary file sits beside the target, so ``os.replace`` is a true rename. Remote
    paths (``s3://``...) keep Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        fs = get_filesystem(path)
        if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # Make the rename itself durable (the directory entry), where the OS allows it.
        try:
            dir_fd = os.open(target.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's restore, read by :func:`~brainsegfounder.utils.safe_load.safe_load` for local files.

        A file carrying code is refused as such (never run), a corrupt one called corrupt; both as a
        :class:`CheckpointError` (one line from ``fit``). Remote paths keep Lightning's reader.
        """
        fs = get_filesystem(path)
        if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        try:
            return read_checkpoint(path, what="--ckpt_path", map_location=map_location or "cpu")
        except WeightsError as err:
            raise CheckpointError(str(err)) from None


class BestAndLastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is always the last training state, and whose best
    score survives a resume into a new run folder.

    Lightning (2.6) refreshes ``last.ckpt`` only in a step where a top-k checkpoint was saved, so
    after a final validation that did not improve, ``last.ckpt`` held an older step and a resume
    retrained steps already done. Here every checkpoint event (each validation, each epoch end)
    and the end of training write ``last.ckpt``. Lightning also drops the best score, top-k
    bookkeeping and last path when the resumed run writes into another folder (every run gets its
    own ``version_N``); they are reloaded here, so a resumed run keeps comparing against the true
    best. Checkpoints of earlier folders are never deleted (Lightning removes only files inside
    this run's ``dirpath``).

    ``last_every_n_steps`` (default 10; ``null`` turns it off) also writes ``last.ckpt`` every that
    many optimizer steps between validations, through the Trainer's checkpoint writer (atomic in
    every ``fit`` run: a kill during the write leaves the previous ``last.ckpt``), so a kill -9 loses
    at most that many steps instead of up to a whole ``val_check_interval``. Each write costs the
    checkpoint's size in disk traffic (weights and optimizer state: about 0.8 GB for the ``small``
    preset); raise it where steps are fast and checkpoints large.

    Example (YAML, as in ``experiments/*.yaml``)::

        callbacks:
          - class_path: brainsegfounder.training.checkpointing.BestAndLastCheckpoint
            init_args: {monitor: val/dice_mean, mode: max, save_last: true, filename: best-{step},
                        last_every_n_steps: 10}
    """

    def __init__(self, *args, save_last: bool | None = True, last_every_n_steps: int | None = 10, **kwargs):
        # The class exists to keep last.ckpt right, so it writes one unless told not to.
        super().__init__(*args, save_last=save_last, **kwargs)
        if last_every_n_steps is not None and (isinstance(last_every_n_steps, bool) or last_every_n_steps < 1):
            raise ConfigError(f"last_every_n_steps is {last_every_n_steps!r}; give a number of optimizer steps "
                              "(1 or more, e.g. 10) or null to write last.ckpt only at validation.")
        self.last_every_n_steps = last_every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self.last_every_n_steps
        if not (every and self.save_last and trainer.global_step % every == 0):
            return
        if self._should_skip_saving_checkpoint(trainer):
            return  # not fitting, sanity check, or this step is already saved
        # A validation may follow at this same step: it must still save its top-k checkpoint, which
        # Lightning skips for a step already saved; so this periodic write does not count as one.
        saved_step = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = saved_step

    def _refresh_last(self, trainer) -> None:
        # Called only where Lightning skipped: no checkpoint was written at this step yet.
        if self.save_last:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and not trainer.fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Same monitor and mode: the old scores compare with the new ones, whichever folder they are in.
        if state_dict.get("monitor") == self.monitor:
            self.dirpath = self.dirpath or state_dict.get("dirpath")
            state_dict = {**state_dict, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)


def _resumable(folders: Iterable[str | Path], hpc_folder: str | Path | None) -> list[Path]:
    """Every resumable checkpoint file, newest (by modification time) first."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            found += [p for p in folder.rglob("last*.ckpt") if p.is_file()]
    if hpc_folder is not None and Path(hpc_folder).is_dir():
        found += [p for p in Path(hpc_folder).glob("hpc_ckpt_*.ckpt") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def find_last_checkpoint(folders: Iterable[str | Path], hpc_folder: str | Path | None = None) -> Path | None:
    """The newest (by modification time) resumable checkpoint, or ``None`` when there is none.

    Searched: ModelCheckpoint's ``last.ckpt`` (and ``last-v1.ckpt``...) anywhere under ``folders``,
    and the ``hpc_ckpt_N.ckpt`` files Lightning writes into ``hpc_folder`` (the Trainer's
    ``default_root_dir``) when SLURM signals a pre-emption. The file is not opened; see
    :func:`find_readable_last_checkpoint`.
    """
    return next(iter(_resumable(folders, hpc_folder)), None)


def checkpoint_step(path: str | Path) -> int:
    """The global step a Lightning checkpoint was written at, if it holds a training state to resume.

    Raises:
        WeightsError: unreadable (corrupt, truncated, carrying code), or weights only (no optimizer
            state or loops: a ``save_weights_only`` file, from which Lightning cannot resume).
    """
    checkpoint = read_checkpoint(path, what="checkpoint", mmap=True)
    if not isinstance(checkpoint, dict) or "optimizer_states" not in checkpoint or "loops" not in checkpoint:
        raise WeightsError(f"{path} holds no training state (weights only), so a run cannot resume from it.")
    return int(checkpoint.get("global_step", 0))


def find_readable_last_checkpoint(folders: Iterable[str | Path], hpc_folder: str | Path | None = None
                                  ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of the run a training can resume from, and the newer ones skipped, each
    with why (corrupt, truncated, carrying code, weights only).

    Candidates: every ``last*.ckpt`` and SLURM ``hpc_ckpt_*.ckpt`` (:func:`find_last_checkpoint`)
    and every other ``.ckpt`` beside a ``last*.ckpt`` (the run's ``best-step=N.ckpt``), newest
    (modification time) first; each is read in full before it is chosen. ``--ckpt_path last``
    resumes from it, so one damaged ``last.ckpt`` (a full disk, a bad copy) costs the steps since
    the newest readable checkpoint instead of the run. Returns ``(None, skipped)`` when none is
    readable (``skipped`` empty: there is no checkpoint at all).

    >>> import tempfile, pathlib, os
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> torch.save({"global_step": 3, "optimizer_states": [], "loops": {}}, folder / "best-step=3.ckpt")
    >>> _ = (folder / "last.ckpt").write_bytes(b"PK broken"); os.utime(folder / "best-step=3.ckpt", (1, 1))
    >>> found, skipped = find_readable_last_checkpoint([folder])
    >>> found.name, [p.name for p, _ in skipped], checkpoint_step(found)
    ('best-step=3.ckpt', ['last.ckpt'], 3)
    """
    lasts = _resumable(folders, hpc_folder)
    beside = {p for last in lasts if last.name.startswith("last") for p in last.parent.glob("*.ckpt") if p.is_file()}
    candidates = sorted(set(lasts) | beside, key=lambda p: (p.stat().st_mtime_ns, p.name.startswith("last")),
                        reverse=True)
    skipped: list[tuple[Path, str]] = []
    for path in candidates:
        try:
            checkpoint_step(path)
            read_checkpoint(path, what="checkpoint")  # every byte, as the resume will read it
        except WeightsError as err:
            skipped.append((path, str(err)))
            continue
        return path, skipped
    return None, skipped


def wandb_run_id_of(path: str | Path) -> str | None:
    """The W&B run id stored in a checkpoint by ``RunIdentity``, or ``None``.

    Raises:
        CheckpointError: the file is not a readable checkpoint.
    """
    try:
        # mmap: only the few pages of the pickle header and this key are read, not the weights.
        checkpoint = read_checkpoint(path, what="--ckpt_path", mmap=True)
    except WeightsError as err:
        raise CheckpointError(f"{err} Or start a new run without --ckpt_path.") from None
    run_id = checkpoint.get(WANDB_RUN_ID_KEY) if isinstance(checkpoint, dict) else None
    return str(run_id) if run_id else None
