"""The demo's last line: fine-tuned vs scratch test Dice, and the recorded scratch figure it reads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from brainsegfounder.training.demo_scratch import (
    REFERENCE,
    comparison_line,
    config_digest,
    load_reference,
    machine,
    record_reference,
)

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "experiments" / "demo.yaml"
FINETUNED = {"test/dice_mean": 0.8968, "test/dice_tc": 0.8619, "test/dice_wt": 0.9097, "test/dice_et": 0.9187}


def test_recorded_scratch_figure_belongs_to_the_current_demo_config():
    """Changing demo.yaml without re-recording the scratch run would compare unlike runs: fail here."""
    record, why = load_reference(DEMO)
    assert record is not None, why
    steps = yaml.safe_load(DEMO.read_text())["trainer"]["max_steps"]
    assert record["steps"] == steps
    for key in ("test/dice_mean", "test/dice_tc", "test/dice_wt", "test/dice_et"):
        assert 0.0 <= record["metrics"][key] <= 1.0
    regions = [record["metrics"][f"test/dice_{r}"] for r in ("tc", "wt", "et")]
    assert record["metrics"]["test/dice_mean"] == pytest.approx(sum(regions) / 3, abs=1e-4)
    assert record["command"] == "python -m brainsegfounder.demo --stages finetune"


def test_line_gives_the_paired_difference_mean_and_per_region():
    scratch = {"test/dice_mean": 0.80, "test/dice_tc": 0.70, "test/dice_wt": 0.90, "test/dice_et": 0.80}
    line = comparison_line(FINETUNED, {"metrics": scratch, "steps": 100, "command": "c", "measured": "d",
                                       "machine": "CPU A, 2 threads"}, here="CPU A, 2 threads")
    assert line.startswith("Pretraining bought +0.0968 mean test Dice: 0.8968 fine-tuned from Stage 2 vs 0.8000")
    assert "TC +0.1619, WT +0.0097, ET +0.1187" in line
    assert "same 100 steps" in line and "recorded d by `c`" in line and "\n" not in line
    worse = {k: v + 0.1 for k, v in scratch.items()}
    assert comparison_line(FINETUNED, {"metrics": worse, "steps": 100, "command": "c"},
                           live=True).startswith("Pretraining cost -0.0032")


def test_a_figure_recorded_on_another_machine_is_no_verdict():
    """Across CPUs the demo's Dice moves by its noise (seen 0.8686 vs 0.8827): the line must not claim a gain."""
    scratch = {"test/dice_mean": 0.80, "test/dice_tc": 0.70, "test/dice_wt": 0.90, "test/dice_et": 0.80}
    record = {"metrics": scratch, "steps": 100, "command": "c", "measured": "d", "machine": "CPU A, 2 threads"}
    line = comparison_line(FINETUNED, record, here="CPU B, 8 threads")
    assert line.startswith("Pretraining vs a scratch figure recorded on CPU A, 2 threads, not this one "
                           "(CPU B, 8 threads): +0.0968 mean test Dice")
    assert "bought" not in line and "no verdict" in line and "--scratch" in line and "\n" not in line
    unnamed = comparison_line(FINETUNED, {k: v for k, v in record.items() if k != "machine"}, here="CPU A, 2 threads")
    assert "recorded on a machine it does not name" in unnamed
    # a live scratch run is on this machine by construction
    assert comparison_line(FINETUNED, record, live=True, here="CPU B, 8 threads").startswith("Pretraining bought")


def test_the_record_names_this_machine(tmp_path):
    import torch

    config = tmp_path / "demo.yaml"
    config.write_text("trainer:\n  max_steps: 100\n")
    path = record_reference(FINETUNED, config, steps=100, seconds=1.0, path=tmp_path / "scratch.json")
    recorded = json.loads(path.read_text())["records"][-1]["machine"]
    assert recorded == machine() and recorded.endswith(f"{torch.get_num_threads()} thread"
                                                       f"{'s' if torch.get_num_threads() != 1 else ''}")
    assert comparison_line(FINETUNED, load_reference(config, path)[0]).startswith("Pretraining ")
    assert "no verdict" not in comparison_line(FINETUNED, load_reference(config, path)[0])


def test_the_file_keeps_one_record_per_machine(tmp_path):
    """Recording on a second machine keeps the first one's figure; each machine reads its own."""
    config = tmp_path / "demo.yaml"
    config.write_text("trainer:\n  max_steps: 100\n")
    path = tmp_path / "scratch.json"
    older = {"metrics": {"test/dice_mean": 0.8}, "steps": 100, "command": "c", "config_sha256": config_digest(config),
             "machine": "CPU A, 2 threads"}
    path.write_text(json.dumps(older))  # the older form: one record at the top level
    record_reference(FINETUNED, config, steps=100, seconds=1.0, path=path)
    record_reference(FINETUNED, config, steps=100, seconds=2.0, path=path)  # same machine: replaced, not added
    records = json.loads(path.read_text())["records"]
    assert [r["machine"] for r in records] == ["CPU A, 2 threads", machine()]
    assert records[1]["seconds"] == 2
    assert load_reference(config, path, here="CPU A, 2 threads")[0]["metrics"] == {"test/dice_mean": 0.8}
    assert load_reference(config, path)[0]["machine"] == machine()
    # a third machine gets the latest record, which the line shows without a verdict
    third, _ = load_reference(config, path, here="CPU C, 4 threads")
    assert third["machine"] == machine()
    assert "no verdict" in comparison_line(FINETUNED, third, here="CPU C, 4 threads")


def test_record_round_trip_and_a_changed_config_is_refused(tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text("trainer:\n  max_steps: 100\n")
    path = record_reference({**FINETUNED, "val/dice_mean": 0.5}, config, steps=100, seconds=371.4,
                            path=tmp_path / "scratch.json")
    record, why = load_reference(config, path)
    assert why == "" and record["metrics"] == FINETUNED  # only the test/ metrics are kept
    assert record["seconds"] == 371 and record["config_sha256"] == config_digest(config)
    config.write_text("trainer:\n  max_steps: 50\n")
    record, why = load_reference(config, path)
    assert record is None and "--record_scratch" in why
    line = comparison_line(FINETUNED, record, why=why)
    assert line.startswith("Pretraining vs scratch: not compared (the recorded scratch figure")
    assert load_reference(config, tmp_path / "missing.json")[1].startswith("no recorded scratch figure")
    assert json.loads(path.read_text())["records"][0]["steps"] == 100


def test_record_scratch_needs_the_plain_scratch_run():
    run = subprocess.run([sys.executable, "-m", "brainsegfounder.demo", "--record_scratch"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 2 and "--record_scratch goes with --stages finetune" in run.stderr
    assert REFERENCE.parent == DEMO.parent
