"""One backbone configuration for every task: the Swin network's size and where its weights come from.

:class:`Backbone` is what segmentation fine-tuning, Stage 1 and Stage 2 pretraining all receive
(``model.init_args.backbone`` in a config, ``--model.backbone.preset=tiny`` on the command line).
It builds the network (:meth:`Backbone.segmentation_network`, :meth:`Backbone.ssl_network`) and
fills it from ``init_from`` through the one weight-import path
(:func:`~brainsegfounder.models.weights.load_pretrained`), so no task repeats either step.

Example:
    >>> backbone = Backbone(preset="tiny", feature_size=12)
    >>> net = backbone.segmentation_network(in_channels=4, out_channels=3)
    >>> tuple(net.swinViT.patch_embed.proj.weight.shape)
    (12, 4, 2, 2, 2)
    >>> Backbone.from_value({"preset": "tiny", "feature_size": 12}) == backbone
    True
    >>> Backbone(preset="huge")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    brainsegfounder.utils.errors.ConfigError: model.backbone.preset 'huge' is unknown...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from brainsegfounder.models.presets import PRESETS, build_swin_unetr
from brainsegfounder.models.window_attention import WINDOWS_PER_CHUNK
from brainsegfounder.utils.errors import ConfigError

__all__ = ["DEFAULT_BACKBONE", "Backbone", "upgrade_hparams"]


@dataclass(frozen=True)
class Backbone:
    """The Swin UNETR encoder every task shares, and how to initialise it.

    Args:
        preset: network size, ``tiny``, ``small`` (the paper's best) or ``base``.
        feature_size: override the preset's 48 (a multiple of 12; 12 for CPU-sized runs).
        gradient_checkpointing: recompute Swin blocks in the backward pass (less memory, slower).
        dropout_path_rate: stochastic depth of the Swin blocks.
        attention_chunk: windows whose attention scores are alive at once while training (the rest
            are recomputed in the backward pass; same results, a third of the memory); ``null``
            keeps MONAI's attention (:mod:`~brainsegfounder.models.window_attention`).
        init_from: start from this checkpoint (Stage 1/2 SSL, a fine-tune, or a released ``.pt``).
        modality_map: target modality -> checkpoint modality, when the input channels differ
            (e.g. ``{flair: flair, t1ce: t1, t1: t1, t2: flair}`` from a Stage-1 checkpoint).
        source_modalities: the checkpoint's modalities in channel order, if it does not record them.
        allow_partial_init: accept a checkpoint that fills only part of the encoder.
        freeze_encoder_epochs: keep the encoder (``swinViT``) fixed for this many first epochs.
        freeze_encoder: keep the encoder (``swinViT``) fixed for the whole run, so that only the rest
            of the network (the convolutional skip blocks and the decoder) trains: the frozen-encoder
            probe of docs/results.md, which measures what the encoder's weights hold without
            letting fine-tuning change them. ``freeze_encoder_epochs`` is then irrelevant.
    """

    preset: str = "small"
    feature_size: int | None = None
    gradient_checkpointing: bool = False
    dropout_path_rate: float = 0.0
    init_from: str | None = None
    modality_map: dict[str, str] | None = None
    source_modalities: list[str] | None = None
    allow_partial_init: bool = False
    freeze_encoder_epochs: int = 0
    freeze_encoder: bool = False
    attention_chunk: int | None = WINDOWS_PER_CHUNK

    def __post_init__(self) -> None:
        # Checked here, when the config is read, rather than when the network is first built.
        if self.preset not in PRESETS:
            raise ConfigError(f"model.backbone.preset {self.preset!r} is unknown; choose one of {sorted(PRESETS)}.")
        if self.feature_size is not None and (self.feature_size <= 0 or self.feature_size % 12):
            raise ConfigError(f"model.backbone.feature_size must be a positive multiple of 12 (Swin UNETR's "
                              f"heads), got {self.feature_size}.")
        if not 0.0 <= self.dropout_path_rate < 1.0:
            raise ConfigError(f"model.backbone.dropout_path_rate must lie in [0, 1), got {self.dropout_path_rate}.")
        if self.freeze_encoder_epochs < 0:
            raise ConfigError(f"model.backbone.freeze_encoder_epochs must be >= 0, got {self.freeze_encoder_epochs}.")

    @classmethod
    def from_value(cls, value: Backbone | Mapping | None) -> Backbone:
        """A :class:`Backbone` from itself, a dict (as checkpoints store it) or ``None`` (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Backbone):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"model.backbone must be a mapping of backbone settings, got {value!r}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"model.backbone: unknown setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**dict(value))

    def to_dict(self) -> dict:
        """Plain types only, so that checkpoints stay loadable with ``weights_only=True``."""
        data = asdict(self)
        data["modality_map"] = dict(self.modality_map) if self.modality_map else None
        data["source_modalities"] = list(self.source_modalities) if self.source_modalities else None
        return data

    # -- networks ------------------------------------------------------------------------------------
    def segmentation_network(self, in_channels: int, out_channels: int):
        """MONAI ``SwinUNETR`` of this size (one output channel per region)."""
        return build_swin_unetr(self.preset, in_channels, out_channels, self.feature_size,
                                self.gradient_checkpointing, self.dropout_path_rate, self.attention_chunk)

    def ssl_network(self, in_channels: int, projection_dim: int = 512, contrastive_pooling: str = "mean",
                    contrastive_norm: bool = True, rotation_pooling: str = "token"):
        """:class:`~brainsegfounder.models.ssl_heads.SSLHeads` of this size (Stage 1 / Stage 2)."""
        from brainsegfounder.models.ssl_heads import SSLHeads

        return SSLHeads(self.preset, in_channels, self.feature_size, projection_dim, self.gradient_checkpointing,
                        self.dropout_path_rate, contrastive_pooling, contrastive_norm, self.attention_chunk,
                        rotation_pooling)

    def load_weights(self, net, target_modalities: Sequence[str] | None, verbose: bool = True):
        """Fill ``net`` from ``init_from`` (nothing when it is unset); the import report, or ``None``."""
        if not self.init_from:
            return None
        from brainsegfounder.models.weights import load_pretrained

        return load_pretrained(net, self.init_from, modality_map=self.modality_map,
                               source_modalities=self.source_modalities, target_modalities=target_modalities,
                               allow_partial=self.allow_partial_init, verbose=verbose)


#: The paper's BrainSegFounder-Small, from scratch: what a task gets when no backbone is given.
DEFAULT_BACKBONE = Backbone()


def upgrade_hparams(hparams: Mapping) -> dict:
    """Hyper-parameters of a checkpoint written before :class:`Backbone` existed, in today's shape.

    Older checkpoints stored ``preset``, ``feature_size``, ``init_from`` ... as flat task arguments;
    they move under ``backbone``. Current hyper-parameters come back unchanged.

    >>> upgrade_hparams({"preset": "tiny", "feature_size": 12, "lr": 1e-3})
    {'lr': 0.001, 'backbone': {'preset': 'tiny', 'feature_size': 12}}
    """
    names = {f.name for f in fields(Backbone)}
    data = {k: v for k, v in hparams.items() if k not in names}
    flat = {k: v for k, v in hparams.items() if k in names}
    if flat:
        data["backbone"] = {**flat, **dict(data.get("backbone") or {})}
    return data
