"""Segment new scans with trained checkpoints: NIfTI in, NIfTI out on the input's own voxel grid.

::

    python -m brainsegfounder.predict --ckpt runs/brats/fold0.ckpt --ckpt runs/brats/fold1.ckpt \\
        --input /data/BraTS2021_Validation --output runs/predictions --png runs/overlays

``--input`` is one of:

- a data set root in any registered layout (``brainsegfounder.data.layouts.LAYOUTS``: BraTS 2021,
  BraTS 2023, and whatever other readers register);
- one case folder (its files are matched to the checkpoint's modalities by their name endings,
  ``..._flair.nii.gz``; the case id is the folder's name);
- the image files of one case, one per modality, in the checkpoint's modality order
  (``--input a_flair.nii.gz a_t1ce.nii.gz a_t1.nii.gz a_t2.nii.gz``).

Each case is preprocessed as training did (canonical RAS, the training spacing and crop if any,
padding, z-score over the brain), segmented by MONAI Gaussian sliding-window inference (several
``--ckpt`` form an ensemble: the mean of their probabilities; ``--tta`` adds the mean over the
8 mirrorings), and its probabilities are mapped back onto the input's exact grid (same shape,
affine and orientation) before thresholding. The label convention comes from the checkpoint's
region scheme: BraTS 2021 writes 1 (NCR), 2 (ED), 4 (ET); BraTS 2023 1, 2, 3; a lesion task 1.

Outputs in ``--output``: ``<case_id>.nii.gz`` (what ``brainsegfounder.evaluate`` pairs on),
``probabilities/<case_id>.nii.gz`` with ``--probabilities`` (one channel per region, 0..1 stored in
8 bits), ``volumes.csv`` (mL per region and case) and with ``--png DIR`` one overlay per case.
Before the first case is predicted every voxel of every input is read: a truncated or corrupt file,
NaN/Inf voxels (unless ``--non_finite zero``) or a constant modality stops the run, naming the
file. Files are written under a temporary name and renamed; the output may not lie inside an input
folder or an input case folder's data set root; nothing existing is replaced without
``--overwrite``, and cases already written are skipped (only files that ``.brainsegfounder.json``
vouches for), so an interrupted run resumes where it stopped. See docs/predict.md, "Safety".

The work is done by :mod:`brainsegfounder.inference` (inputs, predictor, writers); this module is
the command. From Python, see :mod:`brainsegfounder.inference.predictor`, or:

>>> from brainsegfounder.predict import predict  # doctest: +SKIP
>>> volumes = predict(["fold0.ckpt"], ["/data/BraTS2021_00000"], "runs/pred", device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from brainsegfounder.utils.cli import command, shell_style
from brainsegfounder.utils.errors import ConfigError

__all__ = ["main", "predict"]

#: Options that take several values (``--ckpt a.ckpt b.ckpt``, or repeated).
_LISTS = ("--ckpt", "--input", "--series")
#: Options that may be given bare (``--tta``) as well as ``--tta true``.
_FLAGS = ("--probabilities", "--overwrite", "--tta", "--uncertainty", "--fast", "--report", "--preprocess")
_PROG = "python -m brainsegfounder.predict"


def __getattr__(name: str):
    # The names this module exported before the inference package existed, imported on first use.
    if name in ("PROBABILITY_FOLDER", "VOLUMES_FILE"):
        from brainsegfounder.inference import writers

        return getattr(writers, name)
    if name in ("CasePrediction", "Predictor", "find_inputs"):
        from brainsegfounder import inference

        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def predict(
    ckpt: list[str],
    input: list[str],
    output: str,
    probabilities: bool = False,
    png: str | None = None,
    overwrite: bool = False,
    tta: bool = False,
    overlap: float | None = None,
    sw_batch_size: int | None = None,
    roi_size: int | None = None,
    threshold: float | None = None,
    device: str = "auto",
    precision: str = "32",
    layout: str | None = None,
    modalities: list[str] | str | None = None,
    non_finite: str = "refuse",
    uncertainty: bool = False,
    flag_below: float | None = None,
    flag_threshold: float | None = None,
    fast: bool = False,
    engine: str = "torch",
    postprocess: str = "none",
    report: bool = False,
    preprocess: bool = False,
    series: list[str] | None = None,
    skull_strip: str = "auto",
    spacing: float | None = None,
    reference: str | None = None,
    atlas: str | None = None,
    interpolation: str = "bspline",
    console=None,
) -> dict[str, dict[str, float]]:
    """Segment NIfTI scans (or raw DICOM studies) with trained BrainSegFounder checkpoints, on each input's own grid.

    Returns the volumes (mL per region) of every case in ``volumes.csv``, by case id.

    Args:
        ckpt: segmentation checkpoint(s); several (``--ckpt a.ckpt b.ckpt`` or repeated) form an
            ensemble, e.g. the 5 folds.
        input: a data set root in any supported layout, one case folder, or one case's files in the
            checkpoint's modality order.
        output: folder for <case_id>.nii.gz, volumes.csv and probabilities/.
        probabilities: also write probabilities/<case_id>.nii.gz.
        png: folder for one overlay picture per case.
        overwrite: predict cases again and replace their files.
        tta: average over the 8 mirrorings (8x slower).
        overlap: sliding-window overlap (default: the checkpoint's).
        sw_batch_size: windows per forward pass (default: 1 on a CPU, where a batch only costs memory; the checkpoint's on a GPU).
        roi_size: window side in voxels (default: the checkpoint's).
        threshold: region probability threshold (default: the checkpoint's, usually 0.5).
        device: auto, cpu or cuda.
        precision: 32, or bf16 (autocast, for GPUs).
        layout: force a data set layout (default: detect).
        modalities: modality names in channel order, for checkpoints that do not record them; for
            checkpoints that do, a subset (``--modalities t1,flair``) predicts as if the others were
            missing (needs a checkpoint trained with modality dropout).
        non_finite: NaN/Inf voxels in an input: refuse (stop before predicting, naming the file and
            the count) or zero (replace them by 0, say so, and count them in volumes.csv).
        uncertainty: also write uncertainty/<case_id>_entropy.nii.gz (and _variance with several
            checkpoints or --tta) and add the expected_dice, flag and review columns to volumes.csv
            (expected Dice: higher = better; only for checkpoints calibrated by brainsegfounder.calibrate,
            else review says "not calibrated").
        flag_below: flag cases whose expected Dice is below this, 0..1 (default: the threshold stored by
            brainsegfounder.calibrate, if any); needs calibrated checkpoints.
        flag_threshold: replaced by --flag_below (the old quality score was 1 - expected Dice:
            --flag_threshold 0.3 is --flag_below 0.7).
        fast: the sliding window at overlap 0.25 on the brain's own box (not the cropped volume's
            grid): fewer windows where the brain spans several, not identical labels. At the
            demo's 2 mm grid it runs the same windows as the default (measured: same labels, 72 vs
            74 s for 3 cases); docs/export.md has the full-size figures and the accuracy cost.
        engine: torch, or onnxruntime (the network run by ONNX Runtime on the CPU: same windows,
            labels identical in the benchmarks; measured 1.1-1.2x faster on 2 CPU cores (67 vs
            74 s for 3 demo cases, 137 vs 165 s for one full-size case); needs the onnx and
            onnxruntime packages).
        postprocess: none, or largest: keep only the largest connected lesion, all labels as one (nnU-Net's
            rule; for one-lesion diseases such as glioma, never for stroke, metastases or MS). Removes
            islands of false oedema far from the tumour; measured in docs/clinical.md. auto: the rule the
            checkpoint's own validation chose (fit stores it for tumour schemes: largest where it raised
            the mean Dice; none for older checkpoints and one-region lesion tasks), said in one line.
        report: also write provenance.json and the offline HTML report (report.html) into --output.
        preprocess: prepare every input (a study folder: DICOM files, or one NIfTI file per series, each
            on its own grid, skull on) as the model was trained before predicting (docs/clinical.md);
            a DICOM study folder is always prepared. The prepared cases go to <output>/prepared/, label
            maps on every series' own grid to <output>/native/, a DICOM SEG to <output>/dicom_seg/.
        series: MODALITY=SERIES for a series that is not recognised, or to choose between two (a
            SeriesInstanceUID, series number or exact description); repeatable.
        skull_strip: when preparing: auto (extract the brain when the images are not skull-stripped), yes, no.
        spacing: when preparing: the prepared grid's voxel size in mm (default: the checkpoint's
            training spacing, else 1 mm).
        reference: when preparing: the modality every series is registered to (default: the finest series).
        atlas: when preparing: ``mni152`` or a brain-only T1 template file: prepare onto that atlas
            (rigid; docs/clinical.md); default the reference series' own frame.
        interpolation: when preparing: how series are resampled onto the prepared grid, bspline
            (cubic, the default) or linear.
        console: a rich Console for messages (Python use; default: stderr).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brainsegfounder.evaluation.postprocessing import islands_note
    from brainsegfounder.inference import writers
    from brainsegfounder.inference.input_checks import check_existing, check_inputs
    from brainsegfounder.inference.inputs import find_inputs
    from brainsegfounder.inference.predictor import Predictor
    from brainsegfounder.inference.review import flag_rule_of, review_columns

    if non_finite not in ("refuse", "zero"):
        raise ConfigError(f"--non_finite {non_finite!r}: choose refuse (the default) or zero.")
    if flag_threshold is not None:
        raise ConfigError(f"--flag_threshold (a quality score, higher = worse) is now --flag_below, an expected "
                          f"Dice (higher = better): --flag_threshold {flag_threshold:g} flagged what "
                          f"--flag_below {1 - flag_threshold:g} flags.")
    if flag_below is not None and not 0.0 <= flag_below <= 1.0:
        raise ConfigError(f"--flag_below {flag_below:g}: an expected Dice lies between 0 and 1.")
    console = console or Console(stderr=True)
    output = Path(output).expanduser()
    predictor = Predictor.from_checkpoints(list(ckpt), device=device, tta=tta, overlap=overlap,
                                           sw_batch_size=sw_batch_size, roi_size=roi_size,
                                           threshold=threshold, precision=precision, modalities=modalities,
                                           fast=fast, engine=engine, postprocess=postprocess)
    if postprocess == "auto":
        console.print(f"--postprocess auto: {predictor.postprocess} ({escape(predictor.postprocess_reason)})",
                      soft_wrap=True)
    postprocess = predictor.postprocess  # the rule applied
    cutoff, flag_cases, flag_source = flag_rule_of(predictor, flag_below, uncertainty, console)  # may refuse
    prepared = {c.case_id: c for c in _prepare(input, output, predictor, preprocess, series, skull_strip, spacing,
                                                 reference, overwrite, console, atlas, interpolation)}
    case_inputs = [str(c.folder) for c in prepared.values()] or input
    cases = find_inputs(case_inputs, predictor.modalities, predictor.in_channels, layout or None, allow_missing=True)
    missing = {case.subject_id: predictor.check_case(case) for case in cases}  # refuses up front
    png_dir = Path(png).expanduser() if png is not None else None
    writers.check_output(output, [Path(p) for p in input], cases)
    if png_dir is not None:
        writers.check_output(png_dir, [Path(p) for p in input], cases)
    writers.ensure_writable(output)
    non_finite_counts = check_inputs(cases, predictor, non_finite, console)

    columns = [f"{name}_ml" for name in predictor.scheme.names]
    columns += ["non_finite_voxels"] if non_finite == "zero" else []
    columns += ["missing_modalities"] if predictor.accepts_missing or predictor.subset else []
    columns += ["expected_dice", "flag", "review"] if uncertainty else []
    columns += ["volumes_on", "thick_slices"] if prepared else []
    volumes_path = output / writers.VOLUMES_FILE
    # This run's own temporary folder: other predicts into the same --output use their own.
    partial_root = output / writers.PARTIAL_FOLDER
    partial_dir = partial_root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    writers.read_volumes(volumes_path, columns, overwrite)  # refuses another task's table before any work
    record = writers.OutputRecord(output)

    def targets(case_id: str) -> list[Path]:
        paths = [output / f"{case_id}.nii.gz"]
        if probabilities:
            paths.append(output / writers.PROBABILITY_FOLDER / f"{case_id}.nii.gz")
        if png_dir is not None:
            paths.append(png_dir / f"{case_id}.png")
        if uncertainty:
            paths.append(output / writers.UNCERTAINTY_FOLDER / f"{case_id}_entropy.nii.gz")
        return paths

    # Files written under another --postprocess are not this run's: the rule is part of what they came from.
    rule = "" if postprocess == "none" else f" postprocess={postprocess}"
    digests = {c.subject_id: writers.inputs_digest(c) + rule for c in cases}
    if not overwrite:
        check_existing(cases, targets, record, digests)
    todo = [c for c in cases if overwrite or not all(p.exists() for p in targets(c.subject_id))]
    skipped = [c for c in cases if c not in todo]
    columns_progress = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    volumes: dict[str, dict] = {}
    try:
        if probabilities:
            (output / writers.PROBABILITY_FOLDER).mkdir(exist_ok=True)
        if uncertainty:
            (output / writers.UNCERTAINTY_FOLDER).mkdir(exist_ok=True)
        with Progress(*columns_progress, console=console, transient=True) as progress:
            task = progress.add_task("predicting", total=len(todo))
            for number, case in enumerate(todo, start=1):
                sid = case.subject_id
                started = time.perf_counter()
                progress.update(task, description=f"predicting {escape(sid)}")
                label_path, *_ = paths = targets(sid)
                result = predictor.predict_case(case, keep_image=png_dir is not None, uncertainty=uncertainty)
                if result.missing:
                    console.print(f"{escape(sid)}: predicted without {', '.join(result.missing)} (given as "
                                  "missing to a model trained with modality dropout)", soft_wrap=True)
                if postprocess == "none" and predictor.scheme.num_regions > 1:  # tumours: one lesion expected
                    if note := islands_note(result.label, result.spacing, sid):
                        console.print(escape(note), soft_wrap=True)
                staged = writers.StagedFiles(partial_dir)
                try:
                    for path in paths:
                        if path.suffix == ".png" or (path.exists() and not overwrite):
                            continue  # pictures after the commit; a file of an earlier run (vouched for): kept
                        if path == label_path:
                            writers.write_label(result, path, staged)
                        elif path.parent.name == writers.UNCERTAINTY_FOLDER:
                            writers.write_uncertainty(result, path.parent, staged)
                        else:
                            writers.write_probabilities(result, path, staged)
                    row = writers.region_volumes(result.label, predictor.scheme, result.spacing)
                    if non_finite == "zero":
                        row["non_finite_voxels"] = non_finite_counts.get(sid, 0)
                    if "missing_modalities" in columns:
                        row["missing_modalities"] = "+".join(missing[sid])
                    if sid in prepared:
                        from brainsegfounder.clinical.prepare import thick_series

                        row["volumes_on"] = prepared[sid].record["volumes_on"]
                        row["thick_slices"] = "; ".join(f"{m} {mm:g} mm" for m, mm in thick_series(prepared[sid].record).items())
                    if uncertainty:
                        row.update(review_columns(result, predictor.calibrated, cutoff, flag_cases, flag_source))
                    # Files, record entries and the volumes row go in together, merged with what other
                    # runs into this folder wrote meanwhile (one writer at a time: writers.output_lock).
                    volumes = writers.commit_case(output, staged, sid, digests[sid], row, columns, overwrite)
                finally:
                    staged.discard()
                png_path = png_dir / f"{sid}.png" if png_dir is not None else None
                if png_path is not None and (overwrite or not png_path.exists()):
                    from brainsegfounder.report.overlays import write_overlay

                    png_path.parent.mkdir(parents=True, exist_ok=True)
                    write_overlay(result, predictor.scheme, png_path)  # matplotlib only here
                if sid in prepared:  # labels on every series' own grid, and a DICOM SEG
                    from brainsegfounder.clinical.native import write_back

                    legend = {value: name for value, (name, _) in predictor.scheme.legend.items()}
                    write_back(prepared[sid], label_path, output, legend, overwrite=overwrite, scheme=predictor.scheme)
                progress.advance(task)
                if not console.is_terminal:  # a log file (a batch job) sees no bar: one line per case
                    sizes = ", ".join(f"{n.upper()} {row[f'{n}_ml']:.1f} mL" for n in predictor.scheme.names)
                    console.print(f"{number}/{len(todo)} {escape(sid)}: {sizes} "
                                  f"({time.perf_counter() - started:.0f} s)", highlight=False, soft_wrap=True)
        with writers.output_lock(output):
            volumes = writers.read_volumes(volumes_path, columns, overwrite)
            unlisted = [c.subject_id for c in skipped if c.subject_id not in volumes]
            for sid in unlisted:  # predicted by a run that stopped before its table was written
                volumes[sid] = writers.volumes_from_file(output / f"{sid}.nii.gz", predictor.scheme)
            if unlisted or not volumes_path.exists():
                writers.write_volumes(volumes_path, volumes, columns, partial_dir)
    except OSError as err:  # a folder that could not be made (the file writes say their own)
        raise writers.write_error(output, err) from None
    finally:
        shutil.rmtree(partial_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            partial_root.rmdir()  # only when empty: another run into this folder may be using it

    if skipped:
        console.print(f"skipped {len(skipped)} case(s) already predicted in {output} "
                      "(pass --overwrite to predict them again)", soft_wrap=True)
    console.print(f"wrote {len(todo)} prediction(s) to {output} and volumes to {volumes_path}"
                  + (f", overlays to {png_dir}" if png_dir is not None else "")
                  + (f"; labels on each series' own grid to {output / 'native'}" if prepared else ""), soft_wrap=True)
    if report:
        from brainsegfounder.report.predicted import write_predict_report

        write_predict_report(output, list(ckpt), list(input), cases, predictor, png_dir, console,
                             " ".join(["python -m brainsegfounder.predict", *sys.argv[1:]]))
    return volumes


def _prepare(inputs, output: Path, predictor, preprocess: bool, series, skull_strip: str, spacing, reference,
             overwrite: bool, console, atlas: str | None = None, interpolation: str = "bspline") -> list:
    """The prepared cases of the DICOM studies among ``inputs`` (all inputs with ``--preprocess``)."""
    from brainsegfounder.clinical.batch import prepare_many, studies_in, training_spacing
    from brainsegfounder.clinical.modalities import parse_overrides
    from brainsegfounder.inference import writers

    studies = studies_in(inputs, preprocess)
    if not studies:
        if series:
            raise ConfigError("--series names the series of a DICOM study (or of --preprocess inputs); these inputs "
                              "are prepared cases.")
        return []
    if not predictor.modalities:
        raise ConfigError("this checkpoint does not record its modalities: pass --modalities flair,t1ce,t1,t2.")
    writers.check_output(output, studies, [])
    writers.ensure_writable(output)
    return prepare_many(studies, output / "prepared", predictor.modalities, training_spacing(predictor.spacing, spacing),
                        skull_strip, parse_overrides(series, predictor.modalities), reference,
                        allow_missing=predictor.accepts_missing, overwrite=overwrite, atlas=atlas,
                        interpolation=interpolation, say=lambda line: console.print(line, soft_wrap=True, highlight=False, markup=False))


def _command_line():
    """``predict`` as the parser sees it: every option but ``console`` (a Python-only argument)."""
    import inspect

    signature = inspect.signature(predict, eval_str=True)

    def run(**options):
        return predict(**options)

    run.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "console"])
    run.__doc__ = predict.__doc__.split("        console:")[0]
    run.__name__ = "predict"
    return run


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 for a problem with the inputs or the checkpoints)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        command(_command_line(), shell_style(argv, _LISTS, _FLAGS), prog=_PROG)
    except SystemExit as done:  # --help, a parser error, or a BrainSegFounderError (exit 2)
        return done.code if isinstance(done.code, int) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
