"""The one weight-import path: every file variant loads bitwise, channels adapt exactly, bad files fail clearly."""

import argparse

import pytest
import torch

from brainsegfounder.models.presets import build_swin_unetr
from brainsegfounder.models.ssl_heads import SSLHeads
from brainsegfounder.models.weights import UKB_TO_BRATS, adapt_input_channels, canonical_key, load_pretrained
from brainsegfounder.utils.errors import WeightsError

BRATS = ["flair", "t1ce", "t1", "t2"]


@pytest.fixture(scope="module")
def stage1():
    """A real tiny SSL network (2 channels) with non-default weights."""
    torch.manual_seed(1)
    return SSLHeads(preset="tiny", in_channels=2, feature_size=12, projection_dim=16)


@pytest.fixture(scope="module")
def seg4():
    torch.manual_seed(2)
    return build_swin_unetr("tiny", in_channels=4, out_channels=3, feature_size=12)


def _fresh(in_channels=4, out_channels=3):
    torch.manual_seed(99)
    return build_swin_unetr("tiny", in_channels=in_channels, out_channels=out_channels, feature_size=12)


def _assert_encoder_equal(net, source_encoder_state, skip=()):
    target = net.swinViT.state_dict()
    assert len(target) == len(source_encoder_state) == 126
    for k, v in source_encoder_state.items():
        if k not in skip:
            assert torch.equal(target[k], v), k


@pytest.mark.parametrize("prefix", ["module.swinViT.", "swinViT.", "module.", "swin_vit.", "backbone."])
def test_released_format_loads_bitwise_with_every_prefix(stage1, tmp_path, prefix):
    encoder = stage1.swinViT.state_dict()
    heads = {f"module.{k}" if prefix.startswith("module") else k: v for k, v in stage1.state_dict().items()
             if not k.startswith("swinViT.")}
    state = {prefix + k: v for k, v in encoder.items()} | heads
    path = tmp_path / "model_weights_UKB-pretrain.pt"
    torch.save({"state_dict": state, "epoch": 3, "global_step": 100}, path)
    net = _fresh(in_channels=2, out_channels=3)
    report = load_pretrained(net, path, verbose=False)
    _assert_encoder_equal(net, encoder)
    assert report.encoder_filled == report.encoder_total == 126
    reasons = dict(report.skipped)
    assert all(why == "SSL head, not part of this network" for why in reasons.values())
    assert len(reasons) == len(heads)


def test_whole_network_loads_decoder_too_and_skips_a_different_output_head(seg4, tmp_path):
    path = tmp_path / "model_weights_BRATS-finetune.pt"
    torch.save({"state_dict": seg4.state_dict()}, path)
    same = _fresh()
    load_pretrained(same, path, verbose=False)
    for k, v in seg4.state_dict().items():
        assert torch.equal(same.state_dict()[k], v), k
    binary = _fresh(out_channels=1)
    report = load_pretrained(binary, path, verbose=False)
    skipped = dict(report.skipped)
    assert set(skipped) == {"out.conv.conv.weight", "out.conv.conv.bias"}
    assert "shape (3, 12, 1, 1, 1) in the file, (1, 12, 1, 1, 1) in the network" in skipped["out.conv.conv.weight"]


def test_project_checkpoint_with_recorded_modalities_adapts_2_to_4_channels(stage1, tmp_path):
    # The layout of this project's Lightning checkpoints: the module holds the network as `net`.
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in stage1.state_dict().items()},
                "hyper_parameters": {"modalities": ["t1", "flair"], "in_channels": 2}}, path)
    net = _fresh()
    report = load_pretrained(net, path, modality_map=UKB_TO_BRATS, target_modalities=BRATS, verbose=False)
    assert [k for k, _ in report.adapted] == ["swinViT.patch_embed.proj.weight"]
    assert "t1ce<-t1/2" in report.adapted[0][1]
    _assert_encoder_equal(net, stage1.swinViT.state_dict(), skip={"patch_embed.proj.weight"})
    # Stage 2 (SSL heads of the same shape except the decoder's output) keeps the heads.
    stage2 = SSLHeads(preset="tiny", in_channels=4, feature_size=12, projection_dim=16)
    report = load_pretrained(stage2, path, modality_map=UKB_TO_BRATS, target_modalities=BRATS, verbose=False)
    assert torch.equal(stage2.rotation_head.weight, stage1.rotation_head.weight)
    assert torch.equal(stage2.contrastive_head.weight, stage1.contrastive_head.weight)
    assert any(k.startswith("net.conv.") and "shape" in why for k, why in report.skipped)


