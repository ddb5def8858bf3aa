"""The paired summary of the low-label study: known differences, their intervals, the table and the plot."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from brainsegfounder.lowlabel import main as lowlabel_main
from brainsegfounder.lowlabel import paired_differences, plot_paired, run_arguments, write_paired, write_table
from brainsegfounder.utils.errors import DataError

# scratch's Dice per seed, and what stage2 adds to it per seed (mean, then each region).
SCRATCH = {"val/dice_mean": (0.30, 0.40, 0.50), "val/dice_wt": (0.50, 0.60, 0.70), "val/dice_et": (0.0, 0.1, 0.2)}
GAIN = {"val/dice_mean": (0.1, 0.2, 0.3), "val/dice_wt": (0.10, 0.11, 0.12), "val/dice_et": (-0.1, 0.0, 0.1)}


def _rows(gain=GAIN, settings=("scratch", "stage2"), subjects=(1,), seeds=(0, 1, 2)):
    rows = []
    for setting in settings:
        for n in subjects:
            for seed in seeds:
                row = {"setting": setting, "count": n, "seed": seed, "train_subjects": n,
                       "train_subset": f"subset{n}-{seed}", "steps": 20}
                for key, base in SCRATCH.items():
                    row[key] = base[seed] + (0.0 if setting.startswith("scratch") else gain[key][seed]) + n / 10
                rows.append(row)
    return rows


def _t_interval(differences):
    """By hand: mean +- t(0.975, n - 1) * s / sqrt(n)."""
    d = np.array(differences)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def test_mean_paired_difference_and_t_interval_on_known_inputs():
    entries = paired_differences(_rows(), "val/dice_mean")
    by_metric = {e["metric"]: e for e in entries}
    assert list(by_metric) == ["val/dice_mean", "val/dice_et", "val/dice_wt"]  # the mean, then each region
    mean = by_metric["val/dice_mean"]
    assert (mean["setting"], mean["baseline"], mean["train_subjects"], mean["n"], mean["seeds"]) == \
           ("stage2", "scratch", 1, 3, "0 1 2")
    assert mean["mean_difference"] == pytest.approx(0.2)
    assert mean["differences"] == "+0.1000 +0.2000 +0.3000"  # each seed's, drawn as dots in the plot
    low, high = _t_interval([0.1, 0.2, 0.3])
    assert (low, high) == pytest.approx((0.2 - 4.302653 * 0.1 / math.sqrt(3), 0.2 + 4.302653 * 0.1 / math.sqrt(3)))
    assert (mean["ci_low"], mean["ci_high"]) == pytest.approx((low, high))
    assert mean["ci_low"] < 0 < mean["ci_high"] and mean["excludes_zero"] is False  # 3 seeds, wide spread
    wt = by_metric["val/dice_wt"]  # a small but steady gain: the interval stays above 0
    assert wt["mean_difference"] == pytest.approx(0.11)
    assert (wt["ci_low"], wt["ci_high"]) == pytest.approx(_t_interval([0.10, 0.11, 0.12]))
    assert wt["ci_low"] > 0 and wt["excludes_zero"] is True
    et = by_metric["val/dice_et"]
    assert et["mean_difference"] == pytest.approx(0.0, abs=1e-12) and et["excludes_zero"] is False


def test_p_values_and_benjamini_hochberg_q_values_on_known_inputs():
    entries = {e["metric"]: e for e in paired_differences(_rows(), "val/dice_mean")}
    # By hand: t = mean / (s / sqrt(n)), two-sided with n - 1 degrees of freedom.
    for metric, gains in (("val/dice_mean", (0.1, 0.2, 0.3)), ("val/dice_wt", (0.10, 0.11, 0.12))):
        d = np.array(gains)
        t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
        assert entries[metric]["p_value"] == pytest.approx(2 * stats.t.sf(t, 2))
    assert entries["val/dice_et"]["p_value"] == pytest.approx(1.0)  # gains -0.1, 0, +0.1: mean 0
    # Benjamini-Hochberg over the three tests: sorted p_(i) * m / i, made monotone from the top.
    p = sorted(e["p_value"] for e in entries.values())
    q = [min(1.0, min(p[j] * 3 / (j + 1) for j in range(i, 3))) for i in range(3)]
    assert sorted(e["q_value"] for e in entries.values()) == pytest.approx(q)
    assert entries["val/dice_wt"]["q_value"] == pytest.approx(entries["val/dice_wt"]["p_value"] * 3)
    # One pair or no spread: no test, and the q-values are taken over the others only.
    single = paired_differences([r for r in _rows() if r["seed"] == 0], "val/dice_mean")
    assert all(math.isnan(e["p_value"]) and math.isnan(e["q_value"]) for e in single)


def test_a_setting_missing_for_a_seed_leaves_that_pair_out():
    rows = [r for r in _rows(subjects=(1, 2)) if not (r["setting"] == "stage2" and r["seed"] == 2 and r["count"] == 2)]
    entries = {(e["train_subjects"], e["metric"]): e for e in paired_differences(rows, "val/dice_mean")}
    full, short = entries[(1, "val/dice_mean")], entries[(2, "val/dice_mean")]
    assert (full["n"], full["left_out"]) == (3, "")
    assert (short["n"], short["seeds"], short["left_out"]) == (2, "0 1", "2")
    assert short["mean_difference"] == pytest.approx(0.15)
    assert (short["ci_low"], short["ci_high"]) == pytest.approx(_t_interval([0.1, 0.2]))  # df = 1
    # One pair: a difference but no interval.
    single = [r for r in _rows() if r["seed"] == 0]
    entry = paired_differences(single, "val/dice_mean")[0]
    assert entry["n"] == 1 and entry["mean_difference"] == pytest.approx(0.1)
    assert math.isnan(entry["ci_low"]) and entry["excludes_zero"] is False


def test_bootstrap_interval_when_asked():
    rows = _rows(gain={k: (0.10, 0.14, 0.12) for k in GAIN}, seeds=(0, 1, 2))
    rows += [{**r, "seed": r["seed"] + 3} for r in rows]  # six seeds: the same three gains twice
    boot = paired_differences(rows, "val/dice_mean", interval="bootstrap")[0]
    again = paired_differences(rows, "val/dice_mean", interval="bootstrap")[0]
    t = paired_differences(rows, "val/dice_mean")[0]
    assert boot["interval"] == "bootstrap" and boot["n"] == 6 and boot["mean_difference"] == pytest.approx(0.12)
    assert 0.10 - 1e-9 <= boot["ci_low"] < 0.12 < boot["ci_high"] <= 0.14 + 1e-9  # within the differences' range
    assert (boot["ci_low"], boot["ci_high"]) == (again["ci_low"], again["ci_high"])  # seeded resampling
    assert boot["excludes_zero"] and (boot["ci_low"], boot["ci_high"]) != pytest.approx((t["ci_low"], t["ci_high"]))


def test_pairs_must_share_subset_and_steps_and_probes_pair_with_the_frozen_baseline():
    rows = _rows()
    rows[3]["train_subset"] = "another"  # stage2, seed 0
    with pytest.raises(DataError, match="differ in train_subset"):
        paired_differences(rows, "val/dice_mean")
    rows = _rows()
    rows[4]["steps"] = 40
    with pytest.raises(DataError, match="differ in steps"):
        paired_differences(rows, "val/dice_mean")
    probe = _rows(settings=("scratch", "stage2", "scratch-frozen", "stage2-frozen"))
    for row in probe:
        if row["setting"] == "scratch-frozen":
            row["val/dice_mean"] -= 0.05  # a frozen random encoder is worse: only the frozen pair sees it
    pairs = {(e["setting"], e["baseline"]): e for e in paired_differences(probe, "val/dice_mean")
             if e["metric"] == "val/dice_mean"}
    assert list(pairs) == [("stage2", "scratch"), ("stage2-frozen", "scratch-frozen")]
    assert pairs[("stage2-frozen", "scratch-frozen")]["mean_difference"] == pytest.approx(0.25)


def test_paired_table_and_plot(tmp_path):
    rows = _rows(settings=("scratch", "stage1", "stage2"), subjects=(1, 2, 4, 8))
    rows = [r for r in rows if not (r["setting"] == "stage1" and r["count"] == 8 and r["seed"] == 0)]
    entries = paired_differences(rows, "val/dice_mean")
    csv_path, md_path = write_paired(entries, tmp_path)
    table = list(csv.DictReader(open(csv_path)))
    assert len(table) == 2 * 4 * 3 and table[0]["excludes_zero"] in ("True", "False")
    lines = md_path.read_text().splitlines()
    assert lines[0].startswith("| setting - baseline | labelled subjects | metric | pairs (seeds) | mean difference")
    assert lines[0].endswith("| excludes 0 | p (t-test) | q (BH, 24 tests) |")
    wt_row = "| stage2 - scratch | 1 | val/dice_wt | 3 (0 1 2) | +0.110 | [+0.085, +0.135] (t) | yes | 0.003 |"
    assert any(line.startswith(wt_row) for line in lines)
    assert "| stage1 - scratch | 8 | val/dice_mean | 2 (1 2; left out 0) | +0.250 |" in " ".join(lines)
    png = plot_paired(entries, tmp_path / "lowlabel_paired.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    from matplotlib.image import imread

    assert imread(png).shape[1] > 3 * imread(png).shape[0]  # three panels side by side: mean, ET, WT


def test_collect_merges_pieces_into_a_paired_summary(tmp_path):
    rows = _rows(settings=("scratch", "stage2"), subjects=(1, 2))
    for setting in ("scratch", "stage2"):  # two pieces, one setting each, merged afterwards
        (tmp_path / setting).mkdir()
        write_table([r for r in rows if r["setting"] == setting], tmp_path / setting)
    lowlabel_main(["--collect", str(tmp_path / "scratch"), str(tmp_path / "stage2"), "--out", str(tmp_path / "all")])
    paired = list(csv.DictReader(open(tmp_path / "all" / "lowlabel_paired.csv")))
    mean = [p for p in paired if p["metric"] == "val/dice_mean"]
    assert [(p["train_subjects"], p["n"], float(p["mean_difference"])) for p in mean] == \
           [("1", "3", pytest.approx(0.2)), ("2", "3", pytest.approx(0.2))]
    assert (tmp_path / "all" / "lowlabel_paired.md").is_file() and (tmp_path / "all" / "lowlabel_paired.png").is_file()
    lowlabel_main(["--collect", str(tmp_path / "scratch"), str(tmp_path / "stage2"), "--out", str(tmp_path / "boot"),
                   "--interval", "bootstrap"])
    assert {p["interval"] for p in csv.DictReader(open(tmp_path / "boot" / "lowlabel_paired.csv"))} == {"bootstrap"}
    with pytest.raises(SystemExit):  # a piece collected twice: its runs would count twice; nothing is written
        lowlabel_main(["--collect", str(tmp_path / "stage2"), str(tmp_path / "scratch"), str(tmp_path / "stage2"),
                       "--out", str(tmp_path / "twice")])
    assert not (tmp_path / "twice" / "lowlabel.csv").exists()


def test_every_setting_of_a_seed_and_size_gets_the_same_flags_but_its_weights():
    out, weights = Path("runs/x"), {"stage1": "s1.ckpt", "stage2": "s2.ckpt"}
    own = {"stage1": ["--model.init_args.backbone.modality_map={flair: flair}"]}
    common = ["--trainer.max_steps=100"]

    def flags(setting, probe=None):  # all but where the run is written, its weights and its own flags
        args = run_arguments("c.yaml", setting, "count", 4, 3, out, common, weights, own, probe)
        where = ("--trainer.default_root_dir=", "--trainer.logger.init_args.", "--model.init_args.backbone.init_from=")
        return [a for a in args if not a.startswith(where) and a not in own.get(setting, [])]

    assert flags("scratch") == flags("stage1") == flags("stage2") == [
        "--config", "c.yaml", "--trainer.max_steps=100", "--data.init_args.train_count=4",
        "--seed_everything=3", "--data.init_args.split_seed=3"]
    assert "--model.init_args.backbone.init_from=s2.ckpt" in run_arguments("c.yaml", "stage2", "count", 4, 3, out,
                                                                           common, weights, own)
    frozen = run_arguments("c.yaml", "stage2", "count", 4, 3, out, common, weights, own, "frozen")
    assert "--model.init_args.backbone.freeze_encoder=true" in frozen
    assert f"--trainer.default_root_dir={out / 'stage2-frozen_4_s3'}" in frozen  # never the fine-tune's folder
    assert flags("scratch", "frozen") == flags("stage2", "frozen")


def test_one_size_leaves_room_for_the_seed_dots():
    from matplotlib.figure import Figure

    from brainsegfounder.evaluation.paired import _size_axis

    axes = Figure().subplots()
    axes.scatter([4.0 * 1.12 * 1.05], [0.1])  # the farthest a setting's seed dots sit from their size
    _size_axis(axes, [4])
    low, high = axes.get_xlim()
    assert low < 4 / 1.3 and high > 4 * 1.12 * 1.05 * 1.1
