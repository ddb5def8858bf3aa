"""Real short fits: ATLAS (binary lesion, lesion-wise F1) and a lab's own data through a manifest."""

import csv
from pathlib import Path

import nibabel as nib
import numpy as np

from brainsegfounder.fit import main as fit_main
from tests.conftest import REPO

DEMO_ATLAS = REPO / "experiments" / "demo_atlas.yaml"
SHORT = ["--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.num_sanity_val_steps=0",
         "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
         "--data.init_args.batch_size=1", "--data.init_args.samples_per_volume=1",
         "--data.init_args.queue_length=2", "--data.init_args.n_folds=2", "--data.init_args.test_fold=null"]


def _logged(log_dir: Path) -> set[str]:
    rows = list(csv.DictReader(open(log_dir / "metrics.csv")))
    return {k for row in rows for k, v in row.items() if v}


def test_short_atlas_fit_logs_dice_and_lesion_f1(atlas_root, tmp_path):
    cli = fit_main(["--config", str(DEMO_ATLAS), f"--data.init_args.root={atlas_root}",
                    f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                    *SHORT])
    assert cli.model.hparams.in_channels == 1 and cli.model.region_names == ("lesion",)
    assert {"val/dice_lesion", "val/dice_mean", "val/lesion_f1", "train/loss"} <= _logged(
        tmp_path / "finetune" / "version_0")
    f1 = cli.best_metrics["val/lesion_f1"]
    assert 0.0 <= f1 <= 1.0 and cli.best_metrics["val/dice_lesion"] == cli.best_metrics["val/dice_mean"]


def _lab_data(brats2023_root: Path, dest: Path) -> Path:
    """Rename modalities and relabel 1/2/3 -> 10/20/30, in a folder structure no layout knows."""
    lines = ["subject_id,t1_gd,flair_3d,label"]
    for folder in sorted(brats2023_root.glob("BraTS-GLI-*")):
        sid = f"lab-{folder.name[-7:-4]}"
        out = dest / "scans" / sid
        out.mkdir(parents=True)
        for modality, name in (("t1c", "t1_gd"), ("t2f", "flair_3d")):
            (out / f"{name}.nii.gz").write_bytes((folder / f"{folder.name}-{modality}.nii.gz").read_bytes())
        seg = nib.load(folder / f"{folder.name}-seg.nii.gz")
        labels = np.asarray(seg.dataobj).astype(np.uint8) * 10
        nib.save(nib.Nifti1Image(labels, seg.affine), dest / "scans" / sid / "regions.nii.gz")
        lines.append(f"{sid},scans/{sid}/t1_gd.nii.gz,scans/{sid}/flair_3d.nii.gz,scans/{sid}/regions.nii.gz")
    (dest / "subjects.csv").write_text("\n".join(lines) + "\n")
    return dest / "subjects.csv"


def test_manifest_with_own_modalities_and_multi_region_scheme_fits(brats2023_root, tmp_path):
    manifest = _lab_data(brats2023_root, tmp_path / "lab")
    regions = "{core: [10, 30], whole: [10, 20, 30]}"
    cli = fit_main(["--config", str(REPO / "experiments" / "demo.yaml"),
                    "--data.init_args.layout=manifest", f"--data.init_args.manifest={manifest}",
                    "--data.init_args.modalities=[flair_3d, t1_gd]", f"--data.init_args.regions={regions}",
                    f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                    *SHORT])
    assert cli.datamodule.modalities == ["flair_3d", "t1_gd"] and cli.model.modalities == ["flair_3d", "t1_gd"]
    assert cli.model.region_names == ("core", "whole")
    logged = _logged(tmp_path / "finetune" / "version_0")
    assert {"val/dice_core", "val/dice_whole", "val/dice_mean"} <= logged
    assert "val/lesion_f1" not in logged  # only binary lesion tasks count lesions
    assert {c.subject_id for c in cli.datamodule.train_cases + cli.datamodule.val_cases} == \
           {f"lab-{i:03d}" for i in range(5)}
