"""A report a clinician reads: anatomy under every viewer, volumes in mL to one decimal, HD95 in mm,
provenance as a table, no empty columns, the review flag in words.

Real NIfTI files on disk, the real ``predict``, ``evaluate`` and ``report`` commands; a random-weight
checkpoint where the numbers of the network do not matter (anatomy, provenance, layout).
"""

from __future__ import annotations

import base64
import csv
import io
import re

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsegfounder.checkpoints import FLAG_CASES_KEY, FLAG_THRESHOLD_KEY, TEMPERATURE_KEY
from brainsegfounder.inference.writers import VOLUMES_FILE, file_sha256
from brainsegfounder.predict import main as predict_main
from brainsegfounder.report import write_report
from brainsegfounder.report.__main__ import main as report_main
from tests.faults.conftest import MODALITIES, write_cases

_SPRITE = re.compile(r'id="spriteImg-[^"]*"[^>]*?src="data:image/(?:jpeg|png);base64,([A-Za-z0-9+/=]+)')


def _views(page: str) -> dict[str, str]:
    """Every case's embedded viewer document, decoded as the page's script decodes it, by case id."""
    index = {m.group(2): m.group(1) for m in re.finditer(r'data-index="(\d+)"><summary>([^ <]+)', page)}
    blocks = {m.group(1): m.group(2) for m in
              re.finditer(r'<script type="text/x-bsf-view" id="view-(\d+)">(.*?)</script>', page, re.DOTALL)}
    return {case: re.sub(r"<\\([\s\S])", r"<\1", blocks[i]) for case, i in index.items() if i in blocks}


def _background(view: str) -> np.ndarray:
    """The viewer's background sprite (every slice of the image under the labels), as grey levels."""
    from PIL import Image

    data = base64.b64decode(_SPRITE.search(view).group(1))
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)


@pytest.fixture
def three_cases(tmp_path):
    return write_cases(tmp_path / "data", 3)


@pytest.mark.parametrize("form", ["case folders", "one case folder", "files"])
def test_predict_report_shows_each_cases_flair_under_its_labels(random_checkpoint, three_cases, tmp_path, form,
                                                                capsys):
    folders = sorted(p for p in three_cases.iterdir())
    inputs = {"case folders": folders, "one case folder": folders[:1],
              "files": [folders[0] / f"{folders[0].name}_{m}.nii.gz" for m in MODALITIES]}[form]
    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(random_checkpoint), "--input", *map(str, inputs), "--output", str(out),
                         "--device", "cpu", "--report"]) == 0
    cases = 1 if form != "case folders" else 3
    assert f"anatomy under the labels of {cases} of {cases} case(s)" in capsys.readouterr().err
    views = _views((out / "report.html").read_text())
    assert len(views) == cases
    for case_id, view in views.items():
        sprite = _background(view)
        # The FLAIR written by write_case: a head of ~100-140 with a bright blob, not the labels on black.
        assert sprite.max() > 100 and sprite.std() > 10, case_id
        assert (sprite > 30).mean() > 0.3, f"{case_id}: the background is mostly black"
    assert "No anatomy under these labels" not in (out / "report.html").read_text()


def test_report_inputs_may_be_a_case_folder_and_a_missing_image_is_said(random_checkpoint, three_cases, tmp_path):
    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(random_checkpoint), "--input", str(three_cases), "--output", str(out),
                         "--device", "cpu"]) == 0
    one = sorted(three_cases.iterdir())[1]
    result = write_report(out, out=tmp_path / "r.html", inputs=one)
    assert result["anatomy"] == 1 and result["cases"] == 3
    page = (tmp_path / "r.html").read_text()
    assert (_background(_views(page)[one.name]) > 30).mean() > 0.3
    assert page.count("No anatomy under these labels") == 2  # the two cases whose image was not given


def _label(shape, box, spacing) -> nib.Nifti1Image:
    label = np.zeros(shape, np.uint8)
    label[box] = 2
    return nib.Nifti1Image(label, np.diag([*spacing, 1.0]))


