"""Temperature scaling recovers a known over-confidence; ECE and Brier on hand-made probability maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainsegfounder.inference.calibration import (
    apply_temperature,
    binary_nll,
    brier_score,
    calibration_per_region,
    expected_calibration_error,
    fit_temperature,
)


@pytest.fixture
def calibrated():
    """Logits ``z`` of a calibrated 3-region model and targets drawn from ``sigmoid(z)``."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 32, 32, 32, generator=generator) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1, 1)
    y = torch.bernoulli(torch.sigmoid(z), generator=generator)
    return z, y


def test_fitted_temperature_undoes_a_known_over_confidence(calibrated):
    z, y = calibrated
    over = 5 * z                                              # deliberately over-confident
    t = fit_temperature(over, y, max_voxels=100_000)
    assert t.shape == (3,)
    assert torch.allclose(t, torch.full((3,), 5.0), rtol=0.05)
    before, after = binary_nll(over, y), binary_nll(over, y, t)
    assert bool((after < before).all())
    # Back at the calibrated model's own NLL (within 0.5%), not merely lower.
    assert torch.allclose(after, binary_nll(z, y), rtol=5e-3)
    # ECE on the same voxels drops too (the ECE-before/after comparison of docs/anymodal.md, in miniature).
    for r in range(3):
        ece_before = expected_calibration_error(torch.sigmoid(over[:, r]).numpy(), y[:, r].numpy())
        ece_after = expected_calibration_error(torch.sigmoid(apply_temperature(over, t)[:, r]).numpy(),
                                               y[:, r].numpy())
        assert ece_after < ece_before / 3


def test_under_confident_model_gets_a_temperature_below_one(calibrated):
    z, y = calibrated
    t = fit_temperature(z / 2, y)
    assert torch.allclose(t, torch.full((3,), 0.5), rtol=0.05)


def test_volumes_of_different_sizes_and_thresholded_labels_unchanged(calibrated):
    z, y = calibrated
    volumes = [5 * z[0], 5 * z[1, :, :20]]                     # (R, X, Y, Z) of two sizes
    targets = [y[0], y[1, :, :20]]
    t = fit_temperature(volumes, targets, channel_dim=0)
    assert torch.allclose(t, torch.full((3,), 5.0), rtol=0.06)
    scaled = apply_temperature(volumes[0], t, channel_dim=0)
    assert torch.equal(scaled > 0, volumes[0] > 0)             # same label map at p = 0.5


def test_ece_and_brier_on_hand_made_maps():
    # Region A: says 0.8 on 100 voxels of which 80 are in the region, 0.1 on 100 of which 10 are:
    # perfectly calibrated. Region B: says 0.95 everywhere on 100 voxels of which half are in.
    shape = (200,)
    p_a = np.r_[np.full(100, 0.8), np.full(100, 0.1)]
    y_a = np.r_[np.ones(80), np.zeros(20), np.ones(10), np.zeros(90)]
    assert expected_calibration_error(p_a, y_a) == pytest.approx(0.0, abs=1e-12)
    assert brier_score(p_a, y_a) == pytest.approx((80 * 0.04 + 20 * 0.64 + 10 * 0.81 + 90 * 0.01) / 200)
    p_b, y_b = np.full(100, 0.95), np.r_[np.ones(50), np.zeros(50)]
    assert expected_calibration_error(p_b, y_b) == pytest.approx(0.45)
    assert brier_score(p_b, y_b) == pytest.approx((50 * 0.0025 + 50 * 0.9025) / 100)
    # Bins are equal width: 0.05 and 0.06 share the first of 10 bins, so their errors cancel.
    assert expected_calibration_error([0.05, 0.06], [0, 1], n_bins=10) == pytest.approx(abs(0.11 - 1) / 2)
    assert expected_calibration_error([0.05, 0.15], [0, 1], n_bins=10) == pytest.approx((0.05 + 0.85) / 2)
    assert expected_calibration_error([1.0], [1]) == 0.0      # 1.0 falls in the last, closed bin
    assert shape == p_a.shape


def test_per_region_scores_on_a_3d_map_with_a_brain_mask():
    probabilities = np.zeros((2, 4, 4, 4))
    targets = np.zeros((2, 4, 4, 4), bool)
    probabilities[0, :2] = 0.9                                 # region 0: sure and right on 32 voxels
    targets[0, :2] = True
    probabilities[1, :2] = 0.9                                 # region 1: sure and wrong on 32 voxels
    brain = np.zeros((4, 4, 4), bool)
    brain[:2] = True
    scores = calibration_per_region(probabilities, targets, ["TC", "WT"], mask=brain)
    assert scores["ece_TC"] == pytest.approx(0.1) and scores["brier_TC"] == pytest.approx(0.01)
    assert scores["ece_WT"] == pytest.approx(0.9) and scores["brier_WT"] == pytest.approx(0.81)
    # Without the mask, 32 more sure-and-right background voxels halve both errors of WT.
    whole = calibration_per_region(probabilities, targets, ["TC", "WT"])
    assert whole["ece_WT"] == pytest.approx(0.45) and whole["brier_WT"] == pytest.approx(0.405)
