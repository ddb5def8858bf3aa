"""Region schemes: THE place that knows label values, regions, names, colours and scoring rules.

A segmentation task predicts one sigmoid channel per *region*; a region is a set of label
values (BraTS' tumour core is necrosis + enhancing tumour). The same scheme maps the network's
channels back to a label map by painting regions in a fixed order, names and colours each label
value for pictures and reports, lists the regions a challenge scores (which may differ from the
channels the network predicts) and names the rule set :mod:`brainsegfounder.evaluate` applies by
default. Adding a data set's labelling is one :func:`register_scheme` call (or a YAML/JSON file
``{region: [label values]}`` given wherever a scheme name is accepted).

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
    >>> get_scheme("brats2024").evaluated_names
    ('ET', 'NETC', 'SNFH', 'RC', 'TC', 'WT')
    >>> get_scheme({"core": [1, 3], "whole": [1, 2, 3]}).rules
    'plain'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brainsegfounder.utils.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where tensors are used: naming files needs no torch
    import torch

__all__ = ["RegionScheme", "SCHEMES", "RULES", "PALETTE", "get_scheme", "register_scheme", "scheme_from_file"]

#: Rule sets :mod:`brainsegfounder.evaluate` knows (``--rules``); ``plain`` = per-region Dice,
#: HD95 in mm and lesion-wise figures without any challenge-specific convention.
RULES = ("brats2021", "brats2023", "brats2024", "atlas", "plain")

#: Colours for label values a scheme does not colour itself (colour-blind safe, Set1-like).
PALETTE = ("#e41a1c", "#4daf4a", "#ffd92f", "#377eb8", "#984ea3", "#ff7f00", "#a65628", "#f781bf")


@dataclass(frozen=True)
class RegionScheme:
    """Named regions, each a set of label values, and everything else a labelling implies.

    Args:
        names: region names, in output-channel order.
        labels: for each region, the label values it is made of.
        paint: ``(region index, label value)`` pairs applied in order when writing a label map;
            later pairs overwrite earlier ones (BraTS: WT -> 2, then TC -> 1, then ET -> 4).
        name: the scheme's name, for messages and checkpoints.
        label_names: ``(label value, name)`` of each label (for legends and reports).
        colours: ``(label value, "#rrggbb")`` of each label; missing ones come from :data:`PALETTE`.
        rules: the rule set that scores this labelling by default (one of :data:`RULES`).
        evaluated: ``(region name, label values)`` scored by ``evaluate``; default: the channels.
        description: one line for listings.
    """

    names: tuple[str, ...]
    labels: tuple[tuple[int, ...], ...]
    paint: tuple[tuple[int, int], ...]
    name: str = "custom"
    label_names: tuple[tuple[int, str], ...] = ()
    colours: tuple[tuple[int, str], ...] = ()
    rules: str = "plain"
    evaluated: tuple[tuple[str, tuple[int, ...]], ...] = field(default=())
    description: str = ""

    @property
    def label_values(self) -> frozenset[int]:
        """Every label value a reference may contain (0 = background included)."""
        return frozenset({0}).union(*map(set, self.labels), *(set(v) for _, v in self.evaluated))

    @property
    def num_regions(self) -> int:
        return len(self.names)

    @property
    def evaluated_regions(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(name, label values)`` of each region ``evaluate`` scores, in report order."""
        return self.evaluated or tuple(zip(self.names, self.labels, strict=True))

    @property
    def evaluated_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.evaluated_regions)

    @property
    def legend(self) -> dict[int, tuple[str, str]]:
        """Label value -> (name, colour) for every non-zero label value, in value order."""
        names, colours = dict(self.label_names), dict(self.colours)
        values = sorted(self.label_values - {0})
        return {v: (names.get(v, f"label {v}"), colours.get(v, PALETTE[i % len(PALETTE)]))
                for i, v in enumerate(values)}

    def to_regions(self, label: torch.Tensor) -> torch.Tensor:
        """Label map ``(B, 1, X, Y, Z)`` (any integer or float dtype) -> float regions ``(B, R, X, Y, Z)``."""
        import torch

        label = label.round().long()
        channels = [torch.isin(label[:, 0], torch.tensor(v, device=label.device)) for v in self.labels]
        return torch.stack(channels, dim=1).float()

    def to_label(self, regions: torch.Tensor) -> torch.Tensor:
        """Binary regions ``(B, R, ...)`` -> label map ``(B, 1, ...)`` (uint8) by painting in order."""
        import torch

        out = torch.zeros_like(regions[:, :1], dtype=torch.uint8)
        for index, value in self.paint:
            out[regions[:, index : index + 1] > 0] = value
        return out

    def region_masks(self, label: np.ndarray) -> dict[str, np.ndarray]:
        """A label map ``(X, Y, Z)`` -> ``{evaluated region: bool mask}`` (other values ignored).

        >>> get_scheme("brats2023").region_masks(np.array([0, 1, 2, 3]))["TC"].astype(int).tolist()
        [0, 1, 0, 1]
        """
        label = np.asarray(label)
        return {n: np.isin(label, v) for n, v in self.evaluated_regions}

    def channel_masks(self, label: np.ndarray) -> np.ndarray:
        """A label map ``(X, Y, Z)`` -> bool ``(R, X, Y, Z)`` in output-channel order."""
        label = np.asarray(label)
        return np.stack([np.isin(label, v) for v in self.labels])

    def label_from_channels(self, regions: np.ndarray) -> np.ndarray:
        """Bool ``(R, X, Y, Z)`` in channel order -> uint8 label map, painted as :meth:`to_label`."""
        regions = np.asarray(regions).astype(bool)
        if regions.shape[0] != self.num_regions:
            raise ConfigError(f"scheme {self.name}: expected {self.num_regions} region channels "
                              f"{self.names}, got {regions.shape[0]}.")
        out = np.zeros(regions.shape[1:], np.uint8)
        for index, value in self.paint:
            out[regions[index]] = value
        return out

    def invalid_values(self, values) -> list[int]:
        """Label values (from a reference) that this scheme does not know, sorted."""
        return sorted(int(v) for v in set(np.asarray(values).ravel().tolist()) - self.label_values)

    def default_sampling_probabilities(self) -> dict[int, float]:
        """Patch-centre probabilities for TorchIO's ``LabelSampler``: background and each label alike."""
        return {int(v): 1.0 for v in sorted(self.label_values)}

    def to_dict(self) -> dict:
        """A JSON-able description (stored in checkpoints and exported models)."""
        return {"name": self.name, "names": list(self.names), "labels": [list(v) for v in self.labels],
                "paint": [list(p) for p in self.paint], "label_names": dict(self.label_names),
                "colours": dict(self.colours), "rules": self.rules,
                "evaluated": {n: list(v) for n, v in self.evaluated}, "description": self.description}

    @classmethod
    def from_dict(cls, data: Mapping) -> RegionScheme:
        """Inverse of :meth:`to_dict`."""
        return cls(
            names=tuple(data["names"]), labels=tuple(tuple(int(x) for x in v) for v in data["labels"]),
            paint=tuple((int(i), int(v)) for i, v in data["paint"]), name=data.get("name", "custom"),
            label_names=tuple((int(k), str(v)) for k, v in (data.get("label_names") or {}).items()),
            colours=tuple((int(k), str(v)) for k, v in (data.get("colours") or {}).items()),
            rules=data.get("rules", "plain"),
            evaluated=tuple((n, tuple(int(x) for x in v)) for n, v in (data.get("evaluated") or {}).items()),
            description=data.get("description", ""))


