"""Modality dropout: train one network that segments any non-empty subset of its modalities.

Clinical protocols often skip a contrast (no T1ce, or T1 + FLAIR only). A network trained with
:class:`RandomModalityDropout` sees, in a fraction ``p`` of its training samples, only a random
non-empty subset of its input channels, the others replaced by :data:`MISSING_VALUE`; at
inference a missing file becomes a channel of exactly that value
(:func:`missing_channels_tensor`), so training and prediction agree on what "missing" looks like.

Why 0, after normalisation: the transform runs at the end of the training pipeline, after the
per-modality z-score over brain voxels and after the intensity augmentation, so 0 is the mean
brain intensity of the modality, in z-score units. A constant channel carries no image
information, and of all constants it is the one closest to every real z-scored brain (the least
out-of-distribution input for the normalisation layers). It is deliberately not the background
value of a z-scored image (negative, outside the brain only), which would leak a brain mask.

Example:
    >>> import torch, torchio as tio
    >>> subject = tio.Subject(flair=tio.ScalarImage(tensor=torch.ones(1, 4, 4, 4)),
    ...                       t1=tio.ScalarImage(tensor=torch.ones(1, 4, 4, 4)))
    >>> _ = torch.manual_seed(0)
    >>> out = RandomModalityDropout(p=1.0)(subject)
    >>> len(out["dropped_modalities"])            # one of the two, never both
    1
    >>> sorted(float(out[m].data.max()) for m in ("flair", "t1"))
    [0.0, 1.0]
    >>> missing_channels_tensor({"flair": torch.ones(1, 4, 4, 4), "t1": None}, ["flair", "t1"]).shape
    torch.Size([2, 4, 4, 4])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torchio as tio
from torchio.transforms.augmentation.random_transform import RandomTransform
from torchio.transforms.intensity_transform import IntensityTransform

from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["DROPPED_KEY", "MISSING_VALUE", "DropModalities", "RandomModalityDropout", "missing_channels_tensor",
           "nonempty_subsets", "parse_modalities"]

#: The value of every voxel of a missing modality, in z-score units (the mean brain intensity).
MISSING_VALUE = 0.0

#: Subject key under which :class:`RandomModalityDropout` records the names it dropped (a list,
#: empty when it kept everything), so a batch can say what the network saw.
DROPPED_KEY = "dropped_modalities"


def nonempty_subsets(modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``modalities`` (``2**n - 1``), fullest first, in channel order.

    Example:
        >>> nonempty_subsets(["flair", "t1"])
        [('flair', 't1'), ('flair',), ('t1',)]
        >>> len(nonempty_subsets(["flair", "t1ce", "t1", "t2"]))
        15
    """
    names = list(modalities)
    return [combo for size in range(len(names), 0, -1) for combo in itertools.combinations(names, size)]


