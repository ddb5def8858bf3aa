"""The low-label study mode: numbers of labelled subjects, several seeds, a summary with spread."""

import csv
from pathlib import Path

import pytest

from brainsegfounder.lowlabel import main as lowlabel_main
from brainsegfounder.lowlabel import plot_curve, summarise
from tests.conftest import REPO

DEMO_ATLAS = REPO / "experiments" / "demo_atlas.yaml"
TINY = ["--trainer.max_steps=1", "--trainer.val_check_interval=1", "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false", "--data.init_args.batch_size=1",
        "--data.init_args.samples_per_volume=1", "--data.init_args.queue_length=1"]


def test_counts_and_seeds_give_one_row_per_run_and_a_summary(atlas_root, tmp_path):
    out = tmp_path / "study"
    rows = lowlabel_main(["--config", str(DEMO_ATLAS), "--counts", "2", "1", "--seeds", "0", "1",
                          "--out", str(out), f"--data.init_args.root={atlas_root}", *TINY])
    assert [(r["setting"], r["count"], r["seed"], r["train_subjects"]) for r in rows] == [
        ("scratch", 1, 0, 1), ("scratch", 2, 0, 2), ("scratch", 1, 1, 1), ("scratch", 2, 1, 2)]
    summary = list(csv.DictReader(open(out / "lowlabel_summary.csv")))
    assert [(s["setting"], s["train_subjects"], s["runs"]) for s in summary] == [
        ("scratch", "1", "2"), ("scratch", "2", "2")]
    for entry in summary:
        runs = [r["val/dice_mean"] for r in rows if r["train_subjects"] == int(entry["train_subjects"])]
        assert float(entry["val/dice_mean_mean"]) == pytest.approx(sum(runs) / 2)
    assert (out / "lowlabel.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "scratch_1_s1").is_dir()


def test_named_weights_must_exist_before_any_training(tmp_path, capsys):
    out = tmp_path / "study"
    for args, message in [
        (["--settings", "stage1"], "any other named setting --weights NAME=PATH"),
        (["--weights", f"stage2={tmp_path / 'gone.ckpt'}"], "gone.ckpt does not exist"),
        (["--weights", "stage2"], "expected NAME=VALUE"),
        (["--counts", "0", "1"], "numbers of subjects >= 1"),
    ]:
        with pytest.raises(SystemExit):
            lowlabel_main(["--config", str(DEMO_ATLAS), "--out", str(out), *args])
        assert message in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


def test_summary_and_plot_from_rows(tmp_path):
    rows = [{"setting": s, "count": n, "seed": k, "train_subjects": n, "val/dice_mean": d, "val/dice_wt": d}
            for s, base in (("scratch", 0.3), ("stage2", 0.5)) for n in (1, 2) for k, d in
            ((0, base + 0.1 * n), (1, base + 0.1 * n + 0.02))]
    summary = summarise(rows)
    assert [(e["setting"], e["train_subjects"], e["runs"]) for e in summary] == [
        ("scratch", 1, 2), ("scratch", 2, 2), ("stage2", 1, 2), ("stage2", 2, 2)]
    assert summary[0]["val/dice_mean_mean"] == pytest.approx(0.41)
    assert summary[0]["val/dice_mean_std"] == pytest.approx(0.0141, abs=1e-4)
    assert plot_curve(rows, tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_collect_merges_sweeps_run_apart(tmp_path):
    from brainsegfounder.lowlabel import write_table

    for setting, dice in (("scratch", 0.2), ("stage2", 0.4)):
        (tmp_path / setting).mkdir()
        write_table([{"setting": setting, "count": 1, "seed": k, "train_subjects": 1, "val/dice_mean": dice + k / 4}
                     for k in (0, 1)], tmp_path / setting)
    rows = lowlabel_main(["--collect", str(tmp_path / "scratch"), str(tmp_path / "stage2"), "--out",
                          str(tmp_path / "all")])
    assert [(r["setting"], r["seed"], r["val/dice_mean"]) for r in rows] == [
        ("scratch", 0, 0.2), ("scratch", 1, 0.45), ("stage2", 0, 0.4), ("stage2", 1, 0.65)]
    summary = list(csv.DictReader(open(tmp_path / "all" / "lowlabel_summary.csv")))
    assert [float(s["val/dice_mean_mean"]) for s in summary] == pytest.approx([0.325, 0.525])
    assert (tmp_path / "all" / "lowlabel.png").is_file()


def test_pieces_resume_and_pair_on_the_same_subset_and_steps(atlas_root, tmp_path, capsys):
    import json

    def piece(out, *args):
        return lowlabel_main(["--config", str(DEMO_ATLAS), "--counts", "1", "--seeds", "3", "--out", str(out),
                              f"--data.init_args.root={atlas_root}", *TINY, *args])

    scratch = tmp_path / "scratch"
    first = piece(scratch, "--settings", "scratch")
    assert [(r["setting"], r["count"], r["seed"], r["steps"]) for r in first] == [("scratch", 1, 3, 1)]
    with pytest.raises(SystemExit):  # a rerun without --resume never touches recorded results
        piece(scratch, "--settings", "scratch")
    assert "Rerun with --resume" in " ".join(capsys.readouterr().err.split())
    table = (scratch / "lowlabel.csv").read_text()
    again = piece(scratch, "--settings", "scratch", "--resume")  # everything recorded: no fit at all
    assert "scratch_1_s3 is recorded" in " ".join(capsys.readouterr().err.split())
    assert again == first and (scratch / "lowlabel.csv").read_text() == table
    assert sorted(p.name for p in (scratch / "scratch_1_s3").iterdir()) == ["version_0"]  # no second run folder

    # A pretrained setting in its own piece (the scratch run's checkpoint as its weights), merged with --collect.
    weights = next((scratch / "scratch_1_s3").rglob("last.ckpt"))
    warm = tmp_path / "warm"
    piece(warm, "--weights", f"warm={weights}", "--settings", "warm")
    rows = lowlabel_main(["--collect", str(scratch), str(warm), "--out", str(tmp_path / "all")])
    a, b = rows
    assert (a["setting"], b["setting"]) == ("scratch", "warm")
    assert a["train_subset"] == b["train_subset"] and a["steps"] == b["steps"] == 1  # a true pair
    splits = [json.loads((Path(r["run_dir"]) / "split.json").read_text()) for r in rows]
    assert splits[0]["train"] == splits[1]["train"] and splits[0]["val"] == splits[1]["val"]
    paired = list(csv.DictReader(open(tmp_path / "all" / "lowlabel_paired.csv")))
    assert [(p["setting"], p["baseline"], p["n"]) for p in paired] == [("warm", "scratch", "1")] * len(paired)
    assert float(paired[0]["mean_difference"]) == pytest.approx(b[paired[0]["metric"]] - a[paired[0]["metric"]])
