"""How different subjects are from one another: the ``default`` level, and ``high`` for transfer studies.

``default`` is the generator as the demo and the tests have always used it (its bytes do not move).
``high`` adds, from a random stream of its own (so the default draws are untouched and subject
``i`` keeps its identity), the inter-subject and inter-site differences that real cohorts have and
that pretraining is meant to absorb:

- anatomy: a second, finer displacement field (multi-scale warps, larger amplitude), ventricles
  enlarged by a radial warp about their centre, cortical atrophy (less grey matter, wider sulcal
  CSF), a wider brain-size range;
- scanner and site: tissue contrasts jittered more, a per-site intensity curve (a power law),
  stronger bias fields, more noise, and thick slices (an anisotropic blur along one axis);
- tumour appearance: a wider range of sizes and a stronger texture.

>>> from brainsegfounder.data.synthetic import synthesize_subject
>>> a = synthesize_subject("brats2021", 0, spacing=4.0)
>>> b = synthesize_subject("brats2021", 0, spacing=4.0, variety="high")
>>> bool((a.images["t1"] != b.images["t1"]).any()), a.case_id == b.case_id
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import ndimage

from brainsegfounder.data.synthetic.anatomy import Anatomy, Template, volume_field
from brainsegfounder.data.synthetic.contrasts import ContrastParams
from brainsegfounder.data.synthetic.lesions import mass_effect
from brainsegfounder.utils.errors import ConfigError

__all__ = ["VARIETIES", "check_variety", "variety_rng", "vary_anatomy", "vary_contrast", "vary_tumour_plan"]

VARIETIES = ("default", "high")


def check_variety(variety: str) -> str:
    if variety not in VARIETIES:
        raise ConfigError(f"unknown variety {variety!r}; choose one of {', '.join(VARIETIES)} "
                          "(default: the demo's data; high: more inter-subject and inter-site variation).")
    return variety


def variety_rng(seed: int, index: int) -> np.random.Generator:
    """The extra stream of the ``high`` level; separate from the default streams of ``(seed, index)``."""
    return np.random.default_rng([int(seed), int(index), 0x7A12])


def vary_anatomy(rng: np.random.Generator, anatomy: Anatomy, tpl: Template) -> None:
    """Multi-scale warp, larger or smaller brain, enlarged ventricles, atrophy; in place, before ``finish``."""
    s = tpl.spacing
    # Two scales: 24 mm (gyral-scale shape) and 60 mm (lobe-scale), a few mm each.
    fields = [volume_field(rng, tpl, control_mm=24.0, std=rng.uniform(1.0, 2.5))
              + volume_field(rng, tpl, control_mm=60.0, std=rng.uniform(2.0, 5.0)) for _ in range(3)]
    scale = rng.uniform(0.92, 1.08)
    centre_vox = (tpl.centre_mm - tpl.origin) / s
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in tpl.shape], indexing="ij")
    coords = np.stack([centre_vox[k] + (grid[k] - centre_vox[k]) / scale + fields[k] / s for k in range(3)])
    for name in ("gm", "wm", "brain_soft"):
        setattr(anatomy, name, ndimage.map_coordinates(getattr(anatomy, name), coords, order=1, mode="constant",
                                                       cval=0.0, prefilter=False, output=np.float32))
    # Ventricles: the deep CSF (no tissue, far from the surface) around the brain's centre;
    # expanding its neighbourhood enlarges them (age, hydrocephalus) without touching the cortex.
    parenchyma = anatomy.gm + anatomy.wm
    deep = (anatomy.brain_soft > 0.5) & (parenchyma < 0.3)
    deep &= ndimage.distance_transform_edt(anatomy.brain_soft > 0.5, sampling=s) > 20.0
    if deep.any():
        centre_mm = tpl.origin + s * np.argwhere(deep).mean(axis=0)
        mass_effect(anatomy, tpl, centre_mm, radius_mm=rng.uniform(18.0, 28.0), strength=rng.uniform(0.0, 0.4))
    # Atrophy: grey matter thins, white matter a little; the freed volume becomes CSF in finish().
    atrophy = rng.uniform(0.0, 0.3)
    anatomy.gm = anatomy.gm * np.float32(1.0 - atrophy)
    anatomy.wm = anatomy.wm * np.float32(1.0 - 0.3 * atrophy)


def vary_contrast(rng: np.random.Generator, params: ContrastParams) -> ContrastParams:
    """A site's version of one contrast: jittered signals, intensity curve, bias, noise, slice thickness."""
    def jitter(values, sd):
        return tuple(float(v * math.exp(rng.normal(0.0, sd))) for v in values)

    thick_axis = int(rng.integers(3))
    blur = [0.0, 0.0, 0.0]
    blur[thick_axis] = float(rng.choice([0.0, rng.uniform(1.0, 3.0)], p=[0.4, 0.6]))  # mm, FWHM-ish
    return replace(
        params,
        tissue=jitter(params.tissue, 0.10),
        tumour=jitter(params.tumour, 0.15),
        stroke=jitter(params.stroke, 0.12),
        bias_coarse=params.bias_coarse * np.float32(rng.uniform(1.5, 3.0)),
        noise=params.noise * float(rng.uniform(1.0, 2.5)),
        gamma=float(math.exp(rng.normal(0.0, 0.25))),
        blur_mm=tuple(blur),
    )


def vary_tumour_plan(rng: np.random.Generator, plan):
    """A wider range of glioma sizes (0.6x to 1.2x), the sub-regions scaled together."""
    centre, *radii = plan
    factor = rng.uniform(0.6, 1.2)
    return (centre, *(r * factor for r in radii))


def texture_gain(rng: np.random.Generator) -> float:
    """How much stronger the tumour's texture is than the default's."""
    return float(rng.uniform(1.0, 3.0))
