"""The brain-box sliding window gives the full-volume result: MONAI's sliding window, a real network.

The identity rests on MONAI's window placement, not on the network, so a small MONAI U-Net with
32^3 windows stands in for the Swin UNETR (whose smallest window is 64^3: ten times the time).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference

from brainsegfounder.data.regions import get_scheme
from brainsegfounder.models.brain_box import axis_window_starts, brain_bbox, infer_in_bbox

ROI, OVERLAP = 32, 0.5


@pytest.fixture(scope="module")
def net():
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    unet = UNet(3, in_channels=4, out_channels=3, channels=(8, 16), strides=(2,), num_res_units=1).eval()

    def background_aware(x: torch.Tensor) -> torch.Tensor:
        # What a trained network does on skull-stripped data (background -> label 0), stated
        # explicitly so the label maps can be compared voxel for voxel outside the brain too.
        return unet(x) - 50.0 * (x == 0).all(1, keepdim=True)

    return background_aware


def _case(shape, brain: tuple[slice, slice, slice], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 4, *shape)
    image[(slice(None), slice(None), *brain)] = torch.randn(1, 4, *[s.stop - s.start for s in brain], generator=g)
    return image


def _full(image, net) -> torch.Tensor:
    with torch.inference_mode():
        return torch.sigmoid(sliding_window_inference(image, ROI, 8, net, overlap=OVERLAP, mode="gaussian"))


def _bbox(image, net, **kwargs) -> torch.Tensor:
    def window(x):
        return torch.sigmoid(sliding_window_inference(x, ROI, 8, net, overlap=OVERLAP, mode="gaussian"))

    with torch.inference_mode():
        return infer_in_bbox(image, window, ROI, OVERLAP, **kwargs)


def _labels(probs: torch.Tensor) -> np.ndarray:
    return get_scheme("brats2021").to_label(probs > 0.5)[0, 0].numpy()


def test_window_starts_are_monais():
    from monai.data.utils import dense_patch_slices

    for size in (64, 65, 100, 155, 240):
        slices = dense_patch_slices((size,), (64,), (32,))
        assert axis_window_starts(size, 64, 0.5) == sorted({s[0].start for s in slices})


@pytest.mark.parametrize("where", ["inside", "touching the border"])
def test_brain_box_gives_the_full_volume_label_map(net, where):
    shape = (96, 64, 80)
    brain = (slice(40, 52), slice(26, 38), slice(34, 46)) if where == "inside" else \
        (slice(0, 12), slice(26, 38), slice(64, 80))
    image = _case(shape, brain)
    box = brain_bbox(image[0], ROI, OVERLAP)
    assert box.fraction < 0.5  # fewer windows than the full volume
    full, fast = _full(image, net), _bbox(image, net)
    keep = (slice(None), slice(None), *box.keep)
    torch.testing.assert_close(fast[keep], full[keep], atol=1e-5, rtol=0)
    labels, reference = _labels(fast), _labels(full)
    assert (reference > 0).sum() > 300  # the comparison is about real foreground
    np.testing.assert_array_equal(labels, reference)


def test_not_skull_stripped_runs_the_whole_volume(net):
    image = torch.randn(1, 4, 96, 64, 64) + 5  # air is noise, not zero
    box = brain_bbox(image[0], ROI, OVERLAP)
    assert box.fraction == 1.0
    torch.testing.assert_close(_bbox(image, net), _full(image, net), atol=1e-5, rtol=0)


def test_empty_volume_is_background_everywhere(net):
    probs = _bbox(torch.zeros(1, 4, 64, 64, 64), net)
    assert probs.shape == (1, 3, 64, 64, 64) and probs.max() == 0


def test_z_scored_background_is_found_from_the_first_voxel():
    image = torch.full((4, 64, 64, 64), -0.7)
    image[:, 30:50, 30:50, 30:50] = 1.0
    assert brain_bbox(image, ROI, OVERLAP, margin=0, background=None).keep == (slice(30, 50),) * 3


def test_unaligned_box_is_at_least_one_window_and_inside_the_volume():
    image = torch.zeros(4, 100, 100, 100)
    image[:, 90:100, 0:5, 40:60] = 1
    box = brain_bbox(image, ROI, OVERLAP, margin=0, align=False)
    assert [(s.start, s.stop) for s in box.crop] == [(68, 100), (0, 32), (34, 66)]
