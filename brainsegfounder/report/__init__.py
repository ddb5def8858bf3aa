"""One offline HTML page per run: case table, per-case viewers, volumes over time, provenance.

``python -m brainsegfounder.report --predictions runs/preds --inputs data/brats --out report.html``
or, from Python (what ``predict --report`` and ``evaluate --report`` call):

    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for session, side in (("ses-1", 10), ("ses-2", 12)):
    ...     label = np.zeros((24, 24, 24), np.uint8); label[2:2 + side, 2:12, 2:12] = 1
    ...     nib.save(nib.Nifti1Image(label, np.eye(4)), folder / f"sub-01_{session}.nii.gz")
    >>> summary = write_report(folder, out=folder / "report.html", scheme="lesion", viewers=False)
    >>> summary["cases"], summary["subjects_followed"]
    (2, 1)
    >>> (folder / "longitudinal.csv").read_text().splitlines()[2]
    'sub-01,ses-2,sub-01_ses-2,1.2,0.2,20.0'

The rooms: :mod:`~brainsegfounder.report.data` gathers what ``predict`` wrote (through
:mod:`brainsegfounder.inference.writers`, which owns those names), :mod:`~brainsegfounder.report.page`
and :mod:`~brainsegfounder.report.viewer` draw the page, :mod:`~brainsegfounder.report.longitudinal`
follows subjects over time, and :mod:`~brainsegfounder.report.overlays` draws the PNG overlays that
``predict --png``, ``evaluate --png`` and the training callback write.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from brainsegfounder.report.longitudinal import subject_and_timepoint

__all__ = ["write_report", "subject_and_timepoint"]


def write_report(predictions: str | Path, out: str | Path | None = None, inputs: str | Path | None = None,
                 metrics: str | Path | None = None, scheme: str = "brats2021", overlays: str | Path | None = None,
                 background: str | None = None, checkpoints: Sequence[str] | None = None,
                 command_line: str | None = None, title: str | None = None, viewers: bool = True,
                 max_side: int = 128, backgrounds: Mapping[str, str | Path] | None = None) -> dict:
    """Write the report of a predictions folder; returns what it wrote (paths, counts, bytes, seconds).

    ``anatomy`` in the result counts the cases whose viewer shows an input image under the labels;
    ``native_series`` the pictures of raw studies' own series (:mod:`~brainsegfounder.report.native`).

    Args:
        predictions: predict's ``--output`` folder (``<case_id>.nii.gz``, ``volumes.csv``).
        out: the HTML file; default ``<predictions>/report.html``.
        inputs: the data root predict read (any registered layout, one case folder or a folder of
            case folders), for the viewer's background image: the case's anatomy (optional).
        metrics: evaluate's CSV (its ``<stem>_summary.json`` is read too).
        scheme: label scheme name or YAML/JSON file (region names, legend and colours).
        overlays: folder of ``<case_id>.png`` overlays (predict/evaluate ``--png``); the
            predictions folder is searched too.
        background: modality shown under the labels (default: FLAIR, else the first found).
        checkpoints: checkpoint(s) of the run, when ``provenance.json`` does not list them.
        command_line: the command that made the predictions, likewise.
        title: page title; default: the predictions folder's name.
        viewers: embed an interactive slice viewer per case (off: tables and overlays only).
        max_side: the viewer's longest side in voxels (larger volumes are downsampled).
        backgrounds: ``{case id: image}`` shown under each case's labels, ahead of what ``inputs``
            finds (``predict --report`` hands over each case's FLAIR or first modality, whatever
            form its ``--input`` took).
    """
    import nibabel as nib

    from brainsegfounder.data.regions import get_scheme
    from brainsegfounder.inference import writers
    from brainsegfounder.report import data, longitudinal
    from brainsegfounder.report.page import render_page

    start = time.perf_counter()
    predictions = Path(predictions).expanduser()
    out = Path(out) if out is not None else predictions / "report.html"
    scheme = get_scheme(scheme)
    cases = data.gather_cases(predictions, scheme, overlays)
    by_id = {c.case_id: c for c in cases}
    sessions: dict = {}
    if inputs is not None:
        backgrounds, sessions = data.find_backgrounds(inputs, list(by_id), background)
        for case_id, path in backgrounds.items():
            by_id[case_id].background = path
        for case_id, (subject, timepoint) in sessions.items():
            if case_id in by_id:
                by_id[case_id].subject, by_id[case_id].timepoint = subject, timepoint
    for case_id, path in (backgrounds or {}).items():
        if case_id in by_id and path is not None:
            by_id[case_id].background = Path(path)
    for case in cases:  # a raw study's prepared images (what the network saw), when nothing else was found
        if case.background is None and (predictions / "prepared" / case.case_id).is_dir():
            from brainsegfounder.clinical.prepare import load_prepared

            case.background = data.background_of(load_prepared(predictions / "prepared" / case.case_id).images)
    for case in cases:  # the voxel size, to give HD95 measured in voxels in mm
        case.spacing = tuple(float(z) for z in nib.load(str(case.label)).header.get_zooms()[:3])
    summary = None
    metric_columns: list[str] = []
    if metrics is not None:
        table, summary = data.read_metrics(metrics)
        for case_id, row in table.items():
            if case_id in by_id:
                by_id[case_id].metrics = row
        metric_columns = list(next(iter(table.values()), {}))
    volume_columns = list(cases[0].volumes) or writers.volume_columns(scheme)
    extra_columns = [c for c in cases[0].extra]
    values = {c.case_id: {k: float(v) for k, v in c.volumes.items()} for c in cases}
    rows = longitudinal.longitudinal_rows(values, volume_columns, {c.case_id: (c.subject, c.timepoint) for c in cases})
    followed: dict[str, list[dict]] = {}
    for row in rows:
        followed.setdefault(row["subject"], []).append(row)
    colours = {f"{scheme.names[i]}_ml": scheme.legend.get(v, ("", "#333"))[1] for i, v in scheme.paint}
    plots = {s: longitudinal.volume_plot_svg(r, volume_columns, colours) for s, r in followed.items()}
    written = [out]
    if rows:
        written.append(longitudinal.write_longitudinal_csv(rows, volume_columns, out.parent / "longitudinal.csv"))
    views: dict[str, str] = {}
    libraries: list[str] = []
    if viewers:
        from brainsegfounder.report.viewer import case_view_html, encode_inline, share_libraries

        for case in cases:
            view = share_libraries(case_view_html(case.label, scheme, case.background, max_side), libraries)
            views[case.case_id] = encode_inline(view)
        libraries = [encode_inline(text) for text in libraries]
    record = data.provenance(predictions, checkpoints, command_line)
    natives, native_count = _natives(predictions, cases, scheme)
    notes = _notes(cases, extra_columns, metric_columns, record)
    page = render_page(title=title or f"BrainSegFounder report: {predictions.name}", cases=cases, scheme=scheme,
                       volume_columns=volume_columns, extra_columns=extra_columns, metric_columns=metric_columns,
                       views=views, overlays={c.case_id: c.overlay.read_bytes() for c in cases if c.overlay},
                       longitudinal=followed, plots=plots, summary=summary, record=record,
                       libraries=libraries, notes=notes, natives=natives)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)  # atomic: a reader never sees half a page
    return {"report": str(out), "files": [str(p) for p in written], "cases": len(cases),
            "anatomy": sum(c.background is not None for c in cases), "native_series": native_count,
            "subjects_followed": len(followed), "bytes": out.stat().st_size,
            "seconds": round(time.perf_counter() - start, 2)}


def _natives(predictions: Path, cases, scheme) -> tuple[dict[str, str], int]:
    """Per case prepared from a raw study, the block of its own series (:mod:`~brainsegfounder.report.native`),
    and how many series pictures were drawn."""
    from brainsegfounder.report.native import native_html, native_pictures

    blocks, count = {}, 0
    for case in cases:
        pictures = native_pictures(predictions, case.case_id, scheme)
        if pictures is not None:
            count += len(pictures) if isinstance(pictures, list) else 0
            blocks[case.case_id] = native_html(pictures, case.extra.get("volumes_on") or None)
    return blocks, count


def _notes(cases, extra_columns, metric_columns, record) -> list[tuple[str, str]]:
    """What the reader must know before the numbers: how the flag was set (and on how few cases),
    that an uncalibrated model gives no expected Dice, that HD95 in voxels is shown in mm."""
    from brainsegfounder.inference.calibration import MIN_THRESHOLD_CASES, NOT_CALIBRATED, flag_rule

    notes = []
    facts = record.get("checkpoint_facts") or []
    reviewed = "expected_dice" in extra_columns or "review" in extra_columns
    if reviewed and any(f.get("calibrated") is False for f in facts):
        notes.append(("note warn", f"{NOT_CALIBRATED[0].upper()}{NOT_CALIBRATED[1:]}."))
    flagged = [f for f in facts if f.get("flag_below") is not None]
    if reviewed and flagged and "--flag_below" not in str(record.get("command", "")):
        # The ensemble flags at the most lenient member's threshold, as predict does.
        fact = min(flagged, key=lambda f: f["flag_below"])
        cases_fitted = fact.get("flag_cases")
        rough = cases_fitted is None or cases_fitted < MIN_THRESHOLD_CASES
        flagged_count = sum(str(c.extra.get("flag", "")).strip() == "1" for c in cases)
        notes.append(("note warn" if rough else "note",
                      f"Flagged for review first ({flagged_count} of {len(cases)}): "
                      f"{flag_rule(fact['flag_below'], cases_fitted)}. The review column says why."))
    if any(c.startswith("hd95_vox_") for c in metric_columns):
        notes.append(("note", "HD95 of the BraTS 2021 rules is measured in voxels; it is shown in mm "
                              "(voxels x the voxel side) for cases with cubic voxels."))
    return notes
