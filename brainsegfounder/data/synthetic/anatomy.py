"""Synthetic anatomy: the MNI152 template on the target grid, smooth random fields, a deformed brain.

Subject ``i``'s anatomy depends only on its anatomy random stream, so the same ``(seed, i)`` is
the same person in every layout.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Template:
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
def load_template(spacing: float) -> Template:
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
    return Template(*arrays, affine=affine, spacing=spacing, centre_mm=centre, extent_mm=extent)


# --------------------------------------------------------------------------------------------
# Smooth random fields: cubic B-splines on a coarse lattice, interpolated separably, so a field is
# defined in mm (the same field at any spacing) and costs a few small matrix products.


def spline_weights(n_nodes: int, positions: np.ndarray) -> np.ndarray:
    """(len(positions), n_nodes) matrix of cubic-spline interpolation weights."""
    # Spline interpolation is linear in the data: interpolating each unit vector gives its weight.
    eye = np.eye(n_nodes)
    return np.stack([ndimage.map_coordinates(eye[j], positions[None], order=3, mode="nearest")
                     for j in range(n_nodes)], axis=1).astype(np.float32)


def _spline_field(rng: np.random.Generator, axes_mm: Sequence[np.ndarray], start_mm: Sequence[float],
                  n_nodes: Sequence[int], control_mm: float, std: float = 1.0) -> np.ndarray:
    coarse = (rng.standard_normal(tuple(n_nodes)) * std).astype(np.float32)
    wx, wy, wz = (spline_weights(n, (np.asarray(a) - s) / control_mm)
                  for a, s, n in zip(axes_mm, start_mm, n_nodes, strict=True))
    field = np.tensordot(wx, coarse, axes=(1, 0))  # X, b, c
    field = np.tensordot(field, wy, axes=(1, 1))  # X, c, Y
    return np.ascontiguousarray(np.tensordot(field, wz, axes=(1, 1)))  # X, Y, Z


def volume_field(rng: np.random.Generator, tpl: Template, control_mm: float, std: float = 1.0):
    """A smooth field over the whole grid, its lattice anchored to the 1 mm template's corner."""
    n_nodes = [int(math.ceil(e / control_mm)) + 3 for e in tpl.extent_mm]
    start = tpl.origin - control_mm
    return _spline_field(rng, tpl.axes_mm(), start, n_nodes, control_mm, std)


def local_field(rng: np.random.Generator, axes_mm: Sequence[np.ndarray], centre_mm: np.ndarray,
                 half_mm: float, control_mm: float) -> np.ndarray:
    """A smooth field of unit spread around ``centre_mm``, clipped to +-2 to bound shapes."""
    n = int(math.ceil(2 * half_mm / control_mm)) + 3
    field = _spline_field(rng, axes_mm, centre_mm - half_mm - control_mm, [n] * 3, control_mm)
    return np.clip(field / max(float(field.std()), 1e-6), -2.0, 2.0)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
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



@dataclass
class Anatomy:
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


def deformed_anatomy(rng: np.random.Generator, tpl: Template) -> Anatomy:
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
    u = [volume_field(rng, tpl, control_mm=36.0, std=displacement_mm) for _ in range(3)]
    vessel_fields = [volume_field(rng, tpl, control_mm=9.0) for _ in range(2)]

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
    return Anatomy(gm=warp(tpl.gm), wm=warp(tpl.wm), brain_soft=warp(tpl.brain), vessels=vessels)

