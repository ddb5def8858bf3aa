"""Training curves from CSVLogger files: reading, smoothing, the first/last table, the PNG."""

import csv

import pytest
from PIL import Image

from brainsegfounder.evaluation.curves import endpoints, main, plot_curves, read_curves, smooth


def _log(folder, losses, accuracies):
    """A metrics.csv as Lightning's CSVLogger writes it: training and validation rows apart."""
    folder.mkdir(parents=True)
    with open(folder / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "step", "train/loss_rotation", "val/rotation_accuracy"])
        w.writeheader()
        for step, loss in enumerate(losses, 1):
            w.writerow({"epoch": 0, "step": step * 5, "train/loss_rotation": loss})
        for step, acc in accuracies:
            w.writerow({"epoch": 0, "step": step, "val/rotation_accuracy": acc})
    return folder


def test_curves_read_smooth_and_tabulate(tmp_path):
    s1 = _log(tmp_path / "s1", [1.4, 1.2, 1.0, 0.9, 0.9], [(10, 0.25), (25, 0.5)])
    s2 = _log(tmp_path / "s2", [0.8, 0.8], [(10, 0.75)])
    curves = read_curves(s1, ["train/loss_rotation", "val/rotation_accuracy"])
    assert curves["train/loss_rotation"][0] == (5, 1.4) and curves["val/rotation_accuracy"] == [(10, 0.25), (25, 0.5)]
    assert smooth(curves["train/loss_rotation"], 3)[-1] == (25, pytest.approx((1.0 + 0.9 + 0.9) / 3))
    table = endpoints({"stage1": s1, "stage2": s2}, ["train/loss_rotation", "val/rotation_accuracy"])
    first_last = {(r["run"], r["metric"]): (r["first"], r["last"], r["last_step"]) for r in table}
    assert first_last[("stage1", "train/loss_rotation")] == (1.4, 0.9, 25)
    assert first_last[("stage2", "val/rotation_accuracy")] == (0.75, 0.75, 10)


def test_curves_png_and_command(tmp_path, capsys):
    s1 = _log(tmp_path / "s1", [1.4, 1.2, 1.0, 0.9], [(10, 0.25), (20, 0.5)])
    path = plot_curves({"stage1": s1}, ["train/loss_rotation", "val/rotation_accuracy"], tmp_path / "a.png")
    assert Image.open(path).size[0] > 500
    out = main(["--run", f"stage1={s1}", "--metrics", "train/loss_rotation", "--out", str(tmp_path / "b.png"),
                "--table"])
    printed = capsys.readouterr().out
    assert out.is_file() and "step    5: 1.4000 -> step   20: 0.9000" in printed
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        read_curves(tmp_path / "nowhere", ["train/loss"])
    with pytest.raises(SystemExit):
        main(["--run", str(s1), "--out", str(tmp_path / "c.png")])
