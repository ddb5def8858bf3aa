"""Synthetic brain MRI subjects built on the real MNI152 anatomy, written as the real data sets are.

Tests and the demo have no BraTS, ATLAS or UK Biobank data, so this module makes look-alikes from
the MNI ICBM152 2009a template that the nilearn wheel ships (T1, grey- and white-matter
probability maps; nothing is downloaded). Each subject is the template under its own random
smooth deformation (a few mm) and small affine, with per-subject tissue intensities, a smooth
bias field and Rician noise, skull-stripped (zero outside the brain). Depending on the layout it
carries a glioma with the BraTS sub-regions, stroke lesions, or nothing:

=============  =====================================  ===================================
layout         images (keys of ``images``)            label
=============  =====================================  ===================================
``brats2021``  flair, t1, t1ce, t2                    0, 1 NCR, 2 ED, 4 ET (uint8)
``brats2023``  t1n, t1c, t2w, t2f                     0, 1 NCR, 2 SNFH, 3 ET (uint8)
``ukb``        t1, flair (healthy)                    none
``atlas``      t1w                                    0/1 stroke lesion mask (uint8)
=============  =====================================  ===================================

Volumes live on the template's grid (RAS, MNI coordinates in mm) at the chosen isotropic spacing:
99 x 117 x 95 voxels at 2 mm (the default, for speed), 197 x 233 x 189 at 1 mm (ATLAS v2.0's own
grid). Subject ``i`` depends only on ``(seed, i)``, and the same ``(seed, i)`` gives the same
anatomy in every layout.

In Python:

>>> from brainsegfounder.data.synthetic import synthesize_subject, generate
>>> subject = synthesize_subject("brats2021", index=0, seed=0, spacing=2.0)
>>> sorted(subject.images), subject.label.shape, subject.case_id
(['flair', 't1', 't1ce', 't2'], (99, 117, 95), 'BraTS2021_00000')
>>> folders = generate("brats2021", "data/synthetic_brats2021", subjects=24)  # doctest: +SKIP

From the shell::

    python -m brainsegfounder.data.synthetic --layout brats2021 --subjects 24 --out DIR --seed 0
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from scipy import ndimage

from brainsegfounder.errors import BrainSegFounderError, DataError

__all__ = ["LAYOUTS", "MODALITIES", "SyntheticSubject", "synthesize_subject", "generate", "main"]

LAYOUTS = ("brats2021", "brats2023", "ukb", "atlas")
Layout = Literal["brats2021", "brats2023", "ukb", "atlas"]

#: Each layout's image names, in the order the files are listed, and the contrast each one is.
MODALITIES: dict[str, tuple[str, ...]] = {
    "brats2021": ("flair", "t1", "t1ce", "t2"),
    "brats2023": ("t1n", "t1c", "t2w", "t2f"),
    "ukb": ("t1", "flair"),
    "atlas": ("t1w",),
}
_CONTRAST = {
    "flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2",
    "t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair", "t1w": "t1",
}
# Parameters of all four contrasts are always drawn, in this order, so that a subject's random
# streams do not depend on which contrasts its layout writes.
_ALL_CONTRASTS = ("t1", "t1ce", "t2", "flair")

# Relative signal of CSF, GM, WM: T1 WM > GM > CSF, T2 CSF > GM > WM, FLAIR is T2-weighted
# with the free water nulled, so CSF goes dark and GM stays brighter than WM.
_TISSUE_SIGNAL = {
    "t1": (0.25, 0.60, 0.85),
    "t1ce": (0.25, 0.60, 0.85),
    "t2": (1.00, 0.55, 0.40),
    "flair": (0.12, 0.65, 0.50),
}
# Relative signal of necrosis, edema, enhancing tumour. Edema: long T2 (bright T2/FLAIR, dark T1);
# enhancing rim: gadolinium shortens T1, so it lights up on T1ce only; necrosis: fluid-like, dark
# on T1/T1ce, bright on T2, partly suppressed on FLAIR.
_TUMOUR_SIGNAL = {
    "t1": (0.20, 0.50, 0.55),
    "t1ce": (0.22, 0.52, 1.25),
    "t2": (0.95, 0.85, 0.65),
    "flair": (0.40, 0.95, 0.75),
}
# Relative signal of a chronic stroke lesion's cavity and its gliotic border: the cavity is
# CSF-like (dark T1, dark FLAIR, bright T2); gliosis is bright on FLAIR.
_STROKE_SIGNAL = {
    "t1": (0.30, 0.45),
    "t1ce": (0.30, 0.45),
    "t2": (0.90, 0.75),
    "flair": (0.20, 0.80),
}
_BRATS_ET_LABEL = {"brats2021": 4, "brats2023": 3}
# Internal tumour coding until written: 1 NCR, 2 ED, 3 ET.
_NCR, _ED, _ET = 1, 2, 3
_FOLDS = 5
# The original Swin UNETR fold file lists BraTS 2021 images in this order (checked on a copy of
# brats21_folds.json): flair, t1ce, t1, t2.
_FOLD_IMAGE_ORDER = ("flair", "t1ce", "t1", "t2")


@dataclass
class SyntheticSubject:
    """One synthetic subject, in memory.

    Attributes:
        images: layout's modality name -> float32 volume (X, Y, Z), zero outside the brain.
        label: uint8 label map on the same grid (layout's label values), or None (``ukb``).
        affine: 4 x 4 voxel-to-MNI (RAS, mm) matrix shared by every volume.
        case_id: the subject's identifier as the real data set names it
            (``BraTS2021_00000``, ``BraTS-GLI-00000-000``, ``1000000``, ``sub-r001s001``).
        brain_mask: bool volume, True inside the (deformed) brain.
        tissue: ``"csf"``, ``"gm"``, ``"wm"`` -> float32 volume fractions (sum 1 in the brain,
            tumour and lesions included in the tissue they replaced): the ground truth behind
            the contrasts, e.g. to check them or to train tissue segmentation.
    """

    images: dict[str, np.ndarray]
    label: np.ndarray | None
    affine: np.ndarray
    case_id: str
    brain_mask: np.ndarray | None = None
    tissue: dict[str, np.ndarray] | None = None


# --------------------------------------------------------------------------------------------
# Template on the target grid


@dataclass(frozen=True)
class _Template:
    gm: np.ndarray  # float32 probabilities on the target grid
    wm: np.ndarray
    brain: np.ndarray  # float32 soft brain mask in [0, 1]
    affine: np.ndarray
    spacing: float
    centre_mm: np.ndarray  # brain centroid, where the random affine pivots
    extent_mm: np.ndarray  # field of view of the 1 mm template, fixes control-grid sizes

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.gm.shape

    @property
    def origin(self) -> np.ndarray:
        return self.affine[:3, 3]

    def axes_mm(self) -> list[np.ndarray]:
        return [self.origin[k] + self.spacing * np.arange(n) for k, n in enumerate(self.shape)]


@functools.lru_cache(maxsize=4)
def _template(spacing: float) -> _Template:
    """The nilearn MNI152 maps resampled once per process to ``spacing`` mm."""
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    affine_1mm = t1_img.affine.copy()
    # nilearn's own brain mask threshold (load_mni152_brain_mask); holes filled so that dark
    # ventricles stay inside the brain.
    brain = ndimage.binary_fill_holes(t1 / t1.max() > 0.2).astype(np.float32)
    extent = np.array(t1.shape, dtype=float) * np.abs(np.diag(affine_1mm)[:3])
    centre = affine_1mm[:3, :3] @ np.argwhere(brain > 0).mean(axis=0) + affine_1mm[:3, 3]

    shape = tuple(int(math.ceil(n / spacing)) for n in t1.shape)

    def resample(volume: np.ndarray) -> np.ndarray:
        if spacing == 1.0:
            return volume
        if spacing > 1.0:
            # Anti-aliasing: bring the 1 mm voxel's blur up to the coarser voxel's.
            volume = ndimage.gaussian_filter(volume, sigma=math.sqrt(spacing**2 - 1.0) / 2.355)
        return ndimage.affine_transform(volume, np.full(3, spacing), output_shape=shape, order=1,
                                        mode="constant", cval=0.0, output=np.float32)

    affine = affine_1mm.copy()
    affine[:3, :3] = affine_1mm[:3, :3] * spacing
    arrays = [np.clip(resample(v), 0.0, 1.0) for v in (gm, wm, brain)]
    for a in arrays:
        a.setflags(write=False)
    affine.setflags(write=False)
    return _Template(*arrays, affine=affine, spacing=spacing, centre_mm=centre, extent_mm=extent)


# --------------------------------------------------------------------------------------------
# Smooth random fields: cubic B-splines on a coarse lattice, interpolated separably, so a field is
# defined in mm (the same field at any spacing) and costs a few small matrix products.


def _spline_weights(n_nodes: int, positions: np.ndarray) -> np.ndarray:
    """(len(positions), n_nodes) matrix of cubic-spline interpolation weights."""
    # Spline interpolation is linear in the data: interpolating each unit vector gives its weight.
    eye = np.eye(n_nodes)
    return np.stack([ndimage.map_coordinates(eye[j], positions[None], order=3, mode="nearest")
                     for j in range(n_nodes)], axis=1).astype(np.float32)


def _spline_field(rng: np.random.Generator, axes_mm: Sequence[np.ndarray], start_mm: Sequence[float],
                  n_nodes: Sequence[int], control_mm: float, std: float = 1.0) -> np.ndarray:
    coarse = (rng.standard_normal(tuple(n_nodes)) * std).astype(np.float32)
    wx, wy, wz = (_spline_weights(n, (np.asarray(a) - s) / control_mm)
                  for a, s, n in zip(axes_mm, start_mm, n_nodes, strict=True))
    field = np.tensordot(wx, coarse, axes=(1, 0))  # X, b, c
    field = np.tensordot(field, wy, axes=(1, 1))  # X, c, Y
    return np.ascontiguousarray(np.tensordot(field, wz, axes=(1, 1)))  # X, Y, Z


def _volume_field(rng: np.random.Generator, tpl: _Template, control_mm: float, std: float = 1.0):
    """A smooth field over the whole grid, its lattice anchored to the 1 mm template's corner."""
    n_nodes = [int(math.ceil(e / control_mm)) + 3 for e in tpl.extent_mm]
    start = tpl.origin - control_mm
    return _spline_field(rng, tpl.axes_mm(), start, n_nodes, control_mm, std)


def _local_field(rng: np.random.Generator, axes_mm: Sequence[np.ndarray], centre_mm: np.ndarray,
                 half_mm: float, control_mm: float) -> np.ndarray:
    """A smooth field of unit spread around ``centre_mm``, clipped to +-2 to bound shapes."""
    n = int(math.ceil(2 * half_mm / control_mm)) + 3
    field = _spline_field(rng, axes_mm, centre_mm - half_mm - control_mm, [n] * 3, control_mm)
    return np.clip(field / max(float(field.std()), 1e-6), -2.0, 2.0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _euler(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# --------------------------------------------------------------------------------------------
# Anatomy


@dataclass
class _Anatomy:
    gm: np.ndarray
    wm: np.ndarray
    brain_soft: np.ndarray
    vessels: np.ndarray | None = None
    csf: np.ndarray | None = None
    brain: np.ndarray | None = None

    def finish(self) -> None:
        """Hard brain mask and tissue fractions that sum to one inside it."""
        self.brain = self.brain_soft > 0.5
        gm = np.clip(self.gm, 0.0, 1.0)
        wm = np.clip(self.wm, 0.0, 1.0)
        total = gm + wm
        scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0).astype(np.float32)
        self.gm = gm * scale * self.brain
        self.wm = wm * scale * self.brain
        self.csf = np.clip(self.brain - self.gm - self.wm, 0.0, 1.0).astype(np.float32)


def _deformed_anatomy(rng: np.random.Generator, tpl: _Template) -> _Anatomy:
    """Warp the template by a random affine plus a smooth displacement (a few mm)."""
    s = tpl.spacing
    # Output -> template map: x_src = c + A (x - c) + t + u(x), A = rotation / scale.
    angles = np.deg2rad(rng.normal(0.0, 3.0, size=3))
    # Brain size varies by about +-10% in volume: BraTS is only rigidly aligned, and MNI-registered
    # data (UKB, ATLAS) keep some residual size differences.
    scale = rng.uniform(0.95, 1.03) * rng.uniform(0.98, 1.02, size=3)
    a = _euler(angles) / scale[None, :]
    translation = rng.normal(0.0, 2.0, size=3)
    displacement_mm = rng.uniform(1.5, 3.5)
    u = [_volume_field(rng, tpl, control_mm=36.0, std=displacement_mm) for _ in range(3)]
    vessel_fields = [_volume_field(rng, tpl, control_mm=9.0) for _ in range(2)]

    c_vox = (tpl.centre_mm - tpl.origin) / s
    g = [np.arange(n, dtype=np.float32) - c for n, c in zip(tpl.shape, c_vox, strict=True)]
    coords = np.empty((3, *tpl.shape), dtype=np.float32)
    for k in range(3):
        coords[k] = (a[k, 0] * g[0][:, None, None] + a[k, 1] * g[1][None, :, None]
                     + a[k, 2] * g[2][None, None, :] + (c_vox[k] + translation[k] / s)) + u[k] / s

    def warp(volume: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(volume, coords, order=1, mode="constant", cval=0.0,
                                       prefilter=False, output=np.float32)

    # Thin curvilinear structures where two smooth fields both cross zero: vessel-like lines
    # that enhance on T1ce in the sulci and ventricles (choroid plexus).
    v1, v2 = vessel_fields
    width = 0.12 * float(np.sqrt(np.mean(v1**2) + np.mean(v2**2)))
    vessels = np.exp(-(v1**2 + v2**2) / (2 * width**2)).astype(np.float32)
    return _Anatomy(gm=warp(tpl.gm), wm=warp(tpl.wm), brain_soft=warp(tpl.brain), vessels=vessels)


# --------------------------------------------------------------------------------------------
# Lesions


@dataclass
class _Blend:
    """Replace the signal in a box by ``signal[contrast] * (1 + texture)`` with weight ``fraction``."""

    box: tuple[slice, slice, slice]
    fraction: np.ndarray
    signal: dict[str, float]
    texture: np.ndarray | float = 0.0


def _box(centre_vox: np.ndarray, half_vox: float, shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(max(int(c - half_vox), 0), min(int(c + half_vox) + 2, n))
                 for c, n in zip(centre_vox, shape, strict=True))


def _box_axes_mm(tpl: _Template, box: tuple[slice, ...]) -> list[np.ndarray]:
    return [tpl.origin[k] + tpl.spacing * np.arange(sl.start, sl.stop) for k, sl in enumerate(box)]


def _ellipsoid_radius(rng: np.random.Generator, axes_mm: Sequence[np.ndarray], centre_mm: np.ndarray,
                      elongation: float) -> np.ndarray:
    """Distance (mm) to ``centre_mm`` in a randomly oriented, volume-preserving ellipsoid metric."""
    rotation = _random_rotation(rng)
    semi = np.exp(rng.normal(0.0, elongation, size=3))
    semi /= np.prod(semi) ** (1 / 3)
    dx, dy, dz = (np.asarray(a, dtype=np.float32) - c for a, c in zip(axes_mm, centre_mm, strict=True))
    r2 = np.zeros((len(dx), len(dy), len(dz)), dtype=np.float32)
    for k in range(3):
        q = (rotation[0, k] * dx[:, None, None] + rotation[1, k] * dy[None, :, None]
             + rotation[2, k] * dz[None, None, :]) / semi[k]
        r2 += q * q
    return np.sqrt(r2)


def _pick_centre(rng: np.random.Generator, tpl: _Template, accept: np.ndarray, tries: int = 400):
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


def _mass_effect(anatomy: _Anatomy, tpl: _Template, centre_mm: np.ndarray, radius_mm: float,
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


def _plan_tumour(rng: np.random.Generator, anatomy: _Anatomy, tpl: _Template):
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


def _tumour(rng: np.random.Generator, anatomy: _Anatomy, tpl: _Template, plan, signals):
    """Label the glioma (1 NCR inside 3 ET inside 2 ED) and say how it looks; anatomy is final."""
    centre_mm, r_wt, r_tc, r_ncr = plan
    s = tpl.spacing
    half_mm = 1.6 * r_wt + 2 * s
    centre_vox = np.round((centre_mm - tpl.origin) / s)
    centre_mm = tpl.origin + s * centre_vox  # on a voxel centre, so the core always holds a voxel
    box = _box(centre_vox, half_mm / s, tpl.shape)
    axes = _box_axes_mm(tpl, box)
    r = _ellipsoid_radius(rng, axes, centre_mm, elongation=0.18)
    edema_noise = _local_field(rng, axes, centre_mm, half_mm, control_mm=9.0)
    core_noise = _local_field(rng, axes, centre_mm, half_mm, control_mm=6.0)
    necrosis_noise = _local_field(rng, axes, centre_mm, half_mm, control_mm=5.0)
    texture = 0.08 * _local_field(rng, axes, centre_mm, half_mm, control_mm=3.0)
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
    label[whole] = _ED
    label[core] = _ET
    label[necrosis] = _NCR
    # Tiny tumours at coarse spacing can lose a region to discretisation; every BraTS case has
    # all three, so fall back to the centre voxel and one-voxel shells.
    label[tuple(int(c - sl.start) for c, sl in zip(centre_vox, box, strict=True))] = _NCR
    if not (label == _ET).any():
        label[ndimage.binary_dilation(label == _NCR) & brain & (label != _NCR)] = _ET
    if not (label == _ED).any():
        label[ndimage.binary_dilation(label > 0, iterations=2) & brain & (label == 0)] = _ED

    ncr_sig, ed_sig, et_sig = signals
    blends = [
        # Edema fades into its surroundings; the core's borders are sharper.
        _Blend(box, _soft(label > 0, 1.5, s), ed_sig, texture),
        _Blend(box, _soft((label == _ET) | (label == _NCR), 0.7, s), et_sig, texture),
        _Blend(box, _soft(label == _NCR, 0.7, s), ncr_sig, 0.5 * texture),
    ]
    full = np.zeros(tpl.shape, dtype=np.uint8)
    full[box] = label
    return full, blends


def _strokes(rng: np.random.Generator, anatomy: _Anatomy, tpl: _Template, signals):
    """1-3 chronic stroke lesions, cortical (territorial) or subcortical (lacunar-like)."""
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
        half_mm = 1.6 * radius + 2 * s
        centre_vox = np.round((centre - tpl.origin) / s)
        centre = tpl.origin + s * centre_vox
        box = _box(centre_vox, half_mm / s, tpl.shape)
        axes = _box_axes_mm(tpl, box)
        r = _ellipsoid_radius(rng, axes, centre, elongation=0.3 if cortical else 0.2)
        noise = _local_field(rng, axes, centre, half_mm, control_mm=max(radius / 2, 3.0))
        amplitude = rng.uniform(0.15, 0.35)
        boundary = radius * (1 + amplitude * noise)
        # Sulcal CSF inside an infarct is traced as lesion; the ventricles are not.
        lesion = (r < boundary) & anatomy.brain[box] & ~ventricles[box]
        centre_local = centre_vox - [sl.start for sl in box]
        lesion[tuple(centre_local.astype(int))] = True
        lesion = _component_at(lesion, centre_local)
        cavity = lesion & (r < 0.7 * boundary)
        texture = 0.06 * _local_field(rng, axes, centre, half_mm, control_mm=3.0)
        mask[box] |= lesion
        blends.append(_Blend(box, _soft(lesion, 0.8, s), border_sig, texture))
        blends.append(_Blend(box, _soft(cavity, 0.8, s), cavity_sig, texture))
    return mask.astype(np.uint8), blends


# --------------------------------------------------------------------------------------------
# Contrasts


@dataclass
class _ContrastParams:
    tissue: tuple[float, float, float]
    tumour: tuple[float, float, float]
    stroke: tuple[float, float]
    bias_coarse: np.ndarray
    noise: float
    gain: float
    vessel_gain: float


_BIAS_CONTROL_MM = 60.0


def _draw_contrast(rng: np.random.Generator, contrast: str, tpl: _Template) -> _ContrastParams:
    def jitter(values, sd):
        return tuple(float(v * math.exp(rng.normal(0.0, sd))) for v in values)

    n_nodes = tuple(int(math.ceil(e / _BIAS_CONTROL_MM)) + 3 for e in tpl.extent_mm)
    return _ContrastParams(
        tissue=jitter(_TISSUE_SIGNAL[contrast], 0.05),
        tumour=jitter(_TUMOUR_SIGNAL[contrast], 0.06),
        stroke=jitter(_STROKE_SIGNAL[contrast], 0.06),
        bias_coarse=rng.normal(0.0, rng.uniform(0.05, 0.15), size=n_nodes).astype(np.float32),
        noise=float(rng.uniform(0.01, 0.035)),
        gain=float(rng.uniform(400.0, 1500.0)),
        vessel_gain=float(rng.uniform(0.3, 0.6)) if contrast == "t1ce" else 0.0,
    )


def _bias_field(params: _ContrastParams, tpl: _Template) -> np.ndarray:
    start = tpl.origin - _BIAS_CONTROL_MM
    wx, wy, wz = (_spline_weights(n, (a - s0) / _BIAS_CONTROL_MM)
                  for a, s0, n in zip(tpl.axes_mm(), start, params.bias_coarse.shape, strict=True))
    log_bias = np.tensordot(np.tensordot(np.tensordot(wx, params.bias_coarse, axes=(1, 0)),
                                         wy, axes=(1, 1)), wz, axes=(1, 1))
    return np.exp(log_bias).astype(np.float32)


def _render(contrast: str, params: _ContrastParams, anatomy: _Anatomy, blends: list[_Blend],
            tpl: _Template, rng: np.random.Generator) -> np.ndarray:
    csf_sig, gm_sig, wm_sig = params.tissue
    image = anatomy.csf * csf_sig + anatomy.gm * gm_sig + anatomy.wm * wm_sig
    if params.vessel_gain and anatomy.vessels is not None:
        image += params.vessel_gain * anatomy.vessels * anatomy.csf
    for blend in blends:
        target = blend.signal[contrast] * (1.0 + blend.texture)
        region = image[blend.box]
        image[blend.box] = region + blend.fraction * (target - region)
    image *= _bias_field(params, tpl)
    # Rician magnitude noise: Gaussian noise on both channels of the complex signal.
    sigma = params.noise * max(params.tissue)
    noise = rng.standard_normal((2, *image.shape), dtype=np.float32) * np.float32(sigma)
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)
    image *= anatomy.brain
    image *= np.float32(params.gain)
    return image.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# Public API


def _case_id(layout: str, index: int) -> str:
    return {
        "brats2021": f"BraTS2021_{index:05d}",
        "brats2023": f"BraTS-GLI-{index:05d}-000",
        "ukb": str(1_000_000 + index),
        "atlas": f"sub-r001s{index + 1:03d}",
    }[layout]


def _check_args(layout: str, index: int = 0, seed: int = 0, spacing: float = 2.0) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if int(index) < 0 or int(seed) < 0:
        raise ValueError(f"index and seed must be >= 0 (got index={index}, seed={seed})")
    if not (0.5 <= float(spacing) <= 8.0):
        raise ValueError(f"spacing must be between 0.5 and 8 mm (got {spacing})")


def synthesize_subject(layout: str, index: int, seed: int = 0, spacing: float = 2.0) -> SyntheticSubject:
    """Make subject ``index`` of ``layout`` in memory; the same ``(seed, index)`` gives the same arrays.

    Args:
        layout: one of :data:`LAYOUTS`.
        index: subject number (>= 0); the subject depends only on ``(seed, index)``.
        seed: random seed (>= 0).
        spacing: isotropic voxel size in mm (2.0 -> 99 x 117 x 95 voxels, 1.0 -> 197 x 233 x 189).

    Returns:
        A :class:`SyntheticSubject`; ``brats*`` subjects always hold all three tumour labels.

    >>> s = synthesize_subject("brats2023", 3, seed=1, spacing=4.0)
    >>> sorted(s.images), sorted(int(v) for v in np.unique(s.label))
    (['t1c', 't1n', 't2f', 't2w'], [0, 1, 2, 3])
    """
    _check_args(layout, index, seed, spacing)
    tpl = _template(float(spacing))
    # Independent streams, so that e.g. the tumour's draws never shift the anatomy's: subject i is
    # the same person in every layout.
    anatomy_rng, contrast_rng, lesion_rng, noise_rng = np.random.default_rng([int(seed), int(index)]).spawn(4)
    anatomy = _deformed_anatomy(anatomy_rng, tpl)
    params = {c: _draw_contrast(contrast_rng, c, tpl) for c in _ALL_CONTRASTS}
    noise_rngs = dict(zip(_ALL_CONTRASTS, noise_rng.spawn(len(_ALL_CONTRASTS)), strict=True))

    label = None
    blends: list[_Blend] = []
    if layout in _BRATS_ET_LABEL:
        plan = _plan_tumour(lesion_rng, anatomy, tpl)
        _mass_effect(anatomy, tpl, plan[0], radius_mm=plan[2], strength=lesion_rng.uniform(0.2, 0.5))
        anatomy.finish()
        signals = [{c: params[c].tumour[k] for c in _ALL_CONTRASTS} for k in range(3)]
        label, blends = _tumour(lesion_rng, anatomy, tpl, plan, signals)
        label[label == _ET] = _BRATS_ET_LABEL[layout]
    elif layout == "atlas":
        anatomy.finish()
        signals = [{c: params[c].stroke[k] for c in _ALL_CONTRASTS} for k in range(2)]
        label, blends = _strokes(lesion_rng, anatomy, tpl, signals)
    else:
        anatomy.finish()

    images = {}
    for modality in MODALITIES[layout]:
        contrast = _CONTRAST[modality]
        images[modality] = _render(contrast, params[contrast], anatomy, blends, tpl, noise_rngs[contrast])
    return SyntheticSubject(images=images, label=label, affine=np.array(tpl.affine),
                            case_id=_case_id(layout, index), brain_mask=anatomy.brain,
                            tissue={"csf": anatomy.csf, "gm": anatomy.gm, "wm": anatomy.wm})


def _case_files(layout: str, index: int) -> tuple[Path, dict[str, Path], Path | None]:
    """(case folder, modality -> image file, label file), relative to the output folder."""
    cid = _case_id(layout, index)
    if layout == "brats2021":
        folder = Path(cid)
        images = {m: folder / f"{cid}_{m}.nii.gz" for m in MODALITIES[layout]}
        return folder, images, folder / f"{cid}_seg.nii.gz"
    if layout == "brats2023":
        folder = Path(cid)
        images = {m: folder / f"{cid}-{m}.nii.gz" for m in MODALITIES[layout]}
        return folder, images, folder / f"{cid}-seg.nii.gz"
    if layout == "ukb":
        folder = Path(f"{cid}_20252_2_0")
        images = {"t1": folder / "T1" / "T1_brain_to_MNI.nii.gz",
                  "flair": Path(f"{cid}_20253_2_0") / "T2_FLAIR" / "T2_FLAIR_brain_to_MNI.nii.gz"}
        return folder, images, None
    folder = Path("Training") / "R001" / cid
    stem = folder / "ses-1" / "anat" / f"{cid}_ses-1_space-MNI152NLin2009aSym"
    return (folder, {"t1w": Path(f"{stem}_T1w.nii.gz")},
            Path(f"{stem}_label-L_desc-T1lesion_mask.nii.gz"))


def _fold_file(n_subjects: int) -> dict:
    entries = []
    for i in range(n_subjects):
        _, images, label = _case_files("brats2021", i)
        entries.append({"fold": i % _FOLDS, "image": [images[m].as_posix() for m in _FOLD_IMAGE_ORDER],
                        "label": label.as_posix()})
    return {"training": entries}


def _save(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code="mni")
    image.set_qform(affine, code="mni")
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so an interrupted run never leaves a truncated file in place.
    partial = path.with_name(f".partial-{path.name}")
    nib.save(image, partial)
    os.replace(partial, path)


def generate(layout: Layout, out: str | Path, subjects: int = 24, seed: int = 0, spacing: float = 2.0,
             overwrite: bool = False) -> list[Path]:
    """Write ``subjects`` synthetic subjects to ``out`` exactly as the real data set lays them out.

    Args:
        layout: brats2021, brats2023, ukb or atlas (see the module's table).
        out: output folder (created if needed).
        subjects: how many subjects; subject ``i`` is the same whatever the count.
        seed: random seed (>= 0).
        spacing: isotropic voxel size in mm; 2.0 is fast (about a second per subject), 1.0 realistic.
        overwrite: rewrite existing files. Otherwise a case whose files all exist is skipped, and a
            case with only some of them (or a different brats21_folds.json) is an error.

    Returns:
        One folder per subject: ``BraTS2021_00000``, ``BraTS-GLI-00000-000``, ``<eid>_20252_2_0``
        (the T1's; the FLAIR is in ``<eid>_20253_2_0``) or ``Training/R001/sub-r001s001``.

    Also writes ``brats21_folds.json`` (5 folds, round robin, paths relative to ``out``) for
    ``brats2021``.

    >>> generate("ukb", "/tmp/ukb_demo", subjects=2, spacing=4.0)  # doctest: +SKIP
    [PosixPath('/tmp/ukb_demo/1000000_20252_2_0'), PosixPath('/tmp/ukb_demo/1000001_20252_2_0')]
    """
    _check_args(layout, 0, seed, spacing)
    if int(subjects) < 1:
        raise ValueError(f"subjects must be >= 1 (got {subjects})")
    started = time.perf_counter()
    out = Path(out)
    plans, partial = [], []
    for i in range(int(subjects)):
        folder, images, label = _case_files(layout, i)
        files = [*images.values(), *([label] if label is not None else [])]
        present = [(out / f).exists() for f in files]
        if any(present) and not all(present) and not overwrite:
            partial.append(f"{_case_id(layout, i)} (has {sum(present)} of {len(files)} files)")
        plans.append((i, folder, images, label, all(present) and not overwrite))
    if partial:
        raise DataError(f"{out}: incomplete synthetic cases {', '.join(partial[:5])}"
                        f"{' ...' if len(partial) > 5 else ''}; delete them or pass overwrite=True.")
    folds_path, folds = out / "brats21_folds.json", None
    if layout == "brats2021":
        folds = _fold_file(int(subjects))
        if folds_path.exists() and not overwrite and json.loads(folds_path.read_text()) != folds:
            raise DataError(f"{folds_path} exists and lists other cases than these {subjects} subjects; "
                            "delete it or pass overwrite=True.")

    from rich.console import Console
    from rich.progress import track

    console = Console(highlight=False, soft_wrap=True)
    written = skipped = 0
    for i, _, images, label, skip in track(plans, description=f"Synthesising {layout}", transient=True,
                                           console=console, disable=not console.is_terminal):
        if skip:
            skipped += 1
            continue
        subject = synthesize_subject(layout, i, seed=seed, spacing=spacing)
        for modality, path in images.items():
            _save(subject.images[modality], subject.affine, out / path)
        if label is not None:
            _save(subject.label, subject.affine, out / label)
        written += 1
    if folds is not None and (overwrite or not folds_path.exists()):
        folds_path.parent.mkdir(parents=True, exist_ok=True)
        folds_path.write_text(json.dumps(folds, indent=2) + "\n")
    console.print(
        f"[bold]synthetic {layout}[/]: wrote {written}, skipped {skipped} existing "
        f"(seed {seed}, {spacing:g} mm) in {time.perf_counter() - started:.1f} s -> {out}")
    return [out / folder for _, folder, *_ in plans]


def main(argv: list[str] | None = None) -> list[Path] | None:
    """Command line: ``python -m brainsegfounder.data.synthetic --layout brats2021 --out DIR``.

    Options: ``--subjects N`` (24), ``--seed S`` (0), ``--spacing MM`` (2.0), ``--overwrite true``.
    """
    from jsonargparse import CLI

    try:
        return CLI(generate, args=argv, as_positional=False)
    except BrainSegFounderError as error:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(f"[red]error:[/] {error}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
