"""Self-supervised heads on the shared Swin encoder, and the three losses of BrainSegFounder.

:class:`SSLHeads` wraps MONAI's ``SwinTransformer`` (exactly ``SwinUNETR.swinViT``, built from
the same preset, so its weights move to and from the segmentation network unchanged) and adds:

- ``rotation_head``: linear -> 4 logits (quarter turns), of bottleneck token 0 (the paper,
  ``rotation_pooling="token"``) or of the mean of all bottleneck tokens (``"mean"``);
- ``contrastive_head``: linear -> 512-d projection, of bottleneck token 1 (the paper) or of the
  mean of all bottleneck tokens (``contrastive_pooling="mean"``, the default here), optionally
  standardised over the batch (``contrastive_norm``, the default here; see below);
- ``conv``: the inpainting decoder, five x2 upsampling steps from the bottleneck back to the input
  size and channels.

Parameter names (``swinViT.*``, ``rotation_head.*``, ``contrastive_head.*``, ``conv.*``) follow the
released checkpoints, so Stage-1 files of either origin load into Stage 2.

Why the defaults depart from the paper for the contrastive head: at small batch (2 crops, 4 views)
on similar-looking brains, the paper's head (token 1, linear) falls into a stable collapse within a
few steps: every projection points the same way, NT-Xent sits at its chance value log(2B - 1), and
the gradient of a cosine similarity between equal vectors is zero, so it never leaves. Two causes,
measured in ``docs/pretraining.md``: the projections of different crops start 76% alike (cosine
0.76: layer-normed bottleneck tokens of brain crops share a large common part), and the two views
of a crop are rotated differently, so token 1 looks at different anatomy in them. Mean-pooling the
bottleneck makes the positives see the same content; standardising each projection dimension over
the ``2B`` views (a ``BatchNorm1d`` without parameters or running statistics, as SimCLR and MoCo v3
put in their heads) removes the common part, so the views cannot all point one way.
``contrastive_pooling="token", contrastive_norm=False`` is the paper's head exactly.

Losses (:class:`SSLLoss`): cross-entropy (rotation), NT-Xent (MONAI ``ContrastiveLoss``: cosine
similarity, temperature 0.5, the other ``2B - 2`` views of the batch as negatives, which is SimCLR's
definition) and L1 (reconstruction of the rotated, un-masked input); total = weighted sum.

Example:
    >>> import torch
    >>> from brainsegfounder.models.ssl_heads import SSLHeads
    >>> heads = SSLHeads(preset="tiny", in_channels=2, feature_size=12)
    >>> out = heads(torch.randn(2, 2, 64, 64, 64))
    >>> out["rotation"].shape, out["contrastive"].shape, out["reconstruction"].shape
    (torch.Size([2, 4]), torch.Size([2, 512]), torch.Size([2, 2, 64, 64, 64]))
"""

from __future__ import annotations

import torch
from monai.losses import ContrastiveLoss
from torch import nn

from brainsegfounder.models.presets import build_swin_unetr
from brainsegfounder.models.window_attention import WINDOWS_PER_CHUNK

__all__ = ["SSLHeads", "SSLLoss", "contrastive_accuracy", "inpainting_decoder"]


def inpainting_decoder(in_features: int, out_channels: int, steps: int = 5) -> nn.Sequential:
    """Bottleneck ``(B, in_features, s, s, s)`` -> image ``(B, out_channels, 32s, 32s, 32s)``.

    Each of the ``steps`` blocks is a 3x3x3 convolution, instance norm, leaky ReLU and a x2
    trilinear upsampling; channels halve at each step; a 1x1x1 convolution gives the image.
    """
    layers: list[nn.Module] = []
    channels = in_features
    for _ in range(steps):
        out = max(channels // 2, out_channels)
        layers += [nn.Conv3d(channels, out, 3, padding=1), nn.InstanceNorm3d(out), nn.LeakyReLU(inplace=True),
                   nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)]
        channels = out
    layers.append(nn.Conv3d(channels, out_channels, 1))
    return nn.Sequential(*layers)


