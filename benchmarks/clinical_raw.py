"""Raw clinical studies against the same cases prepared the BraTS way (issue 25's acceptance figures).

::

    python -m benchmarks.clinical_raw --ckpt runs/demo/finetune/version_0/checkpoints/best-step=75.ckpt \\
        --out /tmp/clinical_bench --subjects 2 --seed 7 --source_spacing 2 --spacing 2 --grids clinical

For each synthetic case (``--seed``, new subjects), the generator writes the BraTS-way case and its
raw study (head, clinical grids, known motion, DICOM). Then:

1. ``predict`` on the BraTS-way cases (the data set root);
2. ``predict`` on the raw DICOM studies (prepared on the fly at ``--spacing`` mm);
3. per case: the registration error of every series against the known motion (mean over the
   reference's brain voxels, mm), the brain mask's Dice against the generated brain mask (with the
   method's name), the volumes of both predicts (mL) and their relative difference, and the Dice per
   region between the two label maps on the prepared grid (the BraTS-way labels carried there by the
   known motion region by region: linear interpolation of each region's 0/1 map, kept at 0.5, as
   nnU-Net resamples segmentations; beside it, carried by nearest neighbour, which earlier runs
   reported and which costs a thin region several points by itself). ``--compare_only`` measures a
   finished run's predicts again without predicting.

With ``--diagnose``, two controls per case, to tell the preparation's error from the model's
sensitivity to the voxel grid: ``control_resampled``: the BraTS-way images merely resampled (as
the raw path's preparation recorded: B-spline, or linear before 2026-12-07) onto the prepared grid
through the known motion, predicted and compared with the BraTS-way labels; ``on_brats_grid``: the raw series resampled onto the BraTS-way grid itself (the
found registration chained with the known motion of the reference: an oracle atlas alignment),
skull-stripped by the fallback, predicted and compared there, with volumes.

With ``--floor``, what a perfect model would score: the same subjects generated again at half the
source spacing, their labels standing in for the continuous truth (the generator draws tumours on
the voxel grid, so these are tumours of the same kind, not the source's own): sampled on the
prepared grid (what a perfect model reads off the raw study), against the same labels sampled on
the source grid and carried to the prepared grid (what a perfect BraTS-way prediction becomes there): the Dice and volume agreement that the voxel grids
alone allow. Two label maps on grids a few degrees and a fraction of a voxel apart cannot agree
better than this, whatever the model. Beside it, each predict against the truth: the BraTS-way one
on its own grid, the raw one against the truth carried to the prepared grid (floor included).

With ``--atlas case``, each raw study is prepared onto its own BraTS-way case's grid (``--atlas`` with
that case's skull-stripped T1: as BraTS prepares onto SRI24, the synthetic case's atlas being its own
space), one predict per case into ``pred_raw/by_case/<case_id>``; the two label maps are then compared
voxel for voxel, and the row adds the registration's error onto the case against the known motion.
``--agreement_picture PATH`` draws, for the case whose whole tumour agrees least, the slice where
the two differ most.

``--postprocess largest`` gives both predicts predict's ``--postprocess largest`` (only the largest
connected lesion kept); the controls of ``--diagnose`` predict without it.

With ``--truth``, only the rows against the truth (no floor). Two checkpoints are compared on the same
cases with ``--cases_from`` (the second run links the first run's generated cases and truth) and
``--summarize`` (a Markdown table, one column per run, each the mean over its cases)::

    python -m benchmarks.clinical_raw --ckpt A.ckpt --out /tmp/a --subjects 4 --source_spacing 1 --spacing 1 --truth
    python -m benchmarks.clinical_raw --ckpt B.ckpt --out /tmp/b --cases_from /tmp/a --source_spacing 1 --spacing 1 --truth
    python -m benchmarks.clinical_raw --summarize /tmp/a /tmp/b

Prints one table and writes ``<out>/clinical_raw.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import SimpleITK as sitk

from benchmarks.clinical_raw_report import agreement_picture, picture, raw_folder, summarize
from brainsegfounder.clinical.prepare import load_prepared, resample_series
from brainsegfounder.clinical.truth import dice, registration_errors, truth_on_prepared

CASE_ATLAS = "case"  # --atlas case: each raw study prepared onto its own BraTS-way case's grid


def _volumes(path: Path) -> dict[str, dict[str, float]]:
    with open(path, newline="") as handle:
        return {row["case_id"]: {k: float(v) for k, v in row.items() if k.endswith("_ml")}
                for row in csv.DictReader(handle)}


def measure(ckpt: list[str], out: Path, subjects: int, seed: int, source_spacing: float, spacing: float, grids: str,
            skull_strip: str = "auto", atlas: str | None = None, postprocess: str = "none") -> dict:
    from brainsegfounder.data.layouts import find_cases
    from brainsegfounder.data.synthetic import generate
    from brainsegfounder.predict import predict

    timings = {}
    started = time.perf_counter()
    if not (out / "cases").exists():  # a --cases_from run links earlier cases in
        generate("brats2021", out / "cases", subjects=subjects, seed=seed, spacing=source_spacing, raw=out / "raw",
                 raw_grids=grids)
        timings["generate_s"] = time.perf_counter() - started
    cases = find_cases("brats2021", out / "cases")
    started = time.perf_counter()
    predict(list(ckpt), [str(out / "cases")], str(out / "pred_brats"), device="cpu", postprocess=postprocess)
    timings["predict_brats_s"] = time.perf_counter() - started
    started = time.perf_counter()
    studies = [str(out / "raw" / "dicom" / c.subject_id) for c in cases]
    if atlas == CASE_ATLAS:  # each study onto its own BraTS-way case's grid, the case's T1 the template
        for case, study in zip(cases, studies, strict=True):
            predict(list(ckpt), [study], str(raw_folder(out, case.subject_id, create=True)), device="cpu",
                    spacing=spacing, skull_strip=skull_strip, atlas=str(case.images["t1"]), postprocess=postprocess)
    else:
        predict(list(ckpt), studies, str(out / "pred_raw"), device="cpu", spacing=spacing, skull_strip=skull_strip,
                atlas=atlas, postprocess=postprocess)
    timings["predict_raw_s"] = time.perf_counter() - started
    return compare(out, {"timings_s": {k: round(v, 1) for k, v in timings.items()}, "cases": {}})


def compare(out: Path, results: dict) -> dict:
    """The figures of the module's step 3 from the predicts under ``out``, per case, into ``results``.

    The two label maps lie on grids a few degrees apart: the BraTS-way one is carried onto the prepared
    grid region by region (:func:`~brainsegfounder.clinical.truth.carry_label`, the headline
    ``region_dice_raw_vs_brats``) and, as earlier runs did, by nearest neighbour
    (``region_dice_raw_vs_brats_nearest``, which costs a thin region several points by itself). With
    ``--atlas case`` both lie on the BraTS-way grid and are compared voxel for voxel, and the row adds
    ``atlas_registration_error_mm``: the found registration onto the case against the known motion.
    """
    from brainsegfounder.data.layouts import find_cases
    from brainsegfounder.data.regions import get_scheme

    brats, scheme = _volumes(out / "pred_brats" / "volumes.csv"), get_scheme("brats2021")
    for case in find_cases("brats2021", out / "cases"):
        cid = case.subject_id
        raw = _volumes(raw_folder(out, cid) / "volumes.csv")
        prepared = load_prepared(raw_folder(out, cid) / "prepared" / cid)
        truth = out / "raw" / "truth" / cid
        errors = registration_errors(prepared, truth)
        if _on_grid_of(prepared, case.images["t1"]) and prepared.record.get("atlas"):
            results["cases"].setdefault(cid, {})["atlas_registration_error_mm"] = _atlas_error(prepared, truth, case)
        stripping = prepared.record["skull_strip"]
        brain_dice = None
        if stripping.get("mask"):
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(prepared.folder / stripping["mask"])))
            true_brain = _carried(prepared, truth, case.images["t1"])
            brain_dice = dice(mask, true_brain > 0)
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(raw_folder(out, cid) / f"{cid}.nii.gz")))
        theirs = out / "pred_brats" / f"{cid}.nii.gz"
        volume_diff = {k: (raw[cid][k] - brats[cid][k]) / brats[cid][k] if brats[cid][k] else None for k in brats[cid]}
        results["cases"].setdefault(cid, {}).update({
            "reference": prepared.record["reference"], "registration_error_mm": errors,
            "brain_method": stripping.get("method"), "brain_dice": brain_dice,
            "volumes_brats_ml": brats[cid], "volumes_raw_ml": raw[cid], "volume_relative_difference": volume_diff,
            "region_dice_raw_vs_brats": _regions(scheme, ours, _carried(prepared, truth, theirs, scheme)),
            "region_dice_raw_vs_brats_nearest": _regions(scheme, ours, _carried(prepared, truth, theirs))})
    (out / "clinical_raw.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _carried(prepared, truth: Path, label: Path, scheme=None):
    """A label map of the source grid on the prepared grid (region by region given ``scheme``); as it is
    when the prepared grid is that very grid (``--atlas case``: the raw path put its labels there)."""
    if _on_grid_of(prepared, label):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
    return sitk.GetArrayFromImage(truth_on_prepared(prepared, truth, label, scheme))


def _on_grid_of(prepared, image: Path) -> bool:
    """Whether the prepared grid is ``image``'s voxel grid."""
    import numpy as np

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image))
    reader.ReadImageInformation()
    grid = prepared.record["grid"]
    return (tuple(reader.GetSize()) == tuple(grid["size"]) and np.allclose(reader.GetSpacing(), grid["spacing"])
            and np.allclose(reader.GetOrigin(), grid["origin"], atol=1e-3)
            and np.allclose(reader.GetDirection(), np.ravel(grid["direction"]), atol=1e-6))