def test_volumes_rounded_hd95_in_mm_and_empty_columns_dropped(tmp_path):
    """Two cases at 2 mm and one at 1 x 1 x 3 mm; predictions shifted 2 voxels from the reference."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    spacings = {"BraTS2021_00000": (2.0, 2.0, 2.0), "BraTS2021_00001": (2.0, 2.0, 2.0),
                "BraTS2021_00002": (1.0, 1.0, 3.0)}
    for case_id, spacing in spacings.items():
        nib.save(_label((32, 32, 32), np.s_[8:20, 8:20, 8:20], spacing), ref / f"{case_id}.nii.gz")
        nib.save(_label((32, 32, 32), np.s_[10:22, 8:20, 8:20], spacing), pred / f"{case_id}.nii.gz")
    with (pred / VOLUMES_FILE).open("w", newline="") as handle:  # predict's columns; nothing was missing
        writer = csv.writer(handle)
        writer.writerow(["case_id", "TC_ml", "WT_ml", "ET_ml", "missing_modalities"])
        writer.writerow(["BraTS2021_00000", "0.0000", "118.2960", "0.0042", ""])
        writer.writerow(["BraTS2021_00001", "0.4213", "13.8240", "0.0000", ""])
        writer.writerow(["BraTS2021_00002", "0.0000", "5.1840", "0.0000", ""])
    from brainsegfounder.evaluate import main as evaluate_main

    evaluate_main(["--pred", str(pred), "--ref", str(ref), "--task", "brats2021", "--out", str(tmp_path / "m.csv")])
    metrics = {r["case_id"]: r for r in csv.DictReader((tmp_path / "m.csv").open())}
    assert float(metrics["BraTS2021_00000"]["hd95_vox_WT"]) == pytest.approx(2.0)  # voxels, as the rules say

    report_main(["--predictions", str(pred), "--metrics", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r.html"),
                 "--viewers", "false"])
    page = (tmp_path / "r.html").read_text()
    table = page[page.index('<table id="cases"'):page.index("</table>", page.index('<table id="cases"'))]
    # mL to one decimal (two below 1 mL), the exact value kept to sort on.
    assert '<td data-v="118.2960">118.3</td>' in table and '<td data-v="0.4213">0.42</td>' in table
    assert '<td data-v="0.0042">&lt; 0.01</td>' in table and "118.2960<" not in table
    # HD95: 2 voxels of 2 mm are 4.0 mm; the 1 x 1 x 3 mm case has no single mm value.
    assert "<th>HD95 WT (mm)</th>" in table and "hd95_vox" not in table
    row0 = table[table.index('data-case="case-BraTS2021_00000"'):]
    assert re.search(r'<td data-v="4"[^>]*>4\.0</td>', row0.split("</tr>")[0])
    row2 = table[table.index('data-case="case-BraTS2021_00002"'):].split("</tr>")[0]
    assert ">n/a</td>" in row2 and "not cubic" in row2
    # No column without a word in it: time point, subject = case id, missing modalities.
    for empty in (">time point<", ">subject<", ">missing modalities<"):
        assert empty not in table
    assert "HD95 of the BraTS 2021 rules is measured in voxels" in page


def test_report_by_report_reads_the_checkpoint_and_shows_provenance_as_a_table(random_checkpoint, three_cases,
                                                                              tmp_path):
    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(random_checkpoint), "--input", str(three_cases), "--output", str(out),
                         "--device", "cpu"]) == 0
    assert not (out / "provenance.json").exists()  # no --report: the report finds what it can
    report_main(["--predictions", str(out), "--inputs", str(three_cases), "--checkpoint", str(random_checkpoint),
                 "--out", str(tmp_path / "r.html"), "--viewers", "false"])
    page = (tmp_path / "r.html").read_text()
    provenance = page[page.index('<table class="prov">'):]
    digest = file_sha256(random_checkpoint)
    assert f"{digest[:16]}…" in provenance and f'title="{digest}"' in provenance
    assert "<pre>" not in provenance and "{" not in provenance.split("</table>")[0]  # no raw JSON
    assert "flair, t1ce, t1, t2" in provenance and "64 x 64 x 64 voxels" in provenance
    assert ">calibrated</th><td class=\"text\">no (" in provenance
    assert "newest label map" in provenance  # the date, from the files, not "not recorded"
    assert "python -m brainsegfounder.report" in provenance or "pytest" in provenance
    # Only the command that made the predictions is unknown here, and it says where it would come from.
    assert provenance.count("not recorded") == 1


def _calibrated(random_checkpoint, tmp_path, quality_threshold: float, cases: int | None):
    saved = torch.load(random_checkpoint, weights_only=True)
    saved[TEMPERATURE_KEY] = [1.0, 1.0, 1.0]
    saved[FLAG_THRESHOLD_KEY] = quality_threshold
    if cases is not None:
        saved[FLAG_CASES_KEY] = cases
    path = tmp_path / "tiny.calibrated.ckpt"
    torch.save(saved, path)
    return path


def test_review_flag_in_words_with_a_warning_about_few_validation_cases(random_checkpoint, three_cases, tmp_path,
                                                                         capsys):
    # Stored as calibrate stores it, 1 - expected Dice: 0.0 flags every case expecting less than Dice 1.00.
    ckpt = _calibrated(random_checkpoint, tmp_path, 0.0, cases=3)
    out = tmp_path / "pred"
    assert predict_main(["--ckpt", str(ckpt), "--input", str(three_cases), "--output", str(out), "--device", "cpu",
                         "--uncertainty", "--report"]) == 0
    err = capsys.readouterr().err
    assert "flag: expected Dice below 1.00, a threshold fitted on 3 validation cases (fewer than 20" in err
    rows = list(csv.DictReader((out / VOLUMES_FILE).open()))
    assert "quality" not in rows[0] and {"expected_dice", "flag", "review"} <= set(rows[0])
    for row in rows:
        expected = float(row["expected_dice"])
        assert 0.0 <= expected < 1.0 and row["flag"] == "1"
        assert row["review"] == (f"review first: expected Dice {expected:.2f} below 1.00; threshold fitted on 3 "
                                 "validation cases (fewer than 20: a rough guide)")
    page = (out / "report.html").read_text()
    assert "Flagged for review first (3 of 3): expected Dice below 1.00" in page and 'class="note warn"' in page
    assert ">expected Dice</th>" in page and ">review</th>" in page and page.count('class="flagged"') == 3
    assert "yes: temperatures 1.00, 1.00, 1.00; flag: expected Dice below 1.00" in page


def test_old_volumes_csv_with_quality_is_still_read_and_labelled_for_what_it_is(tmp_path):
    label = np.zeros((16, 16, 16), np.uint8)
    label[4:8, 4:8, 4:8] = 1
    nib.save(nib.Nifti1Image(label, np.eye(4)), tmp_path / "case1.nii.gz")
    (tmp_path / VOLUMES_FILE).write_text("case_id,lesion_ml,quality,flag\ncase1,0.0640,0.9300,1\n")
    write_report(tmp_path, scheme="lesion", viewers=False)
    page = (tmp_path / "report.html").read_text()
    assert "quality score (older file: 1 - expected Dice, higher = worse)" in page
    assert '<td data-v="0.9300">0.93</td>' in page and 'class="flagged"' in page
