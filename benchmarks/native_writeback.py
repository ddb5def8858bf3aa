"""What writing labels back onto each series' own grid costs by itself, nearest neighbour vs region by region.

::

    python -m benchmarks.clinical_raw --ckpt B.ckpt --out /tmp/bench --subjects 4 --source_spacing 1 --spacing 1 --floor
    python -m benchmarks.native_writeback --out /tmp/bench

For each case of a finished ``clinical_raw --floor`` run (it holds the raw studies, the prepared
cases and the same subjects drawn at half the spacing, ``fine/``): the fine label map stands in
for the continuous truth. Carried onto the prepared grid, it is what a perfect model would write
there; :func:`~brainsegfounder.clinical.native.native_labels` then puts it on every series' own grid,
by nearest neighbour and region by region (predict's way), and each is compared with the fine labels
sampled straight onto that grid (nearest neighbour, so the truth favours neither method). The
reference series is the prepared grid itself at 1 mm: there both agree exactly.

Prints one line per case and series (Dice TC / WT / ET) and writes ``<out>/native_writeback.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import SimpleITK as sitk

from brainsegfounder.clinical.atlas import chain
from brainsegfounder.clinical.native import carry_label
from brainsegfounder.clinical.prepare import load_prepared
from brainsegfounder.clinical.truth import dice
from brainsegfounder.data.geometry import image_of_geometry
from brainsegfounder.data.regions import get_scheme


def measure(out: Path) -> dict:
    """``{case: {series: {"spacing_mm", "nearest", "regions"}}}`` (Dice per region) for the run in ``out``."""
    scheme, figures = get_scheme("brats2021"), {}
    for folder in sorted((out / "pred_raw" / "prepared").iterdir()):
        cid, case = folder.name, load_prepared(folder)
        fine = out / "fine" / cid / f"{cid}_seg.nii.gz"
        if not fine.is_file():
            raise SystemExit(f"{fine} is missing: run benchmarks.clinical_raw with --floor (or --floor_only) on {out} first.")
        to_world = sitk.ReadTransform(str(out / "raw" / "truth" / cid / f"{case.record['reference']}_motion.tfm"))
        prepared_to_source = chain(case.to_reference(), to_world)
        label = sitk.ReadImage(str(fine))
        perfect = carry_label(label, image_of_geometry(case.record["grid"]), prepared_to_source, scheme)
        figures[cid] = {}
        for modality, info in case.record["series"].items():
            grid, to_prepared = image_of_geometry(info["native_grid"]), case.transform(modality).GetInverse()
            truth = scheme.region_masks(sitk.GetArrayFromImage(carry_label(label, grid, chain(to_prepared,
                                                                                             prepared_to_source))))
            row = {"spacing_mm": list(grid.GetSpacing())}
            for name, how in (("nearest", None), ("regions", scheme)):
                written = scheme.region_masks(sitk.GetArrayFromImage(carry_label(perfect, grid, to_prepared, how)))
                row[name] = {region: dice(written[region], truth[region]) for region in truth}
            figures[cid][modality] = row
    (out / "native_writeback.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.native_writeback", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a finished `benchmarks.clinical_raw --floor` folder")
    args = parser.parse_args(argv)
    for cid, series in measure(args.out).items():
        for modality, row in series.items():
            spacing = " x ".join(f"{s:g}" for s in row["spacing_mm"])
            print(f"{cid} {modality} ({spacing} mm): nearest neighbour "
                  + " / ".join(f"{v:.3f}" for v in row["nearest"].values())
                  + ", region by region " + " / ".join(f"{v:.3f}" for v in row["regions"].values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