class SSLHeads(nn.Module):
    """Swin encoder + rotation, contrastive and inpainting heads (the Stage 1 / Stage 2 network).

    Args:
        preset: backbone size (``tiny``, ``small``, ``base``), as for segmentation.
        in_channels: input modalities (UK Biobank 2, BraTS 4, ATLAS 1).
        feature_size: override the preset's 48 (12 for CPU-sized runs).
        projection_dim: contrastive projection size (512 in the paper).
        contrastive_pooling: ``"mean"`` (all bottleneck tokens averaged) or ``"token"`` (token 1,
            the paper's choice).
        contrastive_norm: standardise each projection dimension over the batch's views (no
            learnt parameters, no running statistics; the paper: off).
        rotation_pooling: the rotation head's input: ``"token"`` (bottleneck token 0, the paper's
            choice) or ``"mean"`` (all bottleneck tokens averaged).
        gradient_checkpointing: recompute Swin blocks in backward.
        dropout_path_rate: stochastic depth of the Swin blocks.
        attention_chunk: windows of attention scores alive at once while training (see
            :func:`~brainsegfounder.models.presets.build_swin_unetr`).
    """

    def __init__(self, preset: str = "small", in_channels: int = 2, feature_size: int | None = None,
                 projection_dim: int = 512, gradient_checkpointing: bool = False, dropout_path_rate: float = 0.0,
                 contrastive_pooling: str = "mean", contrastive_norm: bool = True,
                 attention_chunk: int | None = WINDOWS_PER_CHUNK, rotation_pooling: str = "token"):
        super().__init__()
        for name, value, paper in (("contrastive_pooling", contrastive_pooling, "token 1"),
                                   ("rotation_pooling", rotation_pooling, "token 0")):
            if value not in ("mean", "token"):
                raise ValueError(f"{name} must be 'mean' or 'token' (the paper's {paper}), got {value!r}")
        self.contrastive_pooling = contrastive_pooling
        self.rotation_pooling = rotation_pooling
        # Built through the segmentation preset and detached, so the encoder is by construction the
        # one a SwinUNETR of the same preset holds (same names, same shapes).
        self.swinViT = build_swin_unetr(preset, in_channels, 1, feature_size, gradient_checkpointing,
                                        dropout_path_rate, attention_chunk).swinViT
        # The last stage's patch merging doubles the features once more: 16 x feature_size.
        bottleneck = 2 * self.swinViT.num_features
        self.rotation_head = nn.Linear(bottleneck, 4)
        self.contrastive_head = nn.Linear(bottleneck, projection_dim)
        # No parameters and no buffers: checkpoints keep the released key names and shapes.
        self.contrastive_norm = (nn.BatchNorm1d(projection_dim, affine=False, track_running_stats=False)
                                 if contrastive_norm else nn.Identity())
        self.conv = inpainting_decoder(bottleneck, in_channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rotation logits ``(B, 4)``, projection ``(B, D)`` and reconstruction ``(B, C, X, Y, Z)``."""
        if min(x.shape[2:]) < 64 or any(s % 32 for s in x.shape[2:]):
            raise ValueError(f"SSL input sides must be multiples of 32 and at least 64 (two bottleneck "
                             f"tokens), got {tuple(x.shape[2:])}")
        bottleneck = self.swinViT(x.contiguous())[4]  # (B, F, s, s, s), layer-normed
        tokens = bottleneck.flatten(2).transpose(1, 2)  # (B, s^3, F)
        mean = tokens.mean(1)
        projection = self.contrastive_head(mean if self.contrastive_pooling == "mean" else tokens[:, 1])
        if projection.shape[0] > 1:  # batch statistics need two views at least
            projection = self.contrastive_norm(projection)
        return {"rotation": self.rotation_head(mean if self.rotation_pooling == "mean" else tokens[:, 0]),
                "contrastive": projection,
                "reconstruction": self.conv(bottleneck)}


class SSLLoss(nn.Module):
    """Weighted sum of rotation cross-entropy, NT-Xent and L1 reconstruction.

    ``forward(out, labels, target)`` takes the heads' outputs for ``2B`` views (view 1 of every
    sample, then view 2), the ``2B`` rotation labels and the ``2B`` rotated un-masked inputs, and
    returns ``{"rotation", "contrastive", "reconstruction", "total"}``.

    Example:
        >>> import torch
        >>> loss = SSLLoss()
        >>> out = {"rotation": torch.zeros(2, 4), "contrastive": torch.eye(2),
        ...        "reconstruction": torch.zeros(2, 1, 2, 2, 2)}
        >>> round(float(loss(out, torch.tensor([0, 3]), torch.ones(2, 1, 2, 2, 2))["rotation"]), 4)
        1.3863
    """

    def __init__(self, rotation_weight: float = 1.0, contrastive_weight: float = 1.0,
                 reconstruction_weight: float = 1.0, temperature: float = 0.5):
        super().__init__()
        self.weights = {"rotation": rotation_weight, "contrastive": contrastive_weight,
                        "reconstruction": reconstruction_weight}
        self.rotation = nn.CrossEntropyLoss()
        self.contrastive = ContrastiveLoss(temperature=temperature)
        self.reconstruction = nn.L1Loss()

    def forward(self, out: dict[str, torch.Tensor], labels: torch.Tensor,
                target: torch.Tensor) -> dict[str, torch.Tensor]:
        n = out["contrastive"].shape[0] // 2
        parts = {
            "rotation": self.rotation(out["rotation"].float(), labels),
            "contrastive": self.contrastive(out["contrastive"][:n].float(), out["contrastive"][n:].float()),
            "reconstruction": self.reconstruction(out["reconstruction"].float(), target.float()),
        }
        parts["total"] = sum(self.weights[k] * v for k, v in parts.items())
        return parts


def contrastive_accuracy(projections: torch.Tensor) -> torch.Tensor:
    """Fraction of the ``2B`` views whose most similar other view (cosine) is their own pair's.

    Views are ordered as :class:`SSLLoss` takes them (view 1 of every sample, then view 2); chance is
    ``1 / (2B - 1)`` (1/3 at the demo's batch of 2).

    Example:
        >>> import torch
        >>> float(contrastive_accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])))
        1.0
    """
    z = torch.nn.functional.normalize(projections.float(), dim=1)
    similarity = (z @ z.T).fill_diagonal_(float("-inf"))
    n = z.shape[0] // 2
    partner = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    return (similarity.argmax(1) == partner).float().mean()
