import pytest

from brainsegfounder.models import build_swin_unetr, count_parameters
from brainsegfounder.utils.errors import ConfigError


@pytest.mark.parametrize(
    "preset, whole, encoder",
    [("tiny", 62.19, 8.06), ("small", 64.08, 9.95), ("base", 69.73, 15.60)],
)
def test_preset_parameter_counts_match_reference(preset, whole, encoder):
    # The table of README.md's "Model presets" (source: Cox et al., Medical Image Analysis 2024,
    # DOI 10.1016/j.media.2024.103301, arXiv 2406.10395), measured with MONAI 1.6.1 as
    # SwinUNETR(in_channels=4, out_channels=3, feature_size=48).
    net = build_swin_unetr(preset, in_channels=4, out_channels=3)
    assert round(count_parameters(net) / 1e6, 2) == whole
    assert round(count_parameters(net.swinViT) / 1e6, 2) == encoder


def test_feature_size_override_and_checkpointing_flag():
    net = build_swin_unetr("tiny", feature_size=12, gradient_checkpointing=True)
    assert net.swinViT.patch_embed.proj.weight.shape == (12, 4, 2, 2, 2)
    assert all(layer[0].blocks[0].use_checkpoint for layer in
               (net.swinViT.layers1, net.swinViT.layers2, net.swinViT.layers3, net.swinViT.layers4))


def test_unknown_preset_and_bad_feature_size_are_refused():
    with pytest.raises(ConfigError, match="unknown preset"):
        build_swin_unetr("huge")
    with pytest.raises(ConfigError, match="multiple of 12"):
        build_swin_unetr("tiny", feature_size=10)
