"""Batch rotations and cuboid masks: exact inverses, bounded masked fractions, the right fillings."""

import pytest
import torch

from brainsegfounder.models.ssl_augment import (
    boxes_to_masks,
    cuboid_boxes,
    mask_cuboids,
    random_rotations,
    rotate_batch,
    ssl_views,
)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotating_back_restores_the_input_for_each_label(k):
    x = torch.randn(3, 2, 8, 8, 5)
    labels = torch.full((3,), k)
    rotated = rotate_batch(x, labels)
    assert torch.equal(rotated[1], torch.rot90(x[1], k, dims=(1, 2)))
    assert torch.equal(rotate_batch(rotated, (4 - labels) % 4), x)


def test_each_sample_gets_its_own_rotation():
    x = torch.randn(4, 1, 6, 6, 3)
    labels = torch.tensor([0, 1, 2, 3])
    out = rotate_batch(x, labels)
    for i in range(4):
        assert torch.equal(out[i], torch.rot90(x[i], i, dims=(1, 2)))
    labels = random_rotations(torch.zeros(1000, 1, 2, 2, 2), torch.Generator().manual_seed(0))
    assert set(labels.tolist()) == {0, 1, 2, 3}


def test_rotation_needs_square_planes():
    with pytest.raises(ValueError, match="equal sides"):
        rotate_batch(torch.zeros(1, 1, 4, 6, 4), torch.tensor([1]))


def test_masks_are_the_union_of_their_cuboids():
    low = torch.tensor([[[0, 0, 0], [2, 2, 2]]])
    high = torch.tensor([[[2, 3, 1], [4, 4, 4]]])
    union = boxes_to_masks(low, high, (5, 5, 5))[0, 0]
    expected = torch.zeros(5, 5, 5, dtype=torch.bool)
    expected[0:2, 0:3, 0:1] = True
    expected[2:4, 2:4, 2:4] = True
    assert torch.equal(union, expected)
    only_first = boxes_to_masks(low, high, (5, 5, 5), keep=torch.tensor([[True, False]]))[0, 0]
    assert int(only_first.sum()) == 6


def test_masked_fraction_stays_within_its_bounds():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 64, 64, 64)
    fractions = []
    for _ in range(5):
        masked, mask = mask_cuboids(x, max_fraction=0.3, min_side=0.1, max_side=0.3, generator=g)
        frac = mask.float().mean(dim=(1, 2, 3, 4))
        fractions += frac.tolist()
        # Unmasked voxels are untouched; every masked voxel changed.
        assert torch.equal(masked[~mask.expand_as(x)], x[~mask.expand_as(x)])
    low_bound = (0.1 * 64 - 0.5) ** 3 / 64**3  # one cuboid of the smallest side (rounded)
    assert min(fractions) >= low_bound and max(fractions) <= 0.3
    assert max(fractions) > 0.15  # the cap is approached, not just respected
    low, high = cuboid_boxes(100, (64, 64, 64), 4, 0.1, 0.3, torch.Generator().manual_seed(1))
    assert (low >= 0).all() and (high <= 64).all() and ((high - low) >= 6).all()


def test_noise_cuboids_come_first_and_the_rest_hold_another_samples_content():
    g = torch.Generator().manual_seed(3)
    # Constant samples: a voxel's value says where its content came from.
    x = torch.stack([torch.full((1, 32, 32, 32), float(v)) for v in (10, 20, 30, 40)])
    x[:, :, 0, 0, 0] += 1000  # a wide noise scale, so noise never lands on a sample's value
    masked, mask = mask_cuboids(x, max_fraction=0.3, n_cuboids=8, max_side=0.3, noise_share=0.5, generator=g)
    for i in range(4):
        hidden = masked[i][mask[i].expand_as(masked[i])]
        donors = {float(v) for v in hidden.unique()} & {10.0, 20.0, 30.0, 40.0}
        assert donors and float(x[i, 0, 5, 5, 5]) not in donors  # another sample, never itself
        assert (~torch.isin(hidden, torch.tensor([10.0, 20.0, 30.0, 40.0]))).any()  # noise too


def test_mask_cap_must_fit_one_cuboid():
    with pytest.raises(ValueError, match="max_side"):
        mask_cuboids(torch.zeros(2, 1, 32, 32, 32), max_fraction=0.01, max_side=0.3)


def test_views_are_two_rotated_masked_copies():
    x = torch.randn(2, 2, 32, 32, 32)
    views = ssl_views(x, torch.Generator().manual_seed(0))
    assert views["masked"].shape == (4, 2, 32, 32, 32) and views["labels"].shape == (4,)
    back = rotate_batch(views["rotated"], (4 - views["labels"]) % 4)
    assert torch.equal(back, torch.cat([x, x]))
    unmasked = ~views["mask"].expand_as(views["masked"])
    assert torch.equal(views["masked"][unmasked], views["rotated"][unmasked])


def test_rotating_a_repeated_batch_equals_rotating_its_copy():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 2, 8, 8, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 3, 1])
    assert torch.equal(rotate_batch(x, labels, repeats=2), rotate_batch(torch.cat([x, x]), labels))
    with pytest.raises(ValueError, match="rotation labels"):
        rotate_batch(x, labels)


def test_donors_stay_inside_their_group():
    g = torch.Generator().manual_seed(7)
    # Group 1 holds values 10, 20; group 2 holds 30, 40: a donor from the other group would show.
    x = torch.stack([torch.full((1, 32, 32, 32), float(v)) for v in (10, 20, 30, 40)])
    x[:, :, 0, 0, 0] += 1000
    for _ in range(5):
        masked, mask = mask_cuboids(x, n_cuboids=8, generator=g, groups=2)
        for i, (own, other_group) in enumerate([(10, {30, 40}), (20, {30, 40}), (30, {10, 20}), (40, {10, 20})]):
            hidden = set(masked[i][mask[i].expand_as(masked[i])].tolist())
            assert not hidden & {float(v) for v in other_group}
            assert float(own) not in hidden
    with pytest.raises(ValueError, match="equal groups"):
        mask_cuboids(torch.zeros(3, 1, 32, 32, 32), groups=2)
