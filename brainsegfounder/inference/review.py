"""Which predicted cases to review first: the flag rule (calibrated threshold or --flag_below) and each case's review columns."""

from __future__ import annotations

from brainsegfounder.utils.errors import ConfigError

__all__ = ["flag_rule_of", "review_columns"]


def flag_rule_of(predictor, flag_below: float | None, uncertainty: bool, console):
    """(expected Dice below which a case is flagged, validation cases it was fitted on, where it came from).

    Said once, in words, before the first case; refused when given for uncalibrated checkpoints (their
    expected Dice is not one).
    """
    from brainsegfounder.inference.calibration import NOT_CALIBRATED, flag_rule

    if not uncertainty:
        return None, None, ""
    if not predictor.calibrated:
        if flag_below is not None:
            raise ConfigError("--flag_below needs calibrated checkpoints: without temperatures the expected Dice "
                              "is not one (a case of Dice 0.87 can read 0.10). Run brainsegfounder.calibrate on "
                              "the checkpoint and predict with the .calibrated.ckpt it writes.")
        console.print(f"[yellow]{NOT_CALIBRATED}[/]; volumes.csv's expected_dice and flag stay empty.",
                      highlight=False, soft_wrap=True)
        return None, None, ""
    if flag_below is not None:
        cutoff, cases, source = flag_below, None, "--flag_below"
    else:
        cutoff, cases, source = predictor.flag_below, predictor.flag_cases, "calibrate"
    if cutoff is not None:
        console.print(f"flag: {flag_rule(cutoff, cases, source)}", highlight=False, soft_wrap=True)
    return cutoff, cases, source


def review_columns(result, calibrated: bool, cutoff: float | None, cases: int | None, source: str) -> dict:
    """``expected_dice``, ``flag`` and ``review`` of one case (empty but for the review when not calibrated)."""
    from brainsegfounder.inference.calibration import review_note

    if not calibrated:
        return {"expected_dice": "", "flag": "", "review": review_note(None, None, calibrated=False)}
    expected = float(result.expected_dice)
    return {"expected_dice": expected, "flag": "" if cutoff is None else int(expected < cutoff),
            "review": review_note(expected, cutoff, cases, source)}


