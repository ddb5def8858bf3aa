"""Segmentation losses: every region channel is a binary problem, whatever the channel count."""

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from brainsegfounder.tasks.losses import DiceBCELoss, make_loss


def test_dicebce_is_dice_plus_per_channel_binary_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 5, 4, generator=g)
    # Nested regions, as BraTS' ET inside TC inside WT.
    wt = (torch.rand(2, 1, 6, 5, 4, generator=g) > 0.5).float()
    tc = wt * (torch.rand(2, 1, 6, 5, 4, generator=g) > 0.5).float()
    target = torch.cat([tc, wt, tc * (torch.rand(2, 1, 6, 5, 4, generator=g) > 0.5).float()], dim=1)
    p = torch.sigmoid(logits)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    dice = 1 - ((2 * (p * target).sum((2, 3, 4)) + 1e-5) / (p.sum((2, 3, 4)) + target.sum((2, 3, 4)) + 1e-5)).mean()
    got = make_loss("dicebce")(logits, target)
    assert got.item() == pytest.approx((dice + bce).item(), rel=1e-5)
    assert got.item() == pytest.approx((DiceLoss(sigmoid=True)(logits, target)
                                        + F.binary_cross_entropy_with_logits(logits, target)).item(), rel=1e-6)


def test_background_voxels_are_penalised_in_every_channel():
    # MONAI's DiceCELoss uses softmax cross-entropy for several channels, which gives a voxel
    # outside every region no loss; a binary term must push its logits down.
    target = torch.zeros(1, 3, 4, 4, 4)
    target[:, :, :2] = 1
    logits = torch.zeros(1, 3, 4, 4, 4, requires_grad=True)
    DiceBCELoss(dice_weight=0.0)(logits, target).backward()
    assert (logits.grad[:, :, 2:] > 0).all() and (logits.grad[:, :, :2] < 0).all()


def test_unknown_loss_and_mismatched_channels_are_refused():
    with pytest.raises(ValueError, match="unknown loss 'ce'"):
        make_loss("ce")
    with pytest.raises(ValueError, match="one channel per region"):
        DiceBCELoss()(torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2))
