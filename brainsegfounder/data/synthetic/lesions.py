"""Synthetic lesions: gliomas (BraTS sub-regions), post-treatment resection cavities, strokes.

Lesion code works in an internal coding (:data:`NCR`, :data:`ED`, :data:`ET`, :data:`RC`) that
:func:`label_values` maps to a label scheme's values when the subject is written, so label
values live only in :mod:`brainsegfounder.data.regions`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainsegfounder.data.regions import RegionScheme
from brainsegfounder.data.synthetic.anatomy import Anatomy, Template, local_field, random_rotation
from brainsegfounder.utils.errors import ConfigError

#: Internal coding of a glioma until written: necrosis / non-enhancing core, oedema / SNFH,
#: enhancing tumour, resection cavity.
NCR, ED, ET, RC = 1, 2, 3, 4


def label_values(scheme: RegionScheme) -> dict[int, int]:
    """Internal code -> the scheme's label value, read from its regions (no table of values here).

    Glioma schemes define ET, TC and WT (and RC after treatment): necrosis is TC without ET,
    oedema is WT without TC. A one-region scheme labels its lesion with that region's value.

    >>> from brainsegfounder.data.regions import get_scheme
    >>> label_values(get_scheme("brats2021")), label_values(get_scheme("brats2024"))[RC]
    ({1: 1, 2: 2, 3: 4}, 4)
    >>> label_values(get_scheme({"infarct": [7]}))
    {1: 7}
    """
    regions = {n: set(v) for n, v in zip(scheme.names, scheme.labels, strict=True)}
    if len(regions) == 1:
        return {1: min(next(iter(regions.values())))}
    if not {"ET", "TC", "WT"} <= set(regions):
        raise ConfigError(f"label scheme {scheme.name} (regions {scheme.names}) is neither a glioma scheme with "
                          "ET, TC and WT regions nor a one-region lesion scheme; the synthetic generator cannot "
                          "draw its lesions.")
    roles = {NCR: regions["TC"] - regions["ET"], ED: regions["WT"] - regions["TC"], ET: regions["ET"]}
    if "RC" in regions:
        roles[RC] = regions["RC"]
    odd = {code: sorted(v) for code, v in roles.items() if len(v) != 1}
    if odd:
        raise ConfigError(f"label scheme {scheme.name}: expected one label value per glioma sub-region, got {odd}.")
    return {code: next(iter(v)) for code, v in roles.items()}



@dataclass
class Blend:
    """Replace the signal in a box by ``signal[contrast] * (1 + texture)`` with weight ``fraction``."""

    box: tuple[slice, slice, slice]
    fraction: np.ndarray
    signal: dict[str, float]
    texture: np.ndarray | float = 0.0


def _box(centre_vox: np.ndarray, half_vox: float, shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(max(int(c - half_vox), 0), min(int(c + half_vox) + 2, n))
                 for c, n in zip(centre_vox, shape, strict=True))


def _box_axes_mm(tpl: Template, box: tuple[slice, ...]) -> list[np.ndarray]:
    return [tpl.origin[k] + tpl.spacing * np.arange(sl.start, sl.stop) for k, sl in enumerate(box)]


def _ellipsoid_radius(rng: np.random.Generator, axes_mm: Sequence[np.ndarray], centre_mm: np.ndarray,
                      elongation: float) -> np.ndarray:
    """Distance (mm) to ``centre_mm`` in a randomly oriented, volume-preserving ellipsoid metric."""
    rotation = random_rotation(rng)
    semi = np.exp(rng.normal(0.0, elongation, size=3))
    semi /= np.prod(semi) ** (1 / 3)
    dx, dy, dz = (np.asarray(a, dtype=np.float32) - c for a, c in zip(axes_mm, centre_mm, strict=True))
    r2 = np.zeros((len(dx), len(dy), len(dz)), dtype=np.float32)
    for k in range(3):
        q = (rotation[0, k] * dx[:, None, None] + rotation[1, k] * dy[None, :, None]
             + rotation[2, k] * dz[None, None, :]) / semi[k]
        r2 += q * q
    return np.sqrt(r2)


def _pick_centre(rng: np.random.Generator, tpl: Template, accept: np.ndarray, tries: int = 400):
    """A point (mm) drawn uniformly in the brain's bounding box where ``accept`` holds.

    Drawn in mm rather than among voxels so that the same draws land in the same place at any
    spacing; falls back to the accepted voxel nearest the brain's centre.
    """
    inside = np.argwhere(accept)
    if len(inside) == 0:
        return None
    lo, hi = inside.min(axis=0), inside.max(axis=0)
    lo_mm, hi_mm = tpl.origin + tpl.spacing * lo, tpl.origin + tpl.spacing * hi
    for _ in range(tries):
        point = rng.uniform(lo_mm, hi_mm)
        vox = np.round((point - tpl.origin) / tpl.spacing).astype(int)
        if accept[tuple(vox)]:
            return point
    nearest = inside[np.argmin(np.linalg.norm(tpl.origin + tpl.spacing * inside - tpl.centre_mm, axis=1))]
    return tpl.origin + tpl.spacing * nearest


def mass_effect(anatomy: Anatomy, tpl: Template, centre_mm: np.ndarray, radius_mm: float,
                 strength: float) -> None:
    """Push tissue away from a growing tumour (in place), within a box around it.

    Source = c + (x - c)(1 - k exp(-r^2 / R^2)): monotone in r for k < 1, so no folding.
    """
    s = tpl.spacing
    half = 2.8 * radius_mm / s
    centre_vox = (centre_mm - tpl.origin) / s
    box = _box(centre_vox, half, tpl.shape)
    g = [np.arange(sl.start, sl.stop, dtype=np.float32) - c for sl, c in zip(box, centre_vox, strict=True)]
    r2 = (g[0][:, None, None] ** 2 + g[1][None, :, None] ** 2 + g[2][None, None, :] ** 2) * s * s
    shrink = 1.0 - strength * np.exp(-r2 / radius_mm**2)
    coords = np.stack([np.broadcast_to(g[k].reshape([-1 if i == k else 1 for i in range(3)]) * shrink
                                       + (centre_vox[k] - box[k].start), shrink.shape)
                       for k in range(3)])
    for name in ("gm", "wm", "brain_soft"):
        volume = getattr(anatomy, name)
        local = np.ascontiguousarray(volume[box])
        volume[box] = ndimage.map_coordinates(local, coords, order=1, mode="nearest", prefilter=False)


def _component_at(mask: np.ndarray, voxel: np.ndarray) -> np.ndarray:
    """The 26-connected component of ``mask`` that holds ``voxel`` (all of it if none does)."""
    components, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    at = components[tuple(np.asarray(voxel).astype(int))]
    return components == at if at else mask


def _soft(mask: np.ndarray, sigma_mm: float, spacing: float) -> np.ndarray:
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma=sigma_mm / spacing)


def plan_tumour(rng: np.random.Generator, anatomy: Anatomy, tpl: Template):
    """Draw a glioma's size and centre (deep enough for its core to stay in the brain)."""
    r_wt = rng.uniform(18.0, 34.0)  # mm, whole tumour before irregularity and clipping
    r_tc = r_wt * rng.uniform(0.55, 0.85)
    r_ncr = r_tc * rng.uniform(0.50, 0.75)
    depth = np.asarray(ndimage.distance_transform_edt(anatomy.brain_soft > 0.5, sampling=tpl.spacing))
    margin = 1.35 * r_tc + 3.0
    accept = (depth > margin) & (anatomy.wm > 0.5)
    centre = _pick_centre(rng, tpl, accept)
    if centre is None:  # a small deformed brain: shrink the tumour to the deepest white matter
        deepest = float(depth[anatomy.wm > 0.5].max())
        factor = max(deepest - 3.0, 4.0) / margin
        r_wt, r_tc, r_ncr = r_wt * factor, r_tc * factor, r_ncr * factor
        centre = _pick_centre(rng, tpl, (depth >= deepest - 1e-3) & (anatomy.wm > 0.5))
    return centre, r_wt, r_tc, r_ncr