def test_adapted_patch_embedding_responds_like_the_source_to_equal_mapped_channels(stage1, tmp_path):
    path = tmp_path / "stage1.pt"
    torch.save({"state_dict": {f"swinViT.{k}": v for k, v in stage1.swinViT.state_dict().items()}}, path)
    net = _fresh()
    load_pretrained(net, path, modality_map=UKB_TO_BRATS, source_modalities=["t1", "flair"],
                    target_modalities=BRATS, verbose=False)
    source_w = stage1.swinViT.patch_embed.proj.weight
    w = net.swinViT.patch_embed.proj.weight
    # Exactly: the two halves of each source slice add back to it (halving is exact in binary).
    assert torch.equal(w[:, 1] + w[:, 2], source_w[:, 0]) and torch.equal(w[:, 0] + w[:, 3], source_w[:, 1])
    torch.manual_seed(0)
    t1, flair = torch.randn(2, 1, 1, 32, 32, 32)
    with torch.no_grad():
        source = stage1.swinViT.patch_embed(torch.cat([t1, flair], 1))
        target = net.swinViT.patch_embed(torch.cat([flair, t1, t1, flair], 1))
    torch.testing.assert_close(target, source, rtol=1e-6, atol=1e-6)


def test_same_count_in_another_order_is_reordered_by_name(seg4, tmp_path):
    path = tmp_path / "seg.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in seg4.state_dict().items()},
                "hyper_parameters": {"modalities": BRATS}}, path)
    net = _fresh()
    report = load_pretrained(net, path, target_modalities=["t1", "t1ce", "t2", "flair"], verbose=False)
    order = [BRATS.index(m) for m in ["t1", "t1ce", "t2", "flair"]]
    assert torch.equal(net.swinViT.patch_embed.proj.weight, seg4.swinViT.patch_embed.proj.weight[:, order])
    assert torch.equal(net.encoder1.layer.conv1.conv.weight, seg4.encoder1.layer.conv1.conv.weight[:, order])
    assert len(report.adapted) == 3


def test_a_pickle_that_weights_only_refuses_is_a_clear_error(seg4, tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": seg4.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(WeightsError, match="contains code references that are not allowed: argparse.Namespace; it was not run") as err:
        load_pretrained(_fresh(), path, verbose=False)
    assert str(path) in str(err.value) and "torch.save" in str(err.value)


def test_bad_files_and_too_little_matching_are_clear_errors(seg4, tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_pretrained(_fresh(), tmp_path / "missing.pt", verbose=False)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt"):
        load_pretrained(_fresh(), broken, verbose=False)
    # Half of the encoder: an error unless a partial load is allowed.
    half = {k: v for i, (k, v) in enumerate(seg4.state_dict().items()) if i % 2 == 0}
    partial = tmp_path / "partial.pt"
    torch.save({"state_dict": half}, partial)
    with pytest.raises(WeightsError, match="encoder tensors match") as err:
        load_pretrained(_fresh(), partial, verbose=False)
    assert "allow_partial_init" in str(err.value)
    report = load_pretrained(_fresh(), partial, allow_partial=True, verbose=False)
    assert 0 < report.encoder_filled < report.encoder_total and report.missing
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(WeightsError, match="no tensor matches"):
        load_pretrained(_fresh(), other, allow_partial=True, verbose=False)


def test_channel_change_without_modalities_says_what_to_set(stage1, tmp_path):
    path = tmp_path / "enc.pt"
    torch.save(stage1.swinViT.state_dict(), path)  # a bare state dict, no prefix, no modalities
    with pytest.raises(WeightsError, match="source_modalities"):
        load_pretrained(_fresh(), path, target_modalities=BRATS, verbose=False)
    with pytest.raises(WeightsError, match="no source for"):
        adapt_input_channels(torch.zeros(1, 2, 1, 1, 1), ["t1", "flair"], BRATS, {"flair": "flair"})


def test_key_names_are_normalised():
    assert canonical_key("module.backbone.layers2.0.downsample.norm.weight") == "swinViT.layers2.0.downsample.norm.weight"
    assert canonical_key("net.decoder1.transp_conv.conv.weight") == "decoder1.transp_conv.conv.weight"


def test_bare_encoder_target(stage1, tmp_path):
    path = tmp_path / "ssl.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in stage1.state_dict().items()}}, path)
    encoder = SSLHeads(preset="tiny", in_channels=2, feature_size=12).swinViT
    report = load_pretrained(encoder, path, verbose=False)
    assert report.encoder_filled == 126
    for k, v in stage1.swinViT.state_dict().items():
        assert torch.equal(encoder.state_dict()[k], v)
