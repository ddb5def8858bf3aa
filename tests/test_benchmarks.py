"""The benchmark runner and its row type (figures themselves are never asserted: machines differ)."""

import json

import pytest
import torch

from benchmarks import run as bench_run
from benchmarks.common import Result, time_interleaved
from benchmarks.gpu import peak_bf16_tflops, training_flops


def test_result_ratio_status_and_json():
    faster = Result("row", "ours", "theirs", "patches/s", [4.0, 6.0, 5.0], [2.0, 3.0, 2.5], ">=", 2.0)
    assert faster.ratio == pytest.approx(2.0) and faster.status == "met"
    slower = Result("row", "ours", "theirs", "s/step", [1.2, 1.1], [1.0, 1.0], "<=", 1.05)
    assert slower.status == "missed" and not slower.met
    info = Result("row", "a", "b", "MiB", [10.0], [20.0], target=None)
    assert info.status == "no target" and info.ratio == 0.5
    empty = Result("row", "a", "b", "-", [], [], note="no GPU")
    assert empty.status == "not measured" and not empty.met
    row = json.loads(json.dumps(empty.to_dict()))  # NaN would not survive strict JSON readers
    assert row["ratio"] is None and row["ours_min_max"] is None


def test_time_interleaved_alternates_calls():
    calls = []
    samples = time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3 and [len(s) for s in samples] == [2, 2]


def test_runner_writes_table_and_reports_missing_modules(tmp_path, monkeypatch):
    # A row whose module another branch has not merged yet is listed, not an error.
    monkeypatch.setitem(bench_run.BENCHMARKS, "not_merged_yet", "9. a row from another branch")
    rows, failed = bench_run.run_benchmarks(["not_merged_yet", "gpu"])
    assert not failed
    assert rows[0].name == "9. a row from another branch" and "not yet available" in rows[0].note
    if not torch.cuda.is_available():
        assert [r.status for r in rows[1:]] == ["not measured", "not measured"]
        assert "no CUDA" in rows[1].note
    md, js = bench_run.write_results(rows, tmp_path)
    text = md.read_text()
    assert "| 9. a row from another branch |" in text and "Machine:" in text
    data = json.loads(js.read_text())
    assert data["machine"]["cpus"] >= 1 and len(data["results"]) == len(rows) and data["date"]


def test_command_line_only_gpu(tmp_path):
    assert bench_run.main(["--only", "gpu", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "latest.md").exists() and (tmp_path / "latest.json").exists()


def test_flop_count_of_a_training_step():
    # One convolution on an input without gradient: backward computes only the weight gradient,
    # which costs as much as the forward pass (2 * C_in * C_out * 27 FLOPs per output voxel).
    net = torch.nn.Conv3d(4, 8, 3, padding=1)
    x, y = torch.randn(1, 4, 16, 16, 16), torch.zeros(1, 8, 16, 16, 16)
    forward = 2 * 4 * 8 * 27 * 16**3
    assert training_flops(net, x, y, torch.nn.functional.l1_loss) == 2 * forward
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0 and peak_bf16_tflops("Mystery GPU") is None


def test_clinical_raw_summary_is_the_mean_over_cases_per_run(tmp_path):
    from benchmarks.clinical_raw import summarize

    def run(name, cases):
        (tmp_path / name).mkdir()
        (tmp_path / name / "clinical_raw.json").write_text(json.dumps({"cases": cases}))
        return tmp_path / name

    regions = lambda tc, wt, et: {"TC": tc, "WT": wt, "ET": et}  # noqa: E731
    volumes = lambda tc, wt, et: {"TC_ml": tc, "WT_ml": wt, "ET_ml": et}  # noqa: E731
    a = run("plain", {"c0": {"region_dice_raw_vs_brats": regions(0.9, 0.8, 1.0),
                             "volume_relative_difference": volumes(0.10, -0.04, 0.0)},
                      "c1": {"region_dice_raw_vs_brats": regions(0.7, 0.6, 0.8),
                             "volume_relative_difference": volumes(-0.02, 0.02, -0.06)}})
    b = run("thick", {"c0": {"region_dice_raw_vs_brats": regions(1.0, 1.0, 1.0),
                             "volume_relative_difference": volumes(0.0, 0.0, 0.0),
                             "raw_vs_truth_dice": regions(0.5, 0.5, 0.5)}})
    table = summarize([a, b]).splitlines()
    assert table[0] == "| | plain | thick |"
    # Volume differences are averaged as magnitudes (a +10% and a -2% case: 6%, not 4%), and the worst case shown.
    assert table[2] == "| volume raw vs BraTS-way, mean absolute difference % (TC / WT / ET) | 6.0 / 3.0 / 3.0 | 0.0 / 0.0 / 0.0 |"
    assert table[3] == "| volume raw vs BraTS-way, largest absolute difference % (TC / WT / ET) | 10.0 / 4.0 / 6.0 | 0.0 / 0.0 / 0.0 |"
    assert table[4] == "| Dice raw vs BraTS-way, mean (TC / WT / ET) | 0.8000 / 0.7000 / 0.9000 | 1.0000 / 1.0000 / 1.0000 |"
    assert table[5] == "| Dice raw vs BraTS-way, lowest (TC / WT / ET) | 0.7000 / 0.6000 / 0.8000 | 1.0000 / 1.0000 / 1.0000 |"
    assert table[6] == "| the same carried by nearest neighbour, mean (TC / WT / ET) | - | - |"  # older runs lack it
    assert table[8] == "| raw predict vs truth, mean (TC / WT / ET) | - | 0.5000 / 0.5000 / 0.5000 |"
    assert "2 case(s): c0, c1" in table[-1]


def test_clinical_raw_compares_labels_on_one_grid_voxel_for_voxel(tmp_path):
    """--atlas case: a BraTS-way label already on the prepared grid is taken as it is (nothing carried,
    no interpolation), while a grid half a voxel off is not taken for it."""
    from types import SimpleNamespace

    import numpy as np
    import SimpleITK as sitk

    from benchmarks.clinical_raw import _carried, _on_grid_of
    from brainsegfounder.data.geometry import geometry_of

    label = np.zeros((12, 14, 16), np.uint8)
    label[3:5, 4:9, 5:6] = 4  # a thin rim: any resampling would change it
    image = sitk.GetImageFromArray(label)
    image.SetSpacing((1.0, 1.0, 1.0))
    image.SetOrigin((98.0, 134.0, -72.0))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / "seg.nii.gz"
    sitk.WriteImage(image, str(path))
    prepared = SimpleNamespace(record={"grid": geometry_of(sitk.ReadImage(str(path)))})
    assert _on_grid_of(prepared, path)
    assert np.array_equal(_carried(prepared, tmp_path / "no_truth_needed", path), label)
    image.SetOrigin((98.5, 134.0, -72.0))
    sitk.WriteImage(image, str(tmp_path / "moved.nii.gz"))
    assert not _on_grid_of(prepared, tmp_path / "moved.nii.gz")