def tumour(rng: np.random.Generator, anatomy: Anatomy, tpl: Template, plan, signals,
           box_radius_mm: float | None = None):
    """Label the glioma (1 NCR inside 3 ET inside 2 ED) and say how it looks; anatomy is final.

    ``box_radius_mm`` fixes the box its random shape fields are drawn on; time points of one subject
    share it, so that a tumour scaled in ``plan`` grows or shrinks with the same shape.
    """
    centre_mm, r_wt, r_tc, r_ncr = plan
    s = tpl.spacing
    half_mm = box_radius_mm if box_radius_mm is not None else 1.6 * r_wt + 2 * s
    centre_vox = np.round((centre_mm - tpl.origin) / s)
    centre_mm = tpl.origin + s * centre_vox  # on a voxel centre, so the core always holds a voxel
    box = _box(centre_vox, half_mm / s, tpl.shape)
    axes = _box_axes_mm(tpl, box)
    r = _ellipsoid_radius(rng, axes, centre_mm, elongation=0.18)
    edema_noise = local_field(rng, axes, centre_mm, half_mm, control_mm=9.0)
    core_noise = local_field(rng, axes, centre_mm, half_mm, control_mm=6.0)
    necrosis_noise = local_field(rng, axes, centre_mm, half_mm, control_mm=5.0)
    texture = 0.08 * local_field(rng, axes, centre_mm, half_mm, control_mm=3.0)
    a_ed, a_core = rng.uniform(0.15, 0.30), rng.uniform(0.08, 0.15)
    wm_pull = rng.uniform(0.2, 0.4)

    brain = anatomy.brain[box]
    wm, csf = anatomy.wm[box], anatomy.csf[box]
    # The core's and the necrosis' borders share one noise field, so the enhancing rim between them
    # keeps a thickness of at least (r_tc - r_ncr)(1 - 2 a_core) - 0.2 r_ncr > 0: never breached.
    core = (r < r_tc * (1 + a_core * core_noise)) & brain
    necrosis = (r < r_ncr * (1 + a_core * core_noise + 0.1 * necrosis_noise)) & core
    # Vasogenic edema spreads along white-matter tracts and stops at CSF spaces.
    whole = (r < r_wt * (1 + a_ed * edema_noise + wm_pull * (wm - 0.5))) & brain & (csf < 0.5)
    whole = ndimage.binary_opening(whole) | core
    # One lesion, as a glioma is in nearly every BraTS case: drop edema islands cut off by sulci.
    whole = _component_at(whole, centre_vox - [sl.start for sl in box])
    core &= whole
    necrosis &= core
    label = np.zeros(r.shape, dtype=np.uint8)
    label[whole] = ED
    label[core] = ET
    label[necrosis] = NCR
    # Tiny tumours at coarse spacing can lose a region to discretisation; every BraTS case has
    # all three, so fall back to the centre voxel and one-voxel shells.
    label[tuple(int(c - sl.start) for c, sl in zip(centre_vox, box, strict=True))] = NCR
    if not (label == ET).any():
        label[ndimage.binary_dilation(label == NCR) & brain & (label != NCR)] = ET
    if not (label == ED).any():
        label[ndimage.binary_dilation(label > 0, iterations=2) & brain & (label == 0)] = ED

    ncr_sig, ed_sig, et_sig = signals
    blends = [
        # Edema fades into its surroundings; the core's borders are sharper.
        Blend(box, _soft(label > 0, 1.5, s), ed_sig, texture),
        Blend(box, _soft((label == ET) | (label == NCR), 0.7, s), et_sig, texture),
        Blend(box, _soft(label == NCR, 0.7, s), ncr_sig, 0.5 * texture),
    ]
    full = np.zeros(tpl.shape, dtype=np.uint8)
    full[box] = label
    return full, blends


