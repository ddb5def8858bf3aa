"""The one weight-import path: any checkpoint this project or the original release wrote -> a network.

:func:`load_pretrained` reads a file with :func:`~brainsegfounder.utils.safe_load.safe_load` (``weights_only``) and copies its tensors
into a MONAI ``SwinUNETR`` (fine-tuning), an :class:`~brainsegfounder.models.ssl_heads.SSLHeads`
(Stage 1 / Stage 2) or a bare ``SwinTransformer`` encoder. It understands:

- this project's Lightning checkpoints (``state_dict`` keys ``net.swinViT.*``, ``net.decoder1.*``,
  ``net.rotation_head.*``, ...) and their ``hyper_parameters["modalities"]``;
- released ``.pt`` files (a dict with ``"state_dict"``, or a bare state dict) with any of the
  prefixes ``module.swinViT.``, ``swinViT.``, ``module.`` (encoder only), ``swin_vit.``, ``backbone.``.

Tensors are matched by name after the prefixes are normalised (:func:`canonical_key`); the decoder
loads too when the file holds a whole network of the same shape. Input convolutions whose channel
count differs are adapted by a modality map (:func:`adapt_input_channels`) rather than thrown
away. Everything else that does not fit is skipped with its reason, and an :class:`ImportReport`
says what happened. Too little matching (any encoder tensor left unfilled) is a
:class:`~brainsegfounder.utils.errors.WeightsError` unless ``allow_partial=True``.

Example:
    >>> from brainsegfounder.models.presets import build_swin_unetr
    >>> from brainsegfounder.models.weights import load_pretrained
    >>> net = build_swin_unetr("tiny", in_channels=4, out_channels=3, feature_size=12)
    >>> report = load_pretrained(net, "runs/ssl/stage2/last.ckpt",  # doctest: +SKIP
    ...                          target_modalities=["flair", "t1ce", "t1", "t2"])
    >>> report.n_loaded, report.n_adapted  # doctest: +SKIP
    (126, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from monai.networks.nets.swin_unetr import SwinTransformer
from rich.console import Console
from rich.table import Table

from brainsegfounder import checkpoints
from brainsegfounder.utils.errors import WeightsError
from brainsegfounder.utils.safe_load import non_finite_tensors

__all__ = ["ImportReport", "load_pretrained", "read_weights", "canonical_key", "adapt_input_channels",
           "INPUT_CONVOLUTIONS", "SSL_HEAD_PREFIXES", "UKB_TO_BRATS"]

ENCODER = "swinViT."
#: Wrappers that training code puts in front of every name (DDP, Lightning's ``self.net``, compile).
WRAPPERS = ("module.", "net.", "model.", "_orig_mod.")
#: Other names the encoder has gone by (older MONAI, other frameworks).
ENCODER_ALIASES = ("swinViT.", "swin_vit.", "backbone.", "encoder.")
#: Heads of the SSL network, which a segmentation network does not have.
SSL_HEAD_PREFIXES = ("rotation_head.", "contrastive_head.", "conv.")
#: Convolutions applied to the raw input: their dim 1 is the modality channel (adaptable).
INPUT_CONVOLUTIONS = ("swinViT.patch_embed.proj.weight", "encoder1.layer.conv1.conv.weight",
                      "encoder1.layer.conv3.conv.weight")
#: Stage 1 (UK Biobank T1, FLAIR) -> BraTS (flair, t1ce, t1, t2): each BraTS channel takes the
#: Stage-1 channel of the closest contrast.
UKB_TO_BRATS = {"flair": "flair", "t1ce": "t1", "t1": "t1", "t2": "flair"}


@dataclass
class ImportReport:
    """What :func:`load_pretrained` did: each tensor loaded, adapted (with how) or skipped (with why)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    encoder_total: int = 0

    @property
    def n_loaded(self) -> int:
        return len(self.loaded)

    @property
    def n_adapted(self) -> int:
        return len(self.adapted)

    @property
    def encoder_filled(self) -> int:
        done = set(self.loaded) | {k for k, _ in self.adapted}
        return sum(k.startswith(ENCODER) for k in done)

    def table(self, max_rows: int = 12) -> Table:
        """A rich table: counts, then the adapted and skipped tensors grouped by reason."""
        table = Table(title=f"weights from {self.path}", show_lines=False)
        table.add_column("what")
        table.add_column("tensors", justify="right")
        table.add_column("details")
        table.add_row("loaded", str(self.n_loaded), f"encoder {self.encoder_filled}/{self.encoder_total}")
        for key, how in self.adapted:
            table.add_row("adapted", "1", f"{key}: {how}")
        by_reason: dict[str, list[str]] = {}
        for key, why in self.skipped:
            by_reason.setdefault(why, []).append(key)
        for why, keys in list(by_reason.items())[:max_rows]:
            table.add_row("skipped", str(len(keys)), f"{why} (e.g. {keys[0]})")
        if self.missing:
            table.add_row("not in file", str(len(self.missing)), f"kept as initialised (e.g. {self.missing[0]})")
        return table

    def print(self, console: Console | None = None) -> None:
        (console or Console(stderr=True)).print(self.table())


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, hyper_parameters)`` of a checkpoint, read by :func:`~brainsegfounder.utils.safe_load.safe_load`.

    Accepts a Lightning checkpoint, a dict holding ``"state_dict"`` (or ``"model"``), or a bare
    state dict; numpy scalars beside it (a MONAI-style ``best_acc``) are fine. Raises
    :class:`WeightsError` for a missing, corrupt or code-carrying file (said as such), a file without
    tensors, or tensors holding NaN/Inf (named), which would otherwise train on NaN from step 0.
    """
    path = Path(path).expanduser()
    obj = checkpoints.read_checkpoint(path, what="weights file (model.backbone.init_from)")
    hparams: dict = {}
    if isinstance(obj, Mapping):
        hparams = dict(obj.get("hyper_parameters") or {})
        for key in ("state_dict", "model", "model_state_dict", "network"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} holds no state dict (expected a dict of tensors, or a dict "
                           "with a 'state_dict' entry).")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    bad = non_finite_tensors(state)
    if bad:
        shown = ", ".join(f"{k} ({n} values)" for k, n in list(bad.items())[:3])
        raise WeightsError(f"weights file {path} holds NaN/Inf in {len(bad)} of {len(state)} tensors (e.g. {shown}); "
                           "it was not imported. It comes from a diverged run or a broken copy: use an earlier "
                           "checkpoint or download the file again.")
    return state, hparams


def canonical_key(key: str) -> str:
    """A file's tensor name in this project's naming: wrappers dropped, the encoder as ``swinViT.``.

    >>> canonical_key("module.swinViT.layers1.0.blocks.0.norm1.weight")
    'swinViT.layers1.0.blocks.0.norm1.weight'
    >>> canonical_key("net.swin_vit.patch_embed.proj.weight"), canonical_key("module.rotation_head.bias")
    ('swinViT.patch_embed.proj.weight', 'rotation_head.bias')
    """
    changed = True
    while changed:
        changed = False
        for wrapper in WRAPPERS:
            if key.startswith(wrapper):
                key, changed = key[len(wrapper):], True
    for alias in ENCODER_ALIASES:
        if key.startswith(alias):
            return ENCODER + key[len(alias):]
    return key


def adapt_input_channels(
    weight: torch.Tensor,
    source_modalities: Sequence[str],
    target_modalities: Sequence[str],
    modality_map: Mapping[str, str] | None = None,
) -> tuple[torch.Tensor, str]:
    """Adapt an input convolution ``(out, C_source, ...)`` to ``(out, C_target, ...)``.

    Target channel ``t`` copies the kernel slice of its source channel ``s = map[t]``, divided by
    the number of target channels that share ``s``. For an input whose channels mapped from the
    same source are equal (``x_t = x_s``), the response is then exactly the source network's:
    ``sum_t W'[:, t] x_t = sum_s W[:, s] x_s``. Source channels no target uses drop out.

    ``modality_map`` maps each target modality to a source modality; by default the same names.

    >>> w = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1, 1)  # t1, flair
    >>> new, how = adapt_input_channels(w, ["t1", "flair"], ["flair", "t1ce", "t1", "t2"], UKB_TO_BRATS)
    >>> new.flatten().tolist()
    [1.0, 0.5, 0.5, 1.0]
    """
    mapping = dict(modality_map) if modality_map else {m: m for m in target_modalities}
    missing = [t for t in target_modalities if t not in mapping]
    unknown = sorted({s for t, s in mapping.items() if t in target_modalities and s not in source_modalities})
    if missing or unknown:
        raise WeightsError(
            f"cannot map the network's modalities {list(target_modalities)} onto the checkpoint's "
            f"{list(source_modalities)}: " + (f"no source for {missing}; " if missing else "")
            + (f"{unknown} not in the checkpoint; " if unknown else "")
            + "set model.modality_map, e.g. " + str({t: source_modalities[0] for t in target_modalities}) + "."
        )
    if weight.shape[1] != len(source_modalities):
        raise WeightsError(f"the checkpoint's input convolution has {weight.shape[1]} channels but "
                           f"{len(source_modalities)} source modalities {list(source_modalities)} were given; "
                           "set model.source_modalities to the checkpoint's modalities in channel order.")
    sources = [mapping[t] for t in target_modalities]
    index = torch.tensor([list(source_modalities).index(s) for s in sources])
    shares = torch.tensor([sources.count(s) for s in sources], dtype=weight.dtype)
    new = weight.index_select(1, index) / shares.view(1, -1, *([1] * (weight.dim() - 2)))
    how = ", ".join(f"{t}<-{s}" + (f"/{sources.count(s)}" if sources.count(s) > 1 else "")
                    for t, s in zip(target_modalities, sources, strict=True))
    return new.contiguous(), f"channels {len(source_modalities)}->{len(target_modalities)} ({how})"


def _reorders(source: Sequence[str], target: Sequence[str] | None, modality_map: Mapping[str, str] | None) -> bool:
    """Whether the channels must be rearranged even though their count matches."""
    if not source or not target:
        return False
    mapping = dict(modality_map) if modality_map else {m: m for m in target}
    return [mapping.get(t) for t in target] != list(source)


def load_pretrained(
    net: torch.nn.Module,
    path: str | Path,
    modality_map: Mapping[str, str] | None = None,
    source_modalities: Sequence[str] | None = None,
    target_modalities: Sequence[str] | None = None,
    allow_partial: bool = False,
    verbose: bool = True,
) -> ImportReport:
    """Copy a checkpoint's tensors into ``net`` (``SwinUNETR``, ``SSLHeads`` or a ``SwinTransformer``).

    Args:
        net: the network to fill (changed in place).
        path: a checkpoint of this project (``.ckpt``) or a released-format ``.pt`` file.
        modality_map: target modality -> source modality, for input convolutions whose channel
            count or order differs (e.g. :data:`UKB_TO_BRATS`).
        source_modalities: the checkpoint's modalities in channel order; default: the
            ``modalities`` hyper-parameter this project's checkpoints record.
        target_modalities: ``net``'s modalities in channel order.
        allow_partial: accept a file that leaves encoder tensors unfilled (they keep their
            initialisation); otherwise that is a :class:`WeightsError`.
        verbose: print the report's table (rich, on stderr).

    Returns:
        An :class:`ImportReport`. Every encoder tensor loaded equals the file's bitwise.
    """
    state, hparams = read_weights(path)
    bare_encoder = isinstance(net, SwinTransformer)
    target = {(ENCODER + k if bare_encoder else k): v for k, v in net.state_dict().items()}
    source_modalities = list(source_modalities or hparams.get("modalities") or [])
    report = ImportReport(str(path), encoder_total=sum(k.startswith(ENCODER) for k in target))
    new_state: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        name = canonical_key(key)
        if name not in target and ENCODER + name in target:
            name = ENCODER + name  # an encoder saved on its own, without a prefix
        if name not in target:
            why = ("SSL head, not part of this network" if name.startswith(SSL_HEAD_PREFIXES)
                   else "no tensor of this name in the network")
            report.skipped.append((key, why))
            continue
        if name in new_state:
            report.skipped.append((key, f"duplicate of another tensor named {name}"))
            continue
        want = target[name]
        if tensor.shape == want.shape and not (name in INPUT_CONVOLUTIONS
                                               and _reorders(source_modalities, target_modalities, modality_map)):
            new_state[name] = tensor
            report.loaded.append(name)
        elif (name in INPUT_CONVOLUTIONS and tensor.dim() == want.dim() and tensor.shape[0] == want.shape[0]
              and tensor.shape[2:] == want.shape[2:]):
            if not source_modalities or not target_modalities:
                raise WeightsError(
                    f"{path}: {key} has {tensor.shape[1]} input channels, the network {want.shape[1]}. To adapt "
                    "it, name the modalities: model.source_modalities (the checkpoint's, in channel order; "
                    f"this file does not record them) and model.modality_map, e.g. {UKB_TO_BRATS}.")
            new, how = adapt_input_channels(tensor, source_modalities, target_modalities, modality_map)
            new_state[name] = new.to(want.dtype)
            report.adapted.append((name, how))
        else:
            report.skipped.append((key, f"shape {tuple(tensor.shape)} in the file, {tuple(want.shape)} in the network"))
    report.missing = [k for k in target if k not in new_state]
    missing_encoder = [k for k in report.missing if k.startswith(ENCODER)]
    if not new_state:
        raise WeightsError(f"{path}: no tensor matches the network (file keys look like "
                           f"{list(state)[:3]}). Is it a Swin UNETR / BrainSegFounder checkpoint of this preset?")
    if missing_encoder and not allow_partial:
        raise WeightsError(
            f"{path}: only {report.encoder_filled} of {report.encoder_total} encoder tensors match the network "
            f"(e.g. missing {missing_encoder[0]}; skipped: {report.skipped[:2]}). Check model.preset and "
            "model.feature_size against the checkpoint, or set model.allow_partial_init=true to keep the "
            "unmatched tensors as initialised.")
    if bare_encoder:
        new_state = {k[len(ENCODER):]: v for k, v in new_state.items()}
    with torch.no_grad():
        net.load_state_dict(new_state, strict=False)
    if verbose:
        report.print()
    return report
