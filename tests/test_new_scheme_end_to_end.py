"""A new label scheme and layout go through the whole chain: generator -> fit -> predict -> evaluate.

BraTS 2024 post-treatment (four labels, six evaluated regions) as shipped, and a lab's own layout
and scheme declared here in test code only (no package edit).
"""

import json

import pytest

from brainsegfounder.data.layouts import LAYOUTS, pattern_layout, register_layout
from brainsegfounder.data.regions import SCHEMES, RegionScheme, register_scheme
from brainsegfounder.data.synthetic import generate
from brainsegfounder.evaluate import evaluate
from brainsegfounder.fit import main as fit_main
from brainsegfounder.predict import main as predict_main
from tests.conftest import DEMO


def _chain(root, layout: str, tmp_path, **evaluate_args) -> dict:
    run = tmp_path / "run"
    fit_main(["--config", str(DEMO), f"--data.init_args.root={root}", f"--data.init_args.layout={layout}",
              "--data.init_args.n_folds=2", "--data.init_args.test_fold=null", "--data.init_args.batch_size=1",
              "--data.init_args.samples_per_volume=1", "--data.init_args.queue_length=2",
              "--data.init_args.num_workers=0", f"--trainer.default_root_dir={run}",
              f"--trainer.logger.init_args.save_dir={run}", "--trainer.max_steps=1",
              "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0", "--quiet=true"])
    ckpt = next(run.rglob("last.ckpt"))
    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(ckpt), "--input", str(root), "--output", str(out), "--device", "cpu"]) == 0
    return evaluate(out, root, out=tmp_path / "metrics.csv", overwrite=True, **evaluate_args)


def test_brats2024_post_treatment_generator_fit_predict_evaluate(tmp_path):
    root = tmp_path / "brats2024"
    generate("brats2024", root, subjects=4, seed=0, spacing=3.0)
    summary = _chain(root, "brats2024", tmp_path, task="brats2024")
    assert summary["scheme"] == "brats2024" and summary["rules"] == "brats2024" and summary["n_cases"] == 4
    assert list(summary["regions"]) == ["ET", "NETC", "SNFH", "RC", "TC", "WT"]
    assert "dice_RC" in summary["metrics"] and "lw_dice_RC" in json.dumps(summary["metrics"])


@pytest.fixture
def mylab():
    register_scheme(RegionScheme(names=("infarct",), labels=((5,),), paint=((0, 5),), name="mylab_infarct",
                                 label_names=((5, "infarct"),)))
    register_layout(pattern_layout(
        "mylab", {"t1": "{id}/anat/{id}_T1.nii.gz", "flair": "{id}/anat/{id}_FLAIR.nii.gz"}, scheme="mylab_infarct",
        case_id_format="P{number:03d}", label="{id}/masks/{id}_infarct.nii.gz"))
    yield
    LAYOUTS.pop("mylab")
    SCHEMES.pop("mylab_infarct")


def test_a_layout_and_scheme_declared_in_test_code_go_through_the_chain(mylab, tmp_path):
    root = tmp_path / "mylab"
    generate("mylab", root, subjects=4, seed=1, spacing=3.0)
    summary = _chain(root, "mylab", tmp_path, scheme="mylab_infarct")
    assert summary["scheme"] == "mylab_infarct" and summary["rules"] == "plain" and summary["n_cases"] == 4
    assert "dice_infarct" in summary["metrics"] and "lw_f1_infarct" in json.dumps(summary["metrics"])
