"""``--help`` answers without torch: fit's help is read from source; the other commands import lazily."""

import subprocess
import sys
from pathlib import Path

import pytest

from brainsegfounder.training.fast_help import class_options, help_requested, help_text

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "pytorch_lightning", "lightning", "monai", "torchio")


def _help_imports(*argv: str) -> tuple[str, set[str]]:
    """Stdout of ``python -X importtime -m ... --help`` and the top-level heavy packages it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", *argv], cwd=REPO, capture_output=True,
                          text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return done.stdout, imported & set(HEAVY)


def test_fit_help_lists_the_configs_model_and_data_options_without_importing_torch():
    out, heavy = _help_imports("brainsegfounder.fit", "--config", "experiments/demo.yaml", "--help")
    assert heavy == set(), f"fit --help imported {heavy}"
    assert out.startswith("usage: python -m brainsegfounder.fit --config FILE")
    assert "Lightning Trainer command line tool" not in out
    assert "--model.lr  float = 0.0001  [config: 0.003]" in out  # the signature's default and the config's value
    assert "--model.backbone.feature_size" in out and "--data.test_fold  int | None = None  [config: 1]" in out
    assert "--trainer.max_steps" in out and "--help full" in out


@pytest.mark.parametrize("module", ["brainsegfounder.demo", "brainsegfounder.lowlabel"])
def test_demo_and_lowlabel_help_import_no_torch(module):
    out, heavy = _help_imports(module, "--help")
    assert out.startswith(f"usage: python -m {module}") and heavy == set()


def test_help_forms_and_options_of_an_ssl_task():
    assert help_requested(["-h"]) and help_requested(["--config", "a.yaml", "--help"])
    assert not help_requested(["--help", "full"]) and not help_requested(["--model.lr=1"])
    # Stage 2's __init__ only forwards *args: its options are Stage 1's.
    names = [o.name for o in class_options("brainsegfounder.tasks.ssl.DiseaseAwarePretrainModule")]
    assert "temperature" in names and "backbone.init_from" in names
    text = help_text(["--config", "experiments/demo_stage2.yaml"])
    assert "data options (brainsegfounder.data.unlabelled.UnlabelledDataModule)" in text
    assert "--data.exclude_fold  int | list[int] | None = None  [config: [0, 1]]" in text
