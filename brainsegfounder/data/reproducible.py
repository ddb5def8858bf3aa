"""Loaders whose randomness survives a resume and splits across DDP ranks.

A ``tio.Queue`` keeps state that no checkpoint holds (loaded patches, the half-read subject
iterator, the global random generators its transforms and samplers draw from). So that a run
resumed from a checkpoint sees the same patches as an uninterrupted run, :class:`QueueLoader`
starts every pass over the queue (one epoch) from a state that depends only on the run's seed,
the optimiser step and the process rank: it reseeds Python, NumPy and torch from them, tells a
distributed subject sampler the new epoch, and restarts the queue's subject iterator when the
queue is drained (which it always is at an epoch boundary: a fill never crosses into the next
pass over the subjects). A run resumed from a checkpoint taken at an epoch boundary therefore
trains on exactly the same batches as one that never stopped; resumed mid-epoch, the rest of
that epoch draws other patches (the queue's contents are not checkpointed) and the next epoch
is in step again. That is why the loader declares itself resumable to Lightning
(``state_dict``/``load_state_dict``): its position is the optimiser step, which every
checkpoint restores, so Lightning's "dataloader is not resumable" warning does not apply.

Example:
    >>> import torch, torchio as tio
    >>> subjects = [tio.Subject(t1=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8))) for _ in range(3)]
    >>> queue = tio.Queue(tio.SubjectsDataset(subjects), max_length=6, samples_per_volume=2,
    ...                   sampler=tio.UniformSampler(4), num_workers=0)
    >>> loader = QueueLoader(queue, seed=0, batch_size=2, collate_fn=lambda b: torch.stack([s.t1.data for s in b]))
    >>> first = [b.clone() for b in loader]; again = [b.clone() for b in loader]
    >>> len(first), all(torch.equal(a, b) for a, b in zip(first, again))  # step 0 both times
    (3, True)
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import numpy as np
import torch
import torchio as tio
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from brainsegfounder.utils.allocator import release_free_memory

__all__ = ["CountOnceSampler", "QueueLoader", "WholeVolumeLoader", "epoch_seed", "shard_for_ranks"]


def epoch_seed(seed: int, step: int, rank: int) -> int:
    """A 32-bit seed that depends only on ``(seed, step, rank)`` (NumPy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step), int(rank)]).generate_state(1)[0])


class QueueLoader(DataLoader):
    """A ``DataLoader`` over a ``tio.Queue`` that starts each epoch from ``(seed, step, rank)``.

    Args:
        queue: the TorchIO patch queue (its own workers load volumes; this loader uses none).
        seed: the run's seed; default: ``PL_GLOBAL_SEED`` (set by ``seed_everything``), and no
            reseeding when neither is set.
        position: a callable returning ``(optimizer step, global rank)`` when an epoch starts;
            default: ``(0, 0)``. Data modules pass ``lambda: (trainer.global_step, trainer.global_rank)``.
        **kwargs: ``DataLoader`` arguments (``batch_size``, ``collate_fn``...).
    """

    def __init__(self, queue: tio.Queue, seed: int | None = None,
                 position: Callable[[], tuple[int, int]] | None = None, **kwargs):
        kwargs["num_workers"] = 0  # the queue pops patches in this process; its workers load volumes
        kwargs.setdefault("shuffle", False)
        super().__init__(queue, **kwargs)
        self.seed = seed
        self.position = position

    def state_dict(self) -> dict:
        """Nothing to store: each pass restarts from ``(seed, step, rank)``, and the step is restored."""
        return {"position": "optimizer step"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""

    def _run_seed(self) -> int | None:
        if self.seed is not None:
            return int(self.seed)
        env = os.environ.get("PL_GLOBAL_SEED")
        return int(env) if env is not None else None

    def __iter__(self):
        step, rank = self.position() if self.position is not None else (0, 0)
        seed = self._run_seed()
        if seed is not None:
            s = epoch_seed(seed, step, rank)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
        queue = self.dataset
        if isinstance(queue, tio.Queue):
            if queue.num_workers:
                release_free_memory()  # before the queue forks its subject-loading workers
            sampler = queue.subject_sampler
            if hasattr(sampler, "set_epoch"):
                # The step, not the epoch number: it is restored exactly on resume, whatever kind of
                # checkpoint, and it differs between epochs, which is all set_epoch needs.
                sampler.set_epoch(step)
            if not queue.patches_list:
                # Drained: restart the subject iterator now, under the new seed, as a freshly built
                # queue (a resumed run) would. TorchIO has no public reset; this is its own restart.
                queue._initialize_subjects_iterable()
        return super().__iter__()


class WholeVolumeLoader(DataLoader):
    """``DataLoader`` that hands the process's kept free memory back before its workers fork.

    See :mod:`brainsegfounder.utils.allocator`: a worker forked from a process that keeps gigabytes of
    free heap would copy those pages as it allocates into them.
    """

    def __iter__(self):
        if self.num_workers:
            release_free_memory()
        return super().__iter__()


class CountOnceSampler(DistributedSampler):
    """``DistributedSampler`` (no shuffling) that knows which of its items are padding.

    All ranks must run the same number of validation steps (under DDP each step's forward
    synchronises buffers, so a rank with one step more would wait for ever), so the last share is
    padded by repeating a few items, as ``DistributedSampler`` does. ``counted`` is how many of
    this rank's items come first and are its own; the rest repeat another rank's subjects and are
    given weight 0 in the metrics, so every subject counts exactly once in the synced mean.

    >>> [list(CountOnceSampler(range(3), num_replicas=2, rank=r)) for r in (0, 1)]
    [[0, 2], [1, 0]]
    >>> [CountOnceSampler(range(3), num_replicas=2, rank=r).counted for r in (0, 1)]
    [2, 1]
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        n = len(dataset)
        self.counted = max(0, -(-(n - rank) // num_replicas))


def shard_for_ranks(dataset: Dataset, world_size: int, rank: int) -> CountOnceSampler | None:
    """A sampler giving rank ``rank`` its own share of ``dataset`` for evaluation, or None on one process.

    Shares are padded to equal length (equal step counts: no rank waits for ever); the padding is
    marked (:class:`CountOnceSampler` ``.counted``) so metrics weight repeated subjects 0.
    """
    if world_size <= 1:
        return None
    return CountOnceSampler(dataset, num_replicas=world_size, rank=rank)