SCHEMES: dict[str, RegionScheme] = {}


def register_scheme(scheme: RegionScheme) -> RegionScheme:
    """Make a scheme known by its name (to the CLI, configs, synthetic data, evaluate, reports)."""
    if scheme.rules not in RULES:
        raise ConfigError(f"scheme {scheme.name}: unknown rule set {scheme.rules!r}; choose one of {RULES}.")
    SCHEMES[scheme.name] = scheme
    return scheme


register_scheme(RegionScheme(
    names=("TC", "WT", "ET"), labels=((1, 4), (1, 2, 4), (4,)), paint=((1, 2), (0, 1), (2, 4)),
    name="brats2021", label_names=((1, "necrotic core (NCR)"), (2, "oedema (ED)"), (4, "enhancing tumour (ET)")),
    colours=((1, "#e41a1c"), (2, "#4daf4a"), (4, "#ffd92f")), rules="brats2021",
    description="BraTS 2021/2022 glioma: 1 NCR, 2 ED, 4 ET -> TC, WT, ET",
))
register_scheme(RegionScheme(
    names=("TC", "WT", "ET"), labels=((1, 3), (1, 2, 3), (3,)), paint=((1, 2), (0, 1), (2, 3)),
    name="brats2023", label_names=((1, "necrotic core (NCR)"), (2, "oedema (SNFH)"), (3, "enhancing tumour (ET)")),
    colours=((1, "#e41a1c"), (2, "#4daf4a"), (3, "#ffd92f")), rules="brats2023",
    description="BraTS 2023 (GLI, MET, MEN, PED, SSA): 1 NCR, 2 SNFH, 3 ET -> TC, WT, ET",
))
# BraTS 2024 adult glioma, post-treatment (arXiv 2405.18368): the resection cavity is a fourth
# label outside the tumour; the network predicts the three nested tumour regions plus RC, while
# the challenge scores six regions (each label alone, TC and WT).
register_scheme(RegionScheme(
    names=("TC", "WT", "ET", "RC"), labels=((1, 3), (1, 2, 3), (3,), (4,)),
    paint=((1, 2), (0, 1), (2, 3), (3, 4)), name="brats2024",
    label_names=((1, "non-enhancing tumour core (NETC)"), (2, "FLAIR hyperintensity (SNFH)"),
                 (3, "enhancing tissue (ET)"), (4, "resection cavity (RC)")),
    colours=((1, "#e41a1c"), (2, "#4daf4a"), (3, "#ffd92f"), (4, "#377eb8")), rules="brats2024",
    evaluated=(("ET", (3,)), ("NETC", (1,)), ("SNFH", (2,)), ("RC", (4,)), ("TC", (1, 3)), ("WT", (1, 2, 3))),
    description="BraTS 2024 post-treatment glioma: 1 NETC, 2 SNFH, 3 ET, 4 RC",
))
register_scheme(RegionScheme(
    names=("lesion",), labels=((1,),), paint=((0, 1),), name="lesion", label_names=((1, "lesion"),),
    colours=((1, "#e41a1c"),), rules="atlas", description="one binary lesion label (ATLAS v2.0 stroke)",
))


