"""What a person reads at the end of a run: no path cut mid-word."""

from rich.console import Console

from brainsegfounder.training.console import print_metrics

LONG = "runs/demo/finetune/version_12/checkpoints/best-step=50-a-long-experiment-name.ckpt"


def test_metrics_table_keeps_the_checkpoint_path_whole_on_a_narrow_terminal():
    console = Console(width=40, record=True)
    print_metrics({"test/dice_tc": 0.9, "test/dice_mean": 0.85, "val/dice_mean": 0.8}, title="held-out test Dice",
                  prefix="test/", source=LONG, console=console)
    lines = console.export_text().splitlines()
    assert any(line.strip() == "held-out test Dice" for line in lines)  # the title on one line
    assert f"checkpoint: {LONG}" in lines  # one line, whole: the terminal folds it, rich does not cut it
    assert any("test/dice_mean" in line and "0.8500" in line for line in lines)
    assert not any("val/dice_mean" in line for line in lines)
