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
        inputs: the data root predict read (or one case folder, or a folder of case folders), to show
            each case's image (FLAIR, else the first modality) under its labels.
        metrics: evaluate's --out CSV (its <stem>_summary.json is read too).
        scheme: label scheme: brats2021, brats2023, brats2024, lesion, or a YAML/JSON file.
        overlays: folder of <case_id>.png overlays (predict/evaluate --png).
        background: modality shown under the labels (default: FLAIR, else the first).
        checkpoint: the run's checkpoint(s) (--checkpoint a.ckpt b.ckpt), if <predictions>/provenance.json
            does not list them; their sha256, preprocessing and calibration are read from the files.
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


def _lists(argv: list[str]) -> list[str]:
    """``--checkpoint a.ckpt b.ckpt`` (the shell's way) as the parser reads a list: ``--checkpoint+ a.ckpt ...``.

    >>> _lists(["--checkpoint", "a.ckpt", "b.ckpt", "--out", "r.html"])
    ['--checkpoint+', 'a.ckpt', '--checkpoint+', 'b.ckpt', '--out', 'r.html']
    """
    out: list[str] = []
    listing = False
    for arg in argv:
        if arg.startswith("-"):
            listing = arg == "--checkpoint"
            if not listing:
                out.append(arg)
        elif listing:
            out += ["--checkpoint+", arg]
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    import sys

    command(report, _lists(sys.argv[1:] if argv is None else list(argv)), prog="python -m brainsegfounder.report")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
