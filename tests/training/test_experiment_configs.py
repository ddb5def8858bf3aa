"""Every training config under experiments/ parses, overlays on the bases their headers name."""

import pytest

from brainsegfounder.fit import main as fit_main
from tests.conftest import REPO

EXPERIMENTS = REPO / "experiments"
#: Overlays and the configs they go on, in the order their headers give.
OVERLAYS = {"clinical_1mm.yaml": ["demo.yaml"], "clinical_1mm_continue.yaml": ["demo.yaml", "clinical_1mm.yaml"]}
#: Configs of other commands: lowlabel's own, and the W&B sweep.
OTHERS = {"lowlabel_brats.yaml", "lowlabel_synthetic.yaml", "sweep_brats.yaml"}
CONFIGS = sorted(p.name for p in EXPERIMENTS.glob("*.yaml") if p.name not in OTHERS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_parses(name, capsys):
    configs = [*OVERLAYS.get(name, []), name]
    with pytest.raises(SystemExit) as done:
        fit_main([arg for c in configs for arg in ("--config", str(EXPERIMENTS / c))] + ["--print_config"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "class_path: brainsegfounder.tasks." in printed and "max_steps:" in printed


def test_continue_overlay_and_the_thick_slice_flag(capsys):
    bases = [arg for c in ("demo.yaml", "clinical_1mm.yaml", "clinical_1mm_continue.yaml")
             for arg in ("--config", str(EXPERIMENTS / c))]
    with pytest.raises(SystemExit):
        fit_main([*bases, "--print_config"])
    printed = capsys.readouterr().out
    assert "anisotropy_probability: 0.0" in printed and "save_dir: runs/clinical_1mm_continue" in printed
    with pytest.raises(SystemExit):
        fit_main([*bases, "--data.init_args.augmentation.anisotropy_probability=0.5", "--print_config"])
    assert "anisotropy_probability: 0.5" in capsys.readouterr().out
