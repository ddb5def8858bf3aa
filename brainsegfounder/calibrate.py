"""Calibrate a segmentation checkpoint on its validation fold: per-region temperatures and a flag threshold.

::

    python -m brainsegfounder.calibrate --ckpt runs/demo_anymodal/finetune/version_0/checkpoints/last.ckpt \\
        --config runs/demo_anymodal/finetune/version_0/config.yaml [--data.init_args.root=...]

The ``--config`` is the run's config (the one saved beside the run, or the experiment's YAML with
the same overrides); only its ``data`` section is used: the data module gives the validation fold
exactly as ``fit`` validated on it (whole volumes after the checkpoint's preprocessing). On those
cases the command computes the network's logits by the Gaussian sliding window, fits one
temperature per region channel (:func:`~brainsegfounder.inference.calibration.fit_temperature`), and
chooses the expected Dice below which ``predict`` flags a case, the one that best separates cases
with mean Dice below ``dice_floor`` (:func:`~brainsegfounder.inference.calibration.choose_flag_threshold`;
it says how many validation cases it had, and calls fewer than 20 a rough guide). For a model
trained with modality dropout it also measures the Dice per region of every subset of the
modalities the model accepts missing, so that ``predict`` can say what a case's missing
modalities cost (``--subsets false`` skips it).

It writes a calibrated copy next to the checkpoint, ``<name>.calibrated.ckpt`` (never the
checkpoint itself), holding them under
:data:`~brainsegfounder.checkpoints.TEMPERATURE_KEY`,
:data:`~brainsegfounder.checkpoints.FLAG_THRESHOLD_KEY`,
:data:`~brainsegfounder.checkpoints.FLAG_CASES_KEY` and
:data:`~brainsegfounder.checkpoints.SUBSET_DICE_KEY`; ``predict`` applies them. It prints the
negative log-likelihood, ECE and Brier score per region before and after (measured on the same
validation voxels the temperatures were fitted on, within the brain).

>>> from brainsegfounder.calibrate import calibrated_path
>>> calibrated_path("runs/x/last.ckpt").name
'last.calibrated.ckpt'
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from brainsegfounder.utils.errors import ConfigError, DataError

__all__ = ["calibrate", "calibrated_path", "main"]


def calibrated_path(ckpt: str | Path) -> Path:
    """Where the calibrated copy of ``ckpt`` goes: ``<folder>/<stem>.calibrated.ckpt``."""
    ckpt = Path(ckpt)
    return ckpt.with_name(f"{ckpt.stem}.calibrated.ckpt")


def _validation_logits(module, datamodule, max_cases: int | None, subsets=()):
    """``(logits, targets, brain masks)`` per validation case, each ``(R, X, Y, Z)`` on the model's grid.

    With ``subsets`` (tuples of the model's modalities), also the Dice per region of each subset,
    the others given as missing channels: ``{subset name: [[dice per region] per case]}``.
    """
    import torch

    from brainsegfounder.checkpoints import modalities_of
    from brainsegfounder.inference.subsets import subset_dice, window_masks
    from brainsegfounder.models.sliding_window import sliding_window_logits

    datamodule.setup("validate")
    if not datamodule.val_cases:
        raise DataError(f"the data module has no validation cases (fold {getattr(datamodule, 'fold', '?')} of "
                        f"{datamodule.root}); calibration needs held-out cases.")
    device = next(module.parameters()).device
    roi, batch_size, overlap = module.roi_size, module.hparams.sw_batch_size, module.hparams.sw_overlap
    modalities = list(modalities_of(module) or [])
    predict_masks = window_masks(module, modalities, module.hparams.threshold)
    out, per_subset = [], {"+".join(s): [] for s in subsets}
    for batch in datamodule.val_dataloader():
        x = datamodule.images_to_tensor(batch).to(device)
        targets = module.scheme.to_regions(batch["label"])[0].float()
        with torch.inference_mode():
            logits = sliding_window_logits(x, module, roi, batch_size, overlap)
            if subsets:
                images = {m: x[0, c] for c, m in enumerate(modalities)}
                scores = subset_dice(predict_masks, images, (targets > 0).cpu().numpy(), modalities, subsets)
                for name, dice in scores.items():
                    per_subset[name].append(dice)
        brain = (x[0] != x[0].amin(dim=(1, 2, 3), keepdim=True)).any(0)  # z-scored background is each channel's minimum
        out.append((logits[0].float().cpu(), targets.cpu(), brain.cpu()))
        if max_cases is not None and len(out) >= max_cases:
            break
    return out, per_subset


def _data_parser():
    import pytorch_lightning as pl
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="python -m brainsegfounder.calibrate", exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(pl.LightningDataModule, "data", required=True)
    # The rest of a fit config is accepted and ignored: only the data section matters here.
    for key in ("trainer", "model", "optimizer", "lr_scheduler"):
        parser.add_argument(f"--{key}", type=Any, default=None)
    for key in ("seed_everything", "ckpt_path", "quiet"):  # what fit saves beside a run
        parser.add_argument(f"--{key}", type=Any, default=None)
    return parser


def calibrate(ckpt: str, settings: list[str], out: str | None = None, device: str = "cpu",
              max_cases: int | None = None, dice_floor: float = 0.7, max_voxels: int = 200_000,
              subsets: bool = True) -> dict:
    """Fit per-region temperatures and the flag threshold on the validation fold; write a calibrated copy.

    Args:
        ckpt: a segmentation checkpoint written by ``brainsegfounder.fit``.
        settings: the run's config and dotted overrides, as given to ``fit`` (``--config run.yaml
            --data.init_args.root=...``); only the data section is used.
        out: where to write the calibrated checkpoint (default: ``<name>.calibrated.ckpt`` beside it).
        device: ``cpu``, ``cuda`` or ``auto``.
        max_cases: use at most this many validation cases.
        dice_floor: cases with mean Dice below this are the ones the flag should catch.
        max_voxels: the temperatures are fitted on a seeded subsample of this many voxels.
        subsets: for a model trained with modality dropout, also measure the validation Dice per
            region of every non-empty subset of its modalities (15 more sliding windows per case
            for BraTS's four); ``predict`` scales a case's expected Dice by what its missing
            modalities cost (:func:`~brainsegfounder.inference.uncertainty.quality_score`).

    Returns:
        ``{"path", "temperature", "flag_threshold", "flag_below", "flag_cases", "subset_dice", "before",
        "after"}``; ``flag_below`` is the expected Dice below which a case is flagged (``1 -
        flag_threshold``, the quality score stored), ``flag_cases`` the validation cases it was fitted on;
        ``before``/``after`` map ``nll_<R>``, ``ece_<R>``, ``brier_<R>`` to values; ``subset_dice``
        maps ``flair+t1`` to the mean validation Dice per region (empty without ``subsets``).
    """
    import numpy as np
    import torch

    from brainsegfounder.checkpoints import (
        FLAG_CASES_KEY,
        FLAG_THRESHOLD_KEY,
        SUBSET_DICE_KEY,
        TEMPERATURE_KEY,
        modalities_of,
        read_checkpoint,
    )
    from brainsegfounder.data.modality_dropout import nonempty_subsets
    from brainsegfounder.inference.calibration import (
        binary_nll,
        calibration_per_region,
        choose_flag_threshold,
        fit_temperature,
        flag_rule,
    )
    from brainsegfounder.inference.predictor import accepted_missing, load_segmentation, resolve_device
    from brainsegfounder.inference.uncertainty import quality_score
    from brainsegfounder.metrics import dice_per_channel

    source = Path(ckpt).expanduser()
    target = Path(out).expanduser() if out else calibrated_path(source)
    if target.resolve() == source.resolve():
        raise ConfigError(f"--out {target} is the checkpoint itself; calibration never rewrites the user's file. "
                          "Choose another path (default: <name>.calibrated.ckpt).")
    module = load_segmentation(source, resolve_device(device))
    try:
        parsed = _data_parser().parse_args(list(settings))
    except Exception as err:  # jsonargparse reports a bad config or override as a plain exception
        raise ConfigError(f"--config {' '.join(settings)}: {err}") from None
    parser = _data_parser()
    # jsonargparse 4.49 renamed instantiate_classes to instantiate (the old name warns).
    datamodule = (getattr(parser, "instantiate", None) or parser.instantiate_classes)(parsed).data
    names = module.scheme.names
    if tuple(getattr(datamodule, "region_names", names)) != tuple(names):
        raise ConfigError(f"the config's data regions {datamodule.region_names} are not the checkpoint's {names}; "
                          "pass the config of the run that wrote the checkpoint.")
    # Only a model that accepts missing modalities is ever given a case without some.
    tried = []
    modalities = modalities_of(module)
    if subsets and modalities and accepted_missing(module):
        accepted = set(accepted_missing(module))
        tried = [s for s in nonempty_subsets(modalities) if set(modalities) - set(s) <= accepted]
    cases, per_case = _validation_logits(module, datamodule, max_cases, tried)
    subset_dice = {name: [float(v) for v in np.mean(rows, axis=0)] for name, rows in per_case.items()}
    logits = [z for z, _, _ in cases]
    targets = [y for _, y, _ in cases]
    temperature = fit_temperature(logits, targets, max_voxels=max_voxels, channel_dim=0)

    def scores(t=None) -> dict:
        nll = binary_nll(logits, targets, t, channel_dim=0)
        probs = [torch.sigmoid(z / (t.reshape(-1, 1, 1, 1) if t is not None else 1)).numpy() for z in logits]
        p = np.concatenate([q[:, m.numpy()] for q, (_, _, m) in zip(probs, cases, strict=True)], axis=1)
        y = np.concatenate([y[:, m].numpy() for _, y, m in cases], axis=1)
        result = {f"nll_{n}": float(v) for n, v in zip(names, nll, strict=True)}
        result.update(calibration_per_region(p, y, names))
        return result

    before, after = scores(), scores(temperature)
    quality, dice = [], []
    for z, y, _ in cases:  # complete validation cases: no reliability factor
        p = torch.sigmoid(z / temperature.reshape(-1, 1, 1, 1))
        quality.append(quality_score(p, float(module.hparams.threshold)))
        dice.append(float(dice_per_channel((p > module.hparams.threshold)[None], y[None] > 0)[0].mean()))
    threshold = choose_flag_threshold(quality, dice, dice_floor)

    checkpoint = read_checkpoint(source, what="--ckpt")
    checkpoint[TEMPERATURE_KEY] = [float(t) for t in temperature]
    checkpoint[FLAG_THRESHOLD_KEY] = float(threshold)
    checkpoint[FLAG_CASES_KEY] = len(cases)
    if subset_dice:
        checkpoint[SUBSET_DICE_KEY] = subset_dice
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    torch.save(checkpoint, temporary)
    temporary.replace(target)
    lines = [f"calibrated on {len(cases)} validation case(s) of {datamodule.root}: wrote {target}",
             "| region | T | NLL before | NLL after | ECE before | ECE after | Brier before | Brier after |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {n} | {float(t):.3f} | {before[f'nll_{n}']:.4f} | {after[f'nll_{n}']:.4f} | "
              f"{before[f'ece_{n}']:.4f} | {after[f'ece_{n}']:.4f} | {before[f'brier_{n}']:.4f} | "
              f"{after[f'brier_{n}']:.4f} |" for n, t in zip(names, temperature, strict=True)]
    lines.append(f"flag: {flag_rule(1.0 - threshold, len(cases))}; it separates validation cases with mean "
                 f"Dice < {dice_floor}")
    if subset_dice:
        lines += ["", "validation Dice by available modalities (scales the expected Dice of a case without some):",
                  "| modalities | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
        lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for name, values in subset_dice.items()]
    print("\n".join(lines))
    return {"path": target, "temperature": [float(t) for t in temperature], "flag_threshold": float(threshold),
            "flag_below": 1.0 - float(threshold), "flag_cases": len(cases), "subset_dice": subset_dice, "before": before, "after": after}


def main(argv: list[str] | None = None) -> dict | None:
    """``--ckpt`` (and the calibrate options) for this command; everything else is the run's config."""
    from brainsegfounder.utils.cli import command

    argv = sys.argv[1:] if argv is None else list(argv)
    own = {"--ckpt", "--out", "--device", "--max_cases", "--dice_floor", "--max_voxels", "--subsets"}
    mine: list[str] = []
    config: list[str] = []
    items = iter(argv)
    for arg in items:
        name = arg.split("=", 1)[0]
        if name in own or arg in ("-h", "--help"):
            mine.append(arg)
            if "=" not in arg and arg not in ("-h", "--help"):
                mine.append(next(items, ""))
        else:
            config.append(arg)
    # The config and its overrides pass through as one list, parsed by the data module's parser.
    return command(calibrate, [*mine, "--settings", "[" + ", ".join(_quote(c) for c in config) + "]"],
                   prog="python -m brainsegfounder.calibrate")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
