"""Resampling, reorientation and cropping keep image and label where they are in the world (mm)."""

import nibabel as nib
import numpy as np
import pytest
import torch
import torchio as tio
from scipy.spatial.transform import Rotation

from brainsegfounder.data.transforms import preprocessing

LESION_MM = np.array([12.0, -18.0, 20.0])  # a lesion centred here, in scanner (world) mm
LESION_RADIUS_MM = 9.0


def _world(affine: np.ndarray, shape) -> np.ndarray:
    """World coordinates (mm) of every voxel centre, shape (*shape, 3)."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _scan(tmp_path, axes_code: str, spacing, tilt_degrees: float, shape=None):
    """A head-like ellipsoid with a hypointense lesion, written as NIfTI in any orientation and spacing.

    ``axes_code`` is the nibabel orientation of the voxel axes (``"LPS"``, ``"PIR"``, ...);
    ``tilt_degrees`` rotates the grid (an oblique acquisition).
    """
    # A 140 mm field of view by default: the whole head whatever the tilt.
    shape = shape or tuple(int(round(140 / s)) for s in spacing)
    ornt = nib.orientations.axcodes2ornt(tuple(axes_code))
    direction = np.zeros((3, 3))
    for voxel_axis, (world_axis, flip) in enumerate(ornt):
        # axcodes2ornt gives directions relative to RAS: flip -1 means towards L, P or I.
        direction[int(world_axis), voxel_axis] = flip
    direction = Rotation.from_euler("xyz", [tilt_degrees, -tilt_degrees / 2, tilt_degrees / 3],
                                    degrees=True).as_matrix() @ direction
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(spacing, float)
    centre_vox = (np.asarray(shape) - 1) / 2
    affine[:3, 3] = -affine[:3, :3] @ centre_vox  # the grid's centre at world (0, 0, 0)
    world = _world(affine, shape)
    head = ((world / np.array([55.0, 65.0, 50.0])) ** 2).sum(-1) < 1
    lesion = head & (np.linalg.norm(world - LESION_MM, axis=-1) < LESION_RADIUS_MM)
    image = np.where(head, 100.0, 0.0) + np.where(lesion, -70.0, 0.0)
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), tmp_path / f"{axes_code}_t1.nii.gz")
    nib.save(nib.Nifti1Image(lesion.astype(np.uint8), affine), tmp_path / f"{axes_code}_label.nii.gz")
    expected = world[lesion].mean(0)
    return tio.Subject(t1=tio.ScalarImage(tmp_path / f"{axes_code}_t1.nii.gz"),
                       label=tio.LabelMap(tmp_path / f"{axes_code}_label.nii.gz")), expected, world[head]


def _centroid_mm(image: tio.Image, mask: torch.Tensor) -> np.ndarray:
    return _world(image.affine, image.spatial_shape)[mask.numpy()].mean(0)


@pytest.mark.parametrize("axes_code,spacing,tilt", [("LPS", (1.2, 0.9, 3.0), 0.0), ("PIR", (0.8, 2.5, 1.1), 12.0),
                                                    ("RAS", (1.0, 1.0, 1.0), 25.0)])
def test_resample_and_crop_keep_the_lesion_where_it_is(tmp_path, axes_code, spacing, tilt):
    subject, expected_mm, head_mm = _scan(tmp_path, axes_code, spacing, tilt)
    out = tio.Compose(preprocessing(patch_size=(64, 64, 64), spacing=1.0, crop_to_brain=True))(subject)

    assert nib.aff2axcodes(out.t1.affine) == ("R", "A", "S")
    assert np.allclose(out.t1.spacing, 1.0) and np.allclose(out.t1.affine, out.label.affine)
    assert out.t1.spatial_shape == out.label.spatial_shape and min(out.t1.spatial_shape) >= 64
    label = out.label.data[0] > 0
    # The label's centre of mass in world mm stays put (within a voxel's fraction)...
    assert np.linalg.norm(_centroid_mm(out.label, label) - expected_mm) < 0.75
    # ...a voxel at the lesion's known world position is still lesion...
    centre_vox = np.round(np.linalg.inv(out.label.affine) @ np.append(LESION_MM, 1))[:3].astype(int)
    assert label[tuple(centre_vox)]
    # ...the image's hypointense spot is under the label (image and label moved together)...
    t1 = out.t1.data[0]
    head = (t1 > t1.min() + 0.5) & ~label  # after z-scoring, the background is the minimum, not 0
    assert t1[label].mean() < t1[head].mean() - 1.0  # the lesion is far darker than the rest of the head
    # ...and the crop kept the whole head: its world extent is inside the cropped grid.
    corners = _world(out.t1.affine, out.t1.spatial_shape).reshape(-1, 3)
    assert (corners.min(0) <= head_mm.min(0) + 1.0).all() and (corners.max(0) >= head_mm.max(0) - 1.0).all()


def test_two_orientations_of_one_scan_give_the_same_world_lesion(tmp_path):
    a, expected_a, _ = _scan(tmp_path, "LPS", (1.5, 1.5, 1.5), 0.0, shape=(64, 72, 64))
    b, expected_b, _ = _scan(tmp_path, "SRP", (1.5, 1.5, 1.5), 0.0, shape=(64, 64, 72))
    assert np.allclose(expected_a, expected_b, atol=0.5)
    steps = tio.Compose(preprocessing(patch_size=(64, 64, 64), spacing=2.0, crop_to_brain=True))
    centres = [_centroid_mm(s.label, s.label.data[0] > 0) for s in (steps(a), steps(b))]
    assert np.linalg.norm(centres[0] - centres[1]) < 1.0
    assert np.linalg.norm(centres[0] - LESION_MM) < 1.0
