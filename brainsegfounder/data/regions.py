"""Region schemes: how a label map becomes the network's output channels, and back.

A segmentation task predicts one sigmoid channel per *region*; a region is a set of label
values (BraTS' tumour core is necrosis + enhancing tumour). The same scheme maps the network's
channels back to a label map by painting regions in a fixed order.

Example:
    >>> import torch
    >>> scheme = get_scheme("brats2021")
    >>> scheme.names
    ('TC', 'WT', 'ET')
    >>> label = torch.tensor([0, 1, 2, 4]).view(1, 1, 4, 1, 1)
    >>> scheme.to_regions(label)[0, :, :, 0, 0].int().tolist()
    [[0, 1, 0, 1], [0, 1, 1, 1], [0, 0, 0, 1]]
    >>> scheme.to_label(scheme.to_regions(label)).flatten().tolist()
    [0, 1, 2, 4]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

__all__ = ["RegionScheme", "SCHEMES", "get_scheme"]


@dataclass(frozen=True)
class RegionScheme:
    """Named regions, each a set of label values, and how to paint them back.

    Args:
        names: region names, in output-channel order.
        labels: for each region, the label values it is made of.
        paint: ``(region index, label value)`` pairs applied in order when writing a label map;
            later pairs overwrite earlier ones (BraTS: WT -> 2, then TC -> 1, then ET -> 4).
        name: the scheme's name, for messages.
    """

    names: tuple[str, ...]
    labels: tuple[tuple[int, ...], ...]
    paint: tuple[tuple[int, int], ...]
    name: str = "custom"

    @property
    def label_values(self) -> frozenset[int]:
        """Every label value a reference may contain (0 = background included)."""
        return frozenset({0}).union(*map(set, self.labels))

    @property
    def num_regions(self) -> int:
        return len(self.names)

    def to_regions(self, label: torch.Tensor) -> torch.Tensor:
        """Label map ``(B, 1, X, Y, Z)`` (any integer or float dtype) -> float regions ``(B, R, X, Y, Z)``."""
        label = label.round().long()
        channels = [torch.isin(label[:, 0], torch.tensor(v, device=label.device)) for v in self.labels]
        return torch.stack(channels, dim=1).float()

    def to_label(self, regions: torch.Tensor) -> torch.Tensor:
        """Binary regions ``(B, R, ...)`` -> label map ``(B, 1, ...)`` (uint8) by painting in order."""
        out = torch.zeros_like(regions[:, :1], dtype=torch.uint8)
        for index, value in self.paint:
            out[regions[:, index : index + 1] > 0] = value
        return out

    def default_sampling_probabilities(self) -> dict[int, float]:
        """Patch-centre probabilities for TorchIO's ``LabelSampler``: background and each label alike."""
        return {int(v): 1.0 for v in sorted(self.label_values)}


SCHEMES: dict[str, RegionScheme] = {
    "brats2021": RegionScheme(
        names=("TC", "WT", "ET"),
        labels=((1, 4), (1, 2, 4), (4,)),
        paint=((1, 2), (0, 1), (2, 4)),
        name="brats2021",
    ),
    "brats2023": RegionScheme(
        names=("TC", "WT", "ET"),
        labels=((1, 3), (1, 2, 3), (3,)),
        paint=((1, 2), (0, 1), (2, 3)),
        name="brats2023",
    ),
    "lesion": RegionScheme(names=("lesion",), labels=((1,),), paint=((0, 1),), name="lesion"),
}


def get_scheme(scheme: str | Mapping[str, Sequence[int]] | RegionScheme) -> RegionScheme:
    """A scheme by name (``brats2021``, ``brats2023``, ``lesion``), or built from a mapping.

    A mapping ``{"region": [label values], ...}`` defines a lab's own scheme; regions are painted
    back in the order given, each with its first label value.
    """
    if isinstance(scheme, RegionScheme):
        return scheme
    if isinstance(scheme, str):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown region scheme {scheme!r}; choose one of {sorted(SCHEMES)} "
                             "or give a mapping {region: [label values]}")
        return SCHEMES[scheme]
    names = tuple(scheme)
    labels = tuple(tuple(int(v) for v in scheme[n]) for n in names)
    if not names or any(not v for v in labels):
        raise ValueError(f"a region scheme needs at least one region, each with label values: {scheme!r}")
    return RegionScheme(names, labels, tuple((i, v[0]) for i, v in enumerate(labels)))