def strokes(rng: np.random.Generator, anatomy: Anatomy, tpl: Template, signals, scale: float = 1.0,
            box_scale: float = 1.0):
    """1-3 chronic stroke lesions, cortical (territorial) or subcortical (lacunar-like).

    ``scale`` multiplies every lesion's radius (a later time point); ``box_scale`` (>= every scale
    of the series) fixes the boxes their random shapes are drawn on, so the shapes stay the same.
    """
    s = tpl.spacing
    n_lesions = int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    depth = np.asarray(ndimage.distance_transform_edt(anatomy.brain, sampling=s))
    parenchyma = (anatomy.gm + anatomy.wm) > 0.8
    cortical_site = (anatomy.gm > 0.4) & (depth > 2.0) & (depth < 12.0)
    deep_site = parenchyma & (depth > 28.0) & (anatomy.csf < 0.2)
    ventricles = (anatomy.csf > 0.5) & (depth > 15.0)
    cavity_sig, border_sig = signals
    mask = np.zeros(tpl.shape, dtype=bool)
    blends = []
    for _ in range(n_lesions):
        cortical = rng.uniform() < 0.6
        # Volumes (mL) from lacunes to whole territories; a cortical lesion centred at the
        # surface loses about half of its ball to the outside, hence the larger draw.
        volume_ml = math.exp(rng.uniform(math.log(3.0), math.log(220.0)) if cortical
                             else rng.uniform(math.log(0.8), math.log(12.0)))
        radius = (3 * volume_ml * 1000.0 / (4 * math.pi)) ** (1 / 3)
        centre = _pick_centre(rng, tpl, cortical_site if cortical else deep_site)
        if centre is None:
            centre = _pick_centre(rng, tpl, parenchyma)
        half_mm = 1.6 * radius * box_scale + 2 * s
        centre_vox = np.round((centre - tpl.origin) / s)
        centre = tpl.origin + s * centre_vox
        box = _box(centre_vox, half_mm / s, tpl.shape)
        axes = _box_axes_mm(tpl, box)
        r = _ellipsoid_radius(rng, axes, centre, elongation=0.3 if cortical else 0.2)
        noise = local_field(rng, axes, centre, half_mm, control_mm=max(radius / 2, 3.0))
        amplitude = rng.uniform(0.15, 0.35)
        boundary = radius * scale * (1 + amplitude * noise)
        # Sulcal CSF inside an infarct is traced as lesion; the ventricles are not.
        lesion = (r < boundary) & anatomy.brain[box] & ~ventricles[box]
        centre_local = centre_vox - [sl.start for sl in box]
        lesion[tuple(centre_local.astype(int))] = True
        lesion = _component_at(lesion, centre_local)
        cavity = lesion & (r < 0.7 * boundary)
        texture = 0.06 * local_field(rng, axes, centre, half_mm, control_mm=3.0)
        mask[box] |= lesion
        blends.append(Blend(box, _soft(lesion, 0.8, s), border_sig, texture))
        blends.append(Blend(box, _soft(cavity, 0.8, s), cavity_sig, texture))
    return mask.astype(np.uint8), blends



