"""Swin UNETR presets, SSL heads, and weight import/adaptation."""

from brainsegfounder.models.presets import PRESETS, SwinUNETRPreset, build_swin_unetr, count_parameters

__all__ = ["PRESETS", "SwinUNETRPreset", "build_swin_unetr", "count_parameters"]
