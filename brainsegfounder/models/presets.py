"""Swin UNETR presets by name, as in the BrainSegFounder paper.

All three presets use MONAI's :class:`~monai.networks.nets.SwinUNETR` unchanged (feature size 48,
window 7, patch 2, heads 3-6-12-24), so that released weights and MONAI tooling load as they are.
Depths: ``tiny`` 2-2-2-2, ``small`` 2-2-6-2 (the paper's best), ``base`` 2-2-18-2 (Cox et al.,
Medical Image Analysis 2024, DOI 10.1016/j.media.2024.103301, arXiv 2406.10395). Parameters with 4
inputs, 3 outputs, feature size 48 (MONAI 1.6.1), whole / encoder: tiny 62.19 M / 8.06 M, small
64.08 M / 9.95 M, base 69.73 M / 15.60 M.

Example:
    >>> from brainsegfounder.models.presets import build_swin_unetr
    >>> net = build_swin_unetr("tiny", in_channels=4, out_channels=3, feature_size=12)
    >>> round(sum(p.numel() for p in net.parameters()) / 1e6, 2)
    4.08
"""

from __future__ import annotations

from dataclasses import dataclass

from monai.networks.nets import SwinUNETR

from brainsegfounder.models.window_attention import WINDOWS_PER_CHUNK, chunk_window_attention
from brainsegfounder.utils.errors import ConfigError

__all__ = ["SwinUNETRPreset", "PRESETS", "build_swin_unetr", "count_parameters"]


@dataclass(frozen=True)
class SwinUNETRPreset:
    """Depths and heads of one named Swin UNETR size (the encoder's four stages)."""

    name: str
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int] = (3, 6, 12, 24)
    feature_size: int = 48


PRESETS: dict[str, SwinUNETRPreset] = {
    "tiny": SwinUNETRPreset("tiny", depths=(2, 2, 2, 2)),
    # "BrainSegFounder-Small", the paper's best model (~64 M parameters).
    "small": SwinUNETRPreset("small", depths=(2, 2, 6, 2)),
    "base": SwinUNETRPreset("base", depths=(2, 2, 18, 2)),
}


def build_swin_unetr(
    preset: str = "small",
    in_channels: int = 4,
    out_channels: int = 3,
    feature_size: int | None = None,
    gradient_checkpointing: bool = False,
    dropout_path_rate: float = 0.0,
    attention_chunk: int | None = WINDOWS_PER_CHUNK,
) -> SwinUNETR:
    """Build MONAI's ``SwinUNETR`` for a named preset.

    Args:
        preset: ``"tiny"``, ``"small"`` or ``"base"``.
        in_channels: input modalities (BraTS 4, UK Biobank 2, ATLAS 1).
        out_channels: output channels (BraTS regions TC, WT, ET: 3; a binary lesion: 1).
        feature_size: override the preset's 48 (must be a multiple of 12); small values such as
            12 give CPU-sized networks for tests and demos.
        gradient_checkpointing: recompute Swin blocks in the backward pass (less memory, ~20-30%
            slower); MONAI's ``use_checkpoint``.
        dropout_path_rate: stochastic depth rate of the Swin blocks.
        attention_chunk: while training, compute window attention this many windows at a time and
            recompute the scores in the backward pass (:mod:`~brainsegfounder.models.window_attention`:
            same outputs, a third of the peak memory); ``None`` or 0 keeps MONAI's attention.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
    spec = PRESETS[preset]
    fs = spec.feature_size if feature_size is None else int(feature_size)
    if fs % 12:
        raise ConfigError(f"feature_size must be a multiple of 12 (Swin UNETR's heads), got {fs}.")
    net = SwinUNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        feature_size=fs,
        depths=spec.depths,
        num_heads=spec.num_heads,
        use_checkpoint=gradient_checkpointing,
        dropout_path_rate=dropout_path_rate,
        spatial_dims=3,
    )
    if attention_chunk:
        chunk_window_attention(net, attention_chunk)
    return net


def count_parameters(module) -> int:
    """Number of parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())
