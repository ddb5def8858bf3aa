"""Small geometry helpers shared by the raw-study generator and the clinical preparation (SimpleITK).

Example:
    >>> import SimpleITK as sitk
    >>> matrix_of(sitk.TranslationTransform(3, (1.0, 2.0, 3.0)))[:3, 3].tolist()
    [1.0, 2.0, 3.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["matrix_of", "physical_points", "corners", "grid_covering", "geometry_of", "image_of_geometry"]


def matrix_of(transform) -> np.ndarray:
    """The 4 x 4 matrix of a SimpleITK rigid, affine or translation transform (points in, points out)."""
    if transform.GetName() == "TranslationTransform":
        out = np.eye(4)
        out[:3, 3] = transform.GetParameters()
        return out
    rotation = np.array(transform.GetMatrix()).reshape(3, 3)
    centre, translation = np.array(transform.GetCenter()), np.array(transform.GetTranslation())
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = translation + centre - rotation @ centre
    return out


def physical_points(image, mask: np.ndarray | None = None) -> np.ndarray:
    """Physical coordinates (N x 3, mm) of the voxels of ``image`` where ``mask`` (a SimpleITK-ordered
    z, y, x array) is true, or of all voxels."""
    size = image.GetSize()
    index = np.argwhere(mask)[:, ::-1] if mask is not None else np.indices(size).reshape(3, -1).T
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return (index * np.array(image.GetSpacing())) @ direction.T + np.array(image.GetOrigin())


def corners(image) -> np.ndarray:
    """The physical coordinates (8 x 3, mm) of the corner voxels' centres of a SimpleITK image."""
    size = np.array(image.GetSize()) - 1
    index = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]) * size
    return np.array([image.TransformContinuousIndexToPhysicalPoint(i.astype(float).tolist()) for i in index])


def grid_covering(points: np.ndarray, direction: np.ndarray, spacing, margin_mm: float = 0.0):
    """An empty SimpleITK grid (uint8) with axes ``direction`` (3 x 3, columns) and ``spacing`` that
    covers ``points`` (N x 3, mm) plus ``margin_mm`` on every side.

    >>> grid = grid_covering(np.array([[0.0, 0, 0], [10, 20, 30]]), np.eye(3), (1.0, 2.0, 3.0))
    >>> grid.GetSize(), grid.GetOrigin()
    ((11, 11, 11), (0.0, 0.0, 0.0))
    """
    import SimpleITK as sitk

    direction = np.asarray(direction, float)
    along = np.asarray(points, float) @ direction  # coordinates along each of the grid's axes
    low, high = along.min(0) - margin_mm, along.max(0) + margin_mm
    size = [int(np.ceil((h - lo) / s - 1e-6)) + 1 for lo, h, s in zip(low, high, spacing, strict=True)]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetDirection(direction.ravel().tolist())
    grid.SetOrigin((direction @ low).tolist())
    return grid


def geometry_of(image) -> dict:
    """A SimpleITK image's grid as plain JSON: size, spacing, origin, direction (LPS, mm)."""
    return {"size": list(image.GetSize()), "spacing": [round(v, 6) for v in image.GetSpacing()],
            "origin": [round(v, 6) for v in image.GetOrigin()], "direction": [round(v, 8) for v in image.GetDirection()]}


def image_of_geometry(geometry: dict, pixel=None):
    """An empty SimpleITK image on the grid :func:`geometry_of` described."""
    import SimpleITK as sitk

    image = sitk.Image([int(v) for v in geometry["size"]], sitk.sitkUInt8 if pixel is None else pixel)
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(geometry["direction"])
    return image
