"""Uncertainty maps and the quality score on hand-made probabilities with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brainsegfounder.inference.calibration import choose_flag_threshold
from brainsegfounder.inference.uncertainty import (
    binary_entropy,
    combined_entropy,
    expected_dice,
    member_variance,
    quality_score,
    uncertainty_maps,
)


def test_binary_entropy_known_values_and_range():
    p = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    h = binary_entropy(p)
    expected = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))   # 0.8113 bits
    assert h[0] < 1e-5 and h[4] < 1e-5 and abs(float(h[2]) - 1.0) < 1e-6
    assert abs(float(h[1]) - expected) < 1e-5 and abs(float(h[3]) - expected) < 1e-5
    grid = binary_entropy(np.linspace(0, 1, 101))
    assert float(grid.min()) >= 0 and float(grid.max()) <= 1 + 1e-6


def test_combined_entropy_is_the_least_sure_region():
    probs = torch.zeros(3, 2, 2, 2)
    probs[1] = 1.0                       # WT certain everywhere
    probs[2, 0, 0, 0] = 0.5              # ET unsure in one voxel
    combined = combined_entropy(probs)
    assert combined.shape == (2, 2, 2)
    assert abs(float(combined[0, 0, 0]) - 1.0) < 1e-6
    assert float(combined.flatten()[1:].max()) < 1e-5


def test_members_entropy_of_the_mean_and_variance():
    # Two members sure but opposite: the mean is 0.5 (entropy 1), variance 0.25 (the maximum).
    a = torch.zeros(1, 1, 2, 2, 2)
    a[0, 0, 0] = 1.0
    members = torch.cat([a, 1 - a])                          # (M=2, R=1, 2, 2, 2)
    maps = uncertainty_maps(members)
    assert maps.mean.shape == (1, 2, 2, 2) and maps.combined.shape == (2, 2, 2)
    assert torch.allclose(maps.mean, torch.full_like(maps.mean, 0.5))
    assert torch.allclose(maps.entropy, torch.ones_like(maps.entropy), atol=1e-5)
    assert torch.allclose(maps.variance, torch.full_like(maps.variance, 0.25))
    # Agreeing members: no variance, entropy of their common probability.
    same = uncertainty_maps(torch.full((3, 2, 2, 2, 2), 0.9))
    assert float(same.variance.abs().max()) < 1e-7
    assert abs(float(same.entropy.mean()) - float(binary_entropy(torch.tensor(0.9)))) < 1e-5


def test_one_member_has_no_variance():
    maps = uncertainty_maps(torch.rand(1, 3, 4, 4, 4))
    assert maps.variance is None
    with pytest.raises(ValueError, match="two members"):
        member_variance(torch.rand(1, 3, 4, 4, 4))


def _ball(shape=(24, 24, 24), radius=6.0) -> np.ndarray:
    grid = np.indices(shape) - (np.array(shape)[:, None, None, None] - 1) / 2
    return np.sqrt((grid ** 2).sum(0)) <= radius


def test_quality_score_orders_sure_blurred_and_empty_cases():
    ball = _ball()
    sure = ball[None].astype(np.float32)
    # The same lesion predicted with a soft edge: probabilities fall from 0.9 to 0.1 over the border.
    distance_out = np.sqrt((((np.indices(ball.shape) - 11.5)) ** 2).sum(0)) - 6.0
    soft = (1 / (1 + np.exp(distance_out / 1.5)))[None].astype(np.float32)
    blurred = (0.5 + 0.1 * (sure - 0.5))                       # everything near 0.5: very unsure
    scores = [quality_score(x) for x in (sure, soft, blurred)]
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < scores[1] < scores[2] <= 1.0
    assert quality_score(np.zeros((3, 8, 8, 8))) == 0.0        # confidently empty


def test_expected_dice_is_the_dice_of_labels_drawn_from_the_probabilities():
    # Where the truth is drawn voxel by voxel from p, the mean Dice of "p > 0.5" against it is
    # what expected_dice predicts (to a few voxels' worth, the +1 smoothing).
    rng = np.random.default_rng(0)
    p = np.clip(rng.normal(0.5, 0.3, (1, 30, 30, 30)), 0, 1).astype(np.float32)
    p[0, :, :, :10] = 0.0                                       # and some certain background
    predicted = p[0] > 0.5
    drawn = [2 * (predicted & t).sum() / (predicted.sum() + t.sum())
             for t in (rng.random(p[0].shape) < p[0] for _ in range(20))]
    assert expected_dice(p, hesitant=0.0)[0] == pytest.approx(np.mean(drawn), abs=0.01)
    # A haze below ``hesitant`` is not a missed lesion.
    haze = np.full((1, 20, 20, 20), 0.05, np.float32)
    haze[0, 5:10, 5:10, 5:10] = 0.99
    assert expected_dice(haze)[0] > 0.99 > expected_dice(haze, hesitant=0.0)[0]


def test_reliability_scales_the_quality_score_of_a_case_missing_a_modality():
    sure = _ball()[None].repeat(3, 0).astype(np.float32)       # three regions, all certain
    assert quality_score(sure) == pytest.approx(0.0, abs=1e-6)
    # Without T1ce the model keeps all its WT Dice but none of its ET: the case should be looked at.
    assert quality_score(sure, reliability=[0.8, 1.0, 0.0]) == pytest.approx(0.4, abs=1e-6)
    with pytest.raises(ValueError, match="3 regions"):
        quality_score(sure, reliability=[1.0])


def test_flag_threshold_separates_poor_cases():
    scores = [0.02, 0.05, 0.07, 0.3, 0.35]
    dice = [0.92, 0.88, 0.9, 0.4, 0.2]
    threshold = choose_flag_threshold(scores, dice, dice_floor=0.7)
    assert 0.07 < threshold < 0.3
    assert choose_flag_threshold([0.1, 0.2], [0.9, 0.95]) == 0.2   # no poor case: flag nothing seen
