"""Paired differences scored on many held-out brains: seeds x brains intervals from evaluate's CSVs."""

import csv

import numpy as np
import pytest

from brainsegfounder.evaluation import heldout
from brainsegfounder.utils.errors import DataError

REGIONS = ("dice_TC", "dice_WT", "dice_ET")


def _write_run(folder, name, dice):
    """One evaluate CSV: ``dice`` is (brains, 3) for TC, WT, ET; dice_mean is their mean, as evaluate writes."""
    with (folder / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "missing_prediction", *REGIONS, "dice_mean", "hd95_vox_TC"])
        for i, row in enumerate(dice):
            writer.writerow([f"BraTS2021_{i:05d}", 0, *row, row.mean(), 3.0])


def test_a_gain_on_one_region_is_found_and_noise_is_not(tmp_path):
    rng = np.random.default_rng(0)
    brains, seeds = 30, 5
    difficulty = rng.uniform(0.3, 0.8, (brains, 3))  # what the brains share across runs
    for seed in range(seeds):
        scratch = difficulty + rng.normal(0, 0.05, (brains, 3)) + rng.normal(0, 0.03)  # a seed's own offset
        gain = np.array([0.0, 0.08, 0.0])  # WT only
        _write_run(tmp_path, f"scratch_4_s{seed}", scratch)
        _write_run(tmp_path, f"stage2_4_s{seed}", scratch + gain + rng.normal(0, 0.05, (brains, 3)))
    (tmp_path / "notes.csv").write_text("not a run\n")  # other files are not runs

    md = heldout.run(str(tmp_path), str(tmp_path / "out"))
    entries = {e["metric"]: e for e in heldout.paired_on_brains(heldout.read_scores(tmp_path))}
    assert list(entries)[0] == "dice_mean" and set(entries) == {"dice_mean", *REGIONS}
    wt, tc = entries["dice_WT"], entries["dice_TC"]
    assert (wt["n"], wt["brains"]) == (5, 30)
    assert wt["ci_low"] > 0.04 and wt["excludes_zero"] and wt["q_value"] < 0.01
    assert tc["ci_low"] < 0 < tc["ci_high"] and not tc["excludes_zero"]
    assert wt["mean_difference"] == pytest.approx(0.08, abs=0.03)
    # The seeds x brains interval is at least as wide as the one over brains alone (it adds the seeds).
    assert wt["ci_high"] - wt["ci_low"] >= 0.8 * (wt["brain_t_high"] - wt["brain_t_low"])
    assert len(wt["differences"].split()) == 5
    text = md.read_text()
    assert "| stage2 - scratch | 4 | dice_WT | 5 x 30 | **+0.0" in text
    assert (tmp_path / "out" / "heldout_paired.png").stat().st_size > 10_000


def test_pigeonhole_bootstrap_is_centred_on_the_mean_and_scored_brains_must_be_shared(tmp_path):
    d = np.random.default_rng(2).normal(0.0, 0.1, (5, 40))
    low, high, p = heldout.pigeonhole_bootstrap(d)
    assert low < d.mean() < high and p > 0.05
    with pytest.raises(DataError, match="no run scores"):
        heldout.read_scores(tmp_path)
    _write_run(tmp_path, "scratch_1_s0", np.full((2, 3), 0.5))
    (tmp_path / "stage2_1_s0.csv").write_text("case_id,dice_TC,dice_WT,dice_ET,dice_mean\nother_case,1,1,1,1\n")
    with pytest.raises(DataError, match="share no scored brain"):
        heldout.paired_on_brains(heldout.read_scores(tmp_path))


def test_held_out_curves_by_step_show_where_a_gain_appears_and_feed_the_curve_plot(tmp_path, capsys):
    """Checkpoints of the same runs at two steps, scored on the same brains: a gain that appears at the
    later step is in the table, and each run's curve is a metrics file the curves plot draws."""
    from brainsegfounder.evaluation.curves import read_curves

    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.7, (20, 3))
    for step, gain in ((50, 0.0), (150, 0.1)):
        folder = tmp_path / "scores" / f"step{step}" / "scores"
        folder.mkdir(parents=True)
        for seed in range(2):
            _write_run(folder, f"scratch_4_s{seed}", base + rng.normal(0, 0.02, (20, 3)))
            _write_run(folder, f"stage2_4_s{seed}", base + gain + rng.normal(0, 0.02, (20, 3)))
    from brainsegfounder.utils.cli import command

    command(heldout.run, ["--scores", str(tmp_path / "scores"), "--out", str(tmp_path / "out"), "--steps", "true"],
            prog="heldout")
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if "stage2_4_s0" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["50", "150"]
    later = rows[1].split("|")
    assert float(later[4]) == pytest.approx(0.1, abs=0.02)  # the paired difference at step 150
    low, high = (float(x) for x in later[5].strip(" []").split(","))
    assert 0.05 < low < 0.1 < high < 0.15
    curve = read_curves(tmp_path / "out" / "heldout_curve_stage2_4_s1.csv", ["heldout/dice_mean", "heldout/dice_WT"])
    assert [step for step, _ in curve["heldout/dice_mean"]] == [50, 150]
    assert curve["heldout/dice_WT"][1][1] - curve["heldout/dice_WT"][0][1] == pytest.approx(0.1, abs=0.03)
    with pytest.raises(DataError, match="no step<N>/ folders"):
        heldout.by_step(tmp_path / "out", tmp_path / "x")