def parse_modalities(text: str | Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """``"t1,flair"`` (or a list) -> the named modalities in ``known``'s channel order.

    Raises :class:`~brainsegfounder.utils.errors.ConfigError` naming the unknown ones.

    Example:
        >>> parse_modalities("t1, flair", ["flair", "t1ce", "t1", "t2"])
        ('flair', 't1')
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise ConfigError(f"--modalities {','.join(names) or '(empty)'}: {unknown or 'nothing'} is not among the "
                          f"model's modalities {list(known)}; name at least one of them, comma-separated.")
    return tuple(m for m in known if m in names)


class DropModalities(IntensityTransform):
    """Set the named intensity images to ``missing_value`` everywhere (deterministic).

    What :class:`RandomModalityDropout` applies, recorded in the subject's TorchIO history; also
    the way to force a subset on a complete case (a robustness study).

    Example:
        >>> import torch, torchio as tio
        >>> s = tio.Subject(t1=tio.ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
        >>> float(DropModalities(["t1"])(s).t1.data.abs().max())
        0.0
    """

    def __init__(self, dropped: Sequence[str], missing_value: float = MISSING_VALUE, **kwargs):
        super().__init__(**kwargs)
        self.dropped, self.missing_value = list(dropped), float(missing_value)
        self.args_names = ["dropped", "missing_value"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = self.get_images_dict(subject)
        for name in self.dropped:
            if name in images:
                images[name].set_data(torch.full_like(images[name].data, self.missing_value, dtype=torch.float32))
        previous = list(subject.get(DROPPED_KEY, []))
        subject[DROPPED_KEY] = previous + [n for n in self.dropped if n in images and n not in previous]
        subject.update_attributes()  # else TorchIO's copies (patch crops) lose the new key
        return subject


class RandomModalityDropout(RandomTransform, IntensityTransform):
    """With probability ``p``, keep a random non-empty proper subset of the modalities.

    The kept subset is drawn uniformly among the ``2**n - 2`` non-empty proper subsets (14 for
    four modalities), so every partial protocol is seen equally often and no sample ever loses all
    of its channels; the others are set to ``missing_value`` (:data:`MISSING_VALUE`). The subject
    records the dropped names under :data:`DROPPED_KEY` (an empty list when nothing was dropped).
    Put it last in the training transform (after normalisation and intensity augmentation, so a
    dropped channel is exactly the value a missing file gets at inference); validation and
    prediction pipelines never contain it. Random numbers come from torch's generator, so
    ``torch.manual_seed`` (Lightning's ``seed_everything``) reproduces the draws.

    Args:
        p: probability (0..1) per sample of dropping at least one modality.
        modalities: names of the images it may drop (default: every intensity image).
        missing_value: the value of a dropped channel.

    Example:
        >>> import torch, torchio as tio
        >>> s = tio.Subject(t1=tio.ScalarImage(tensor=torch.ones(1, 2, 2, 2)))
        >>> RandomModalityDropout(p=1.0)(s)["dropped_modalities"]   # one modality: nothing to drop
        []
    """

    def __init__(self, p: float = 0.5, modalities: Sequence[str] | None = None,
                 missing_value: float = MISSING_VALUE, **kwargs):
        if not 0.0 <= float(p) <= 1.0:
            raise ConfigError(f"modality_dropout is {p}; give a probability between 0 and 1 (0 turns it off).")
        # Transform's own ``p`` skips the whole call, which would leave DROPPED_KEY unset; the
        # probability is drawn here instead so every sample records what it saw.
        super().__init__(p=1.0, **kwargs)
        self.dropout_probability = float(p)
        self.modalities = list(modalities) if modalities is not None else None
        self.missing_value = float(missing_value)
        self.args_names = ["dropout_probability", "modalities", "missing_value"]

    def draw_dropped(self, names: Sequence[str]) -> list[str]:
        """The names to drop for one sample (empty with probability ``1 - p``)."""
        names = list(names)
        if len(names) < 2 or torch.rand(1).item() >= self.dropout_probability:
            return []
        # A uniform non-empty proper subset to keep: a bit mask in 1 .. 2**n - 2.
        mask = int(torch.randint(1, 2 ** len(names) - 1, (1,)).item())
        return [name for i, name in enumerate(names) if not mask >> i & 1]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        present = list(self.get_images_dict(subject))
        names = [m for m in self.modalities if m in present] if self.modalities is not None else present
        dropped = self.draw_dropped(names)
        subject[DROPPED_KEY] = list(subject.get(DROPPED_KEY, []))
        subject.update_attributes()  # else TorchIO's copies (patch crops) lose the new key
        if dropped:
            subject = DropModalities(dropped, self.missing_value, copy=False, include=dropped)(subject)
        return subject


def _as_volume(value, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).float()
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise DataError(f"modality {name}: expected a 3-D volume (X, Y, Z) or (1, X, Y, Z), got shape "
                        f"{tuple(tensor.shape)}.")
    return tensor


def missing_channels_tensor(images: Mapping[str, torch.Tensor | np.ndarray | None], modalities: Sequence[str],
                            missing_value: float = MISSING_VALUE, case: str = "this case") -> torch.Tensor:
    """Stack a case's preprocessed modalities as ``(C, X, Y, Z)``, missing ones filled with ``missing_value``.

    Args:
        images: modality name -> preprocessed (z-scored) volume ``(X, Y, Z)`` or ``(1, X, Y, Z)``;
            a missing modality is absent or ``None``.
        modalities: the network's channel order.
        missing_value: the fill of a missing channel; keep :data:`MISSING_VALUE`, the value
            :class:`RandomModalityDropout` trained with.
        case: the case's id, for error messages.

    Raises :class:`~brainsegfounder.utils.errors.DataError` when no modality is present or their shapes differ.

    Example:
        >>> import torch
        >>> x = missing_channels_tensor({"t1": torch.ones(3, 3, 3)}, ["flair", "t1"])
        >>> x.shape, float(x[0].abs().max()), float(x[1].min())
        (torch.Size([2, 3, 3, 3]), 0.0, 1.0)
    """
    present = {m: _as_volume(images[m], m) for m in modalities if images.get(m) is not None}
    if not present:
        raise DataError(f"{case}: none of the model's modalities {list(modalities)} is present "
                        f"(given: {sorted(k for k, v in images.items() if v is not None)}); at least one is needed.")
    shapes = {m: tuple(v.shape) for m, v in present.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{case}: modalities have different shapes {shapes}; register them to one grid first.")
    like = next(iter(present.values()))  # the fill lives where the images do (CPU or GPU)
    return torch.stack([present[m] if m in present else torch.full_like(like, float(missing_value))
                        for m in modalities])
