"""What ``predict --report`` writes beside its label maps: provenance.json and report.html.

Example:
    >>> from brainsegfounder.report.predicted import write_predict_report  # doctest: +SKIP
    >>> write_predict_report(output, ckpts, inputs, cases, predictor, png_dir, console, command)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from brainsegfounder.inference.writers import write_provenance
from brainsegfounder.report import write_report
from brainsegfounder.report.data import background_of

__all__ = ["write_predict_report"]


def write_predict_report(output: Path, ckpt: list[str], inputs: list[str], cases, predictor, png_dir, console,
                         command: str) -> None:
    """provenance.json (checkpoints, preprocessing, command, versions, date) and report.html.

    Every case's viewer shows its anatomy: the input image of each case (FLAIR, else the first
    modality) is handed to the report, whatever form ``--input`` took (data set root, case
    folders, files).
    """
    record = predictor.record.to_dict() if predictor.record is not None else None
    write_provenance(output, ckpt, record, command, inputs)
    backgrounds = {case.subject_id: path for case in cases if (path := background_of(case.images)) is not None}
    written = write_report(output, scheme=predictor.scheme, overlays=png_dir, backgrounds=backgrounds)
    console.print(f"wrote the report {written.get('report', output / 'report.html')} (anatomy under the labels of "
                  f"{written.get('anatomy', 0)} of {written.get('cases', 0)} case(s))", soft_wrap=True)
