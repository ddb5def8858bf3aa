"""``python -m brainsegfounder.report``: write the HTML report of a predictions folder.

Example:
    python -m brainsegfounder.report --predictions runs/preds --inputs data/synthetic_brats2023 \\
        --metrics runs/metrics.csv --scheme brats2023 --out runs/report.html
"""

from __future__ import annotations

from pathlib import Path

from brainsegfounder.utils.cli import command

__all__ = ["report", "main"]


def report(predictions: Path, out: Path | None = None, inputs: Path | None = None, metrics: Path | None = None,
           scheme: str = "brats2021", overlays: Path | None = None, background: str | None = None,
           checkpoint: list[str] | None = None, command_line: str | None = None, title: str | None = None,
           viewers: bool = True, max_side: int = 128) -> dict:
    """Write one self-contained HTML report (works offline) of a run's predictions.

    Args:
        predictions: predict's --output folder (<case_id>.nii.gz label maps, volumes.csv).
        out: the HTML file to write (default: <predictions>/report.html); longitudinal.csv goes beside it.
        inputs: the data root predict read, to show each case's image under its labels.
        metrics: evaluate's --out CSV (its <stem>_summary.json is read too).
        scheme: label scheme: brats2021, brats2023, brats2024, lesion, or a YAML/JSON file.
        overlays: folder of <case_id>.png overlays (predict/evaluate --png).
        background: modality shown under the labels (default: FLAIR, else the first).
        checkpoint: the run's checkpoint(s), if <predictions>/provenance.json does not list them.
        command_line: the command that made the predictions, likewise.
        title: the page title.
        viewers: embed an interactive slice viewer per case.
        max_side: the viewer's longest side in voxels (bigger volumes are downsampled).
    """
    from rich.console import Console

    from brainsegfounder.report import write_report

    result = write_report(predictions, out, inputs, metrics, scheme, overlays, background, checkpoint,
                          command_line, title, viewers, max_side)
    Console(stderr=True).print(f"wrote {result['report']} ({result['cases']} case(s), "
                               f"{result['bytes'] / 1e6:.1f} MB, {result['seconds']} s)"
                               + (f" and {result['files'][1]}" if len(result["files"]) > 1 else ""), soft_wrap=True)
    return result


def main(argv: list[str] | None = None) -> int:
    command(report, argv, prog="python -m brainsegfounder.report")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