def _atlas_error(prepared, truth: Path, case) -> float:
    """Mean distance (mm, over the case's brain) between the found case -> reference registration and the
    known one (the inverse of the reference's motion)."""
    import numpy as np

    from brainsegfounder.clinical.registration import registration_error
    from brainsegfounder.data.geometry import matrix_of, physical_points

    motion = matrix_of(sitk.ReadTransform(str(truth / f"{prepared.record['reference']}_motion.tfm")))
    brain = sitk.ReadImage(str(case.images["t1"]))
    points = physical_points(brain, sitk.GetArrayViewFromImage(brain) > 0)
    return registration_error(matrix_of(prepared.to_reference()), np.linalg.inv(motion), points)


def _regions(scheme, a, b) -> dict[str, float]:
    return {name: dice(x, y) for (name, x), y in zip(scheme.region_masks(a).items(), scheme.region_masks(b).values(),
                                                     strict=True)}


def diagnose(ckpt: list[str], out: Path, results: dict) -> dict:
    """The two controls of the module's text, added to ``results`` per case."""
    from brainsegfounder.clinical.atlas import chain
    from brainsegfounder.clinical.brain import brain_mask
    from brainsegfounder.data.geometry import image_of_geometry
    from brainsegfounder.data.regions import get_scheme
    from brainsegfounder.predict import predict

    scheme, modalities = get_scheme("brats2021"), ("flair", "t1ce", "t1", "t2")
    for cid in results["cases"]:
        prepared, truth = load_prepared(raw_folder(out, cid) / "prepared" / cid), out / "raw" / "truth" / cid
        interpolation = prepared.record.get("interpolation", "linear")  # as the raw path resampled
        motion = sitk.ReadTransform(str(truth / f"{prepared.record['reference']}_motion.tfm"))  # reference -> case
        grid, source = image_of_geometry(prepared.record["grid"]), sitk.ReadImage(str(out / "cases" / cid / f"{cid}_t1.nii.gz"))
        images = {}
        for m in modalities:
            case_image = sitk.ReadImage(str(out / "cases" / cid / f"{cid}_{m}.nii.gz"), sitk.sitkFloat32)
            sitk.WriteImage(resample_series(case_image, grid, chain(prepared.to_reference(), motion), interpolation),
                            str(_folder(out / "resampled" / cid) / f"{cid}_{m}.nii.gz"))
            native = sitk.ReadImage(str(out / "raw" / "nifti" / cid / f"{cid}_{m}.nii.gz"), sitk.sitkFloat32)
            to_series = chain(motion.GetInverse(), prepared.series_transform(m))  # case -> reference -> series
            images[m] = resample_series(native, source, to_series, interpolation)
        mask, _ = brain_mask(images["t1"], "fallback")
        for m, image in images.items():
            sitk.WriteImage(sitk.Mask(image, mask), str(_folder(out / "on_brats_grid" / cid) / f"{cid}_{m}.nii.gz"))
    for name in ("resampled", "on_brats_grid"):
        predict(list(ckpt), [str(out / name)], str(out / f"pred_{name}"), device="cpu")
    volumes = _volumes(out / "pred_on_brats_grid" / "volumes.csv")
    for cid, row in results["cases"].items():
        prepared, truth = load_prepared(raw_folder(out, cid) / "prepared" / cid), out / "raw" / "truth" / cid
        theirs = _carried(prepared, truth, out / "pred_brats" / f"{cid}.nii.gz", scheme)
        resampled = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "pred_resampled" / f"{cid}.nii.gz")))
        brats = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "pred_brats" / f"{cid}.nii.gz")))
        oracle = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "pred_on_brats_grid" / f"{cid}.nii.gz")))
        row["control_resampled_dice"] = _regions(scheme, resampled, theirs)
        row["on_brats_grid_dice"] = _regions(scheme, oracle, brats)
        row["on_brats_grid_volumes_ml"] = volumes[cid]
    (out / "clinical_raw.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def against_truth(out: Path, results: dict) -> dict:
    """Each predict against the generator's truth (``--truth``; ``--floor`` adds it too), per case: the
    BraTS-way one on its own grid, the raw one against the truth carried to the prepared grid."""
    from brainsegfounder.data.regions import get_scheme

    scheme = get_scheme("brats2021")
    for cid, row in results["cases"].items():
        prepared, truth = load_prepared(raw_folder(out, cid) / "prepared" / cid), out / "raw" / "truth" / cid
        label = out / "cases" / cid / f"{cid}_seg.nii.gz"
        truth_here = _carried(prepared, truth, label, scheme)
        brats = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "pred_brats" / f"{cid}.nii.gz")))
        raw = sitk.GetArrayFromImage(sitk.ReadImage(str(raw_folder(out, cid) / f"{cid}.nii.gz")))
        row["brats_vs_truth_dice"] = _regions(scheme, brats, sitk.GetArrayFromImage(sitk.ReadImage(str(label))))
        row["raw_vs_truth_dice"] = _regions(scheme, raw, truth_here)  # the truth carried over: floor included
    (out / "clinical_raw.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def floor(out: Path, results: dict, subjects: int, seed: int, source_spacing: float) -> dict:
    """The perfect model's agreement of the module's text (``--floor``), added to ``results`` per case."""
    import numpy as np

    from brainsegfounder.data.regions import get_scheme
    from brainsegfounder.data.synthetic import generate

    fine_spacing = source_spacing / 2
    if not (out / "fine").is_dir():
        generate("brats2021", out / "fine", subjects=subjects, seed=seed, spacing=fine_spacing)
    scheme = get_scheme("brats2021")
    results = against_truth(out, results)
    for cid, row in results["cases"].items():
        prepared, truth = load_prepared(raw_folder(out, cid) / "prepared" / cid), out / "raw" / "truth" / cid
        # The generator draws its tumours on the voxel grid, so the fine subject's tumour is not the source's:
        # the fine labels are the truth of both sides, sampled on the source grid for the BraTS-way one.
        fine_label = out / "fine" / cid / f"{cid}_seg.nii.gz"
        on_source = sitk.Resample(sitk.ReadImage(str(fine_label)), sitk.ReadImage(str(out / "cases" / cid / f"{cid}_seg.nii.gz")),
                                  sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        sitk.WriteImage(on_source, str(out / "fine" / cid / "seg_on_source_grid.nii.gz"))
        on_source_path = out / "fine" / cid / "seg_on_source_grid.nii.gz"
        ideal, carried = _carried(prepared, truth, fine_label, scheme), _carried(prepared, truth, on_source_path, scheme)
        source = sitk.GetArrayFromImage(on_source)
        voxel_ml = float(np.prod(prepared.record["grid"]["spacing"])) / 1000
        row["floor_truth_spacing_mm"] = fine_spacing
        row["floor_dice"] = _regions(scheme, ideal, carried)
        row["floor_dice_nearest"] = _regions(scheme, _carried(prepared, truth, fine_label),
                                             _carried(prepared, truth, on_source_path))
        row["floor_volume_relative_difference"] = {
            f"{name}_ml": (float(a.sum()) * voxel_ml - float(b.sum()) * source_spacing**3 / 1000)
            / max(float(b.sum()) * source_spacing**3 / 1000, 1e-9)
            for (name, a), b in zip(scheme.region_masks(ideal).items(), scheme.region_masks(source).values(), strict=True)}
    (out / "clinical_raw.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clinical_raw", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", nargs="+", default=[], help="one checkpoint, or several (an ensemble)")
    parser.add_argument("--out", type=Path, help="the folder of this run (all but --summarize)")
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--source_spacing", type=float, default=2.0)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--grids", default="clinical")
    parser.add_argument("--skull_strip", default="auto")
    parser.add_argument("--atlas", default=None, help="prepare the raw studies onto this atlas (mni152 or a file), "
                        "or 'case': each onto its own BraTS-way case's grid, registered to that case's T1 (as BraTS "
                        "registers onto SRI24), compared voxel for voxel")
    parser.add_argument("--postprocess", default="none", help="predict's --postprocess on both sides (none, largest)")
    parser.add_argument("--diagnose", action="store_true", help="also the two controls of the module's text")
    parser.add_argument("--floor", action="store_true", help="also the perfect model's agreement (module's text)")
    parser.add_argument("--floor_only", action="store_true", help="only add the floor to --out's finished figures")
    parser.add_argument("--compare_only", action="store_true", help="only measure --out's finished predicts again "
                        "(no predict; --truth and --floor add their rows)")
    parser.add_argument("--truth", action="store_true", help="also each predict against the generator's truth")
    parser.add_argument("--cases_from", type=Path, help="an earlier --out: link its generated cases (same cases, "
                        "another checkpoint)")
    parser.add_argument("--summarize", type=Path, nargs="+", help="only print a table of these finished --out folders")
    parser.add_argument("--picture", type=Path, help="also draw the first case's native FLAIR with its labels here")
    parser.add_argument("--agreement_picture", type=Path, help="with --atlas case: also draw where the two predicts "
                        "differ most, on the case whose whole tumour agrees least, here")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return 0
    if args.out is None:
        parser.error("--out is required (a folder for this run's cases, predictions and clinical_raw.json)")
    if args.cases_from is not None:
        _folder(args.out)
        for name in ("cases", "raw", "fine"):
            if (args.cases_from / name).is_dir() and not (args.out / name).exists():
                (args.out / name).symlink_to((args.cases_from / name).resolve(), target_is_directory=True)
    if args.floor_only or args.compare_only:  # a finished run's predicts: measured again, or the floor added
        results = json.loads((args.out / "clinical_raw.json").read_text())
        args.floor = args.floor or args.floor_only
        if args.compare_only:
            results = compare(args.out, results)
    else:
        results = measure(args.ckpt, args.out, args.subjects, args.seed, args.source_spacing, args.spacing,
                          args.grids, args.skull_strip, args.atlas, args.postprocess)
    if args.diagnose:
        results = diagnose(args.ckpt, args.out, results)
    if args.truth and not args.floor:
        results = against_truth(args.out, results)
    if args.floor:
        results = floor(args.out, results, args.subjects, args.seed, args.source_spacing)
    if args.picture is not None:
        picture(args.out, next(iter(results["cases"])), args.picture)
    if args.agreement_picture is not None:
        worst = min(results["cases"], key=lambda cid: results["cases"][cid]["region_dice_raw_vs_brats"]["WT"])
        agreement_picture(args.out, worst, args.agreement_picture)
    for cid, row in results["cases"].items():
        errors = ", ".join(f"{m} {e:.2f}" for m, e in row["registration_error_mm"].items())
        print(f"{cid}: registration error (mm, vs reference {row['reference']}): {errors}")
        if "atlas_registration_error_mm" in row:
            print(f"  onto the BraTS-way grid: registration error {row['atlas_registration_error_mm']:.2f} mm")
        if row["brain_dice"] is not None:
            print(f"  brain mask Dice {row['brain_dice']:.4f} ({row['brain_method']})")
        for key, diff in row["volume_relative_difference"].items():
            print(f"  {key}: BraTS-way {row['volumes_brats_ml'][key]:.2f}, raw DICOM {row['volumes_raw_ml'][key]:.2f}"
                  f" ({100 * diff:+.1f}%)" if diff is not None else f"  {key}: empty")
        for key, title in (("region_dice_raw_vs_brats", "Dice raw vs BraTS-way"),
                           ("region_dice_raw_vs_brats_nearest", "the same, carried by nearest neighbour"),
                           ("control_resampled_dice", "control: BraTS-way resampled onto the prepared grid vs BraTS-way"),
                           ("on_brats_grid_dice", "raw prepared on the BraTS-way grid vs BraTS-way"),
                           ("floor_dice", "a perfect model's floor (the grids alone)"),
                           ("floor_dice_nearest", "the floor, carried by nearest neighbour"),
                           ("brats_vs_truth_dice", "BraTS-way predict vs the truth"),
                           ("raw_vs_truth_dice", "raw predict vs the truth on the prepared grid")):
            if key in row:
                print(f"  {title}: " + ", ".join(f"{k} {v:.4f}" for k, v in row[key].items()))
        if "on_brats_grid_volumes_ml" in row:
            print("  volumes on the BraTS-way grid (mL): " + ", ".join(
                f"{k} {v:.2f} ({100 * (v - row['volumes_brats_ml'][k]) / row['volumes_brats_ml'][k]:+.1f}%)"
                for k, v in row["on_brats_grid_volumes_ml"].items()))
        if "floor_volume_relative_difference" in row:
            print("  a perfect model's volume difference: " + ", ".join(
                f"{k} {100 * v:+.1f}%" for k, v in row["floor_volume_relative_difference"].items()))
    print(f"timings: {results['timings_s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