def scheme_from_file(path: str | Path) -> RegionScheme:
    """A lab's own scheme from a YAML or JSON file ``{region: [label values], ...}``.

    The file may also be a full description (``names``, ``labels``, ``paint`` ... as
    :meth:`RegionScheme.to_dict` writes it). The scheme is named after the file.
    """
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (OSError, ValueError) as err:
        raise ConfigError(f"label scheme file {path} cannot be read ({err}). Give a YAML or JSON file "
                          "{region: [label values], ...}.") from None
    if isinstance(data, Mapping) and "names" in data and "labels" in data:
        return RegionScheme.from_dict({"name": path.stem, **data})
    if not isinstance(data, Mapping):
        raise ConfigError(f"label scheme file {path}: expected a mapping {{region: [label values]}}, "
                          f"got {type(data).__name__}.")
    return _from_mapping(data, name=path.stem)


def _from_mapping(mapping: Mapping, name: str = "custom") -> RegionScheme:
    names = tuple(str(n) for n in mapping)
    try:
        labels = tuple(tuple(int(v) for v in (mapping[n] if isinstance(mapping[n], Sequence) else [mapping[n]]))
                       for n in mapping)
    except (TypeError, ValueError):
        raise ConfigError(f"label scheme {name}: each region needs a list of integer label values, "
                          f"got {dict(mapping)!r}.") from None
    if not names or any(not v for v in labels):
        raise ConfigError(f"label scheme {name}: needs at least one region, each with label values: "
                          f"{dict(mapping)!r}.")
    return RegionScheme(names, labels, tuple((i, v[0]) for i, v in enumerate(labels)), name=name,
                        label_names=tuple((v[0], n) for n, v in zip(names, labels, strict=True)))


def get_scheme(scheme: str | Path | Mapping[str, Sequence[int]] | RegionScheme) -> RegionScheme:
    """A scheme by name (see :data:`SCHEMES`), from a YAML/JSON file path, or built from a mapping.

    A mapping ``{"region": [label values], ...}`` defines a lab's own scheme; regions are painted
    back in the order given, each with its first label value, and scored with the ``plain`` rules.
    """
    if isinstance(scheme, RegionScheme):
        return scheme
    if isinstance(scheme, Mapping):
        if "names" in scheme and "labels" in scheme and "paint" in scheme:
            return RegionScheme.from_dict(scheme)
        return _from_mapping(scheme)
    text = str(scheme)
    if text in SCHEMES:
        return SCHEMES[text]
    if text.lower().endswith((".yaml", ".yml", ".json")):
        return scheme_from_file(text)
    raise ConfigError(f"unknown label scheme {text!r}; choose one of {sorted(SCHEMES)}, give a YAML/JSON "
                      "file {region: [label values]}, or a mapping {region: [label values]}.")