def resection_cavity(rng: np.random.Generator, anatomy: Anatomy, tpl: Template, plan, label: np.ndarray,
                     signal: dict[str, float]) -> Blend:
    """Carve a post-operative cavity (:data:`RC`, in place in ``label``) into one side of the tumour.

    The cavity sits off the tumour's centre, replacing part of the tumour and of the brain next to
    it, so residual tumour (necrosis, enhancing rim, SNFH) stays beside it as after a subtotal
    resection; the core around the tumour's centre is never carved, so every post-treatment
    subject holds all four labels.
    """
    centre_mm, _, r_tc, _ = plan
    s = tpl.spacing
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    offset = r_tc * rng.uniform(0.6, 0.9)
    radius = r_tc * rng.uniform(0.6, 0.9)
    centre_vox = np.round((centre_mm + direction * offset - tpl.origin) / s)
    centre_vox = np.clip(centre_vox, 0, np.array(tpl.shape) - 1)
    centre = tpl.origin + s * centre_vox
    half_mm = 1.4 * radius + 2 * s
    box = _box(centre_vox, half_mm / s, tpl.shape)
    axes = _box_axes_mm(tpl, box)
    r = _ellipsoid_radius(rng, axes, centre, elongation=0.2)
    noise = local_field(rng, axes, centre, half_mm, control_mm=max(radius / 2, 3.0))
    texture = 0.04 * local_field(rng, axes, centre, half_mm, control_mm=3.0)
    region = label[box]  # a view: writing it writes the label map
    cavity = (r < radius * (1 + 0.12 * noise)) & anatomy.brain[box]
    centre_local = (centre_vox - [sl.start for sl in box]).astype(int)
    cavity = _component_at(cavity, centre_local) if cavity.any() else cavity
    # Residual tumour: the core around the tumour's centre voxel (which tumour() made necrotic) stays.
    core_mm = tpl.origin + s * np.round((centre_mm - tpl.origin) / s)
    d2 = sum(((a - c) ** 2).reshape([-1 if i == k else 1 for i in range(3)])
             for k, (a, c) in enumerate(zip(axes, core_mm, strict=True)))
    cavity &= d2 >= (0.35 * r_tc) ** 2
    if not cavity.any():  # a tumour squeezed to a few voxels: the oedema voxel nearest the centre
        oedema = region == ED
        cavity = oedema & (r == r[oedema].min())
    region[cavity] = RC
    if not (label == ET).any():
        label[ndimage.binary_dilation(label == NCR) & anatomy.brain & (label == ED)] = ET
    return Blend(box, _soft(cavity, 0.8, s), signal, texture)
