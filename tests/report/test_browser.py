"""The report in a real browser: headless Chromium opens the file from disk, no server, no network."""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainsegfounder.data.regions import get_scheme
from brainsegfounder.report.__main__ import main
from brainsegfounder.report.page import volume_text


@pytest.fixture(scope="module")
def report(brats2023_root, tmp_path_factory) -> dict:
    """predict-style outputs for five synthetic BraTS 2023 cases, evaluate's real CSV, and the report."""
    from brainsegfounder.evaluate import main as evaluate_main
    from brainsegfounder.report.overlays import save_overlay

    scheme = get_scheme("brats2023")
    folder = tmp_path_factory.mktemp("report")
    preds = folder / "preds"
    preds.mkdir()
    rows = []
    for index, case in enumerate(sorted(p for p in brats2023_root.iterdir() if p.is_dir())):
        image = nib.load(case / f"{case.name}-seg.nii.gz")
        label = np.asanyarray(image.dataobj).astype(np.uint8)
        if index == 0:
            label[label == 3] = 1  # a prediction that misses the enhancing tumour: ET Dice 0
        nib.save(nib.Nifti1Image(label, image.affine, image.header), preds / f"{case.name}.nii.gz")
        voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000
        volumes = {f"{n}_ml": f"{m.sum() * voxel_ml:.4f}" for n, m in zip(scheme.names, scheme.channel_masks(label),
                                                                           strict=True)}
        rows.append({"case_id": case.name, **volumes, "flag": "check" if index == 0 else ""})
        flair = np.asanyarray(nib.load(case / f"{case.name}-t2f.nii.gz").dataobj)
        save_overlay(flair, label, preds / f"{case.name}.png", title=case.name, convention="brats2023")
    with (preds / "volumes.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    evaluate_main(["--pred", str(preds), "--ref", str(brats2023_root), "--task", "brats2023",
                   "--out", str(folder / "metrics.csv")])
    out = folder / "report.html"
    main(["--predictions", str(preds), "--inputs", str(brats2023_root), "--metrics", str(folder / "metrics.csv"),
          "--scheme", "brats2023", "--out", str(out), "--command_line", "python -m brainsegfounder.predict ..."])
    return {"html": out, "rows": rows, "folder": folder}


def _errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_page_lists_every_case_with_the_volumes_of_volumes_csv(browser, report):
    browser.get(report["html"].as_uri())
    assert _errors(browser) == []
    from selenium.webdriver.common.by import By

    table = browser.find_element(By.ID, "cases")
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    shown = {}
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        shown[cells[0]] = dict(zip(headers, cells, strict=True))
    assert set(shown) == {r["case_id"] for r in report["rows"]}
    for row in report["rows"]:
        for region in ("TC", "WT", "ET"):  # read to 0.1 mL; volumes.csv keeps 4 decimals
            assert shown[row["case_id"]][f"{region} (mL)"] == volume_text(row[f"{region}_ml"])
            assert abs(float(shown[row["case_id"]][f"{region} (mL)"]) - float(row[f"{region}_ml"])) <= 0.05
        assert shown[row["case_id"]]["flag"] == row["flag"]
    assert shown[report["rows"][0]["case_id"]]["Dice ET"] == "0.000"
    assert shown[report["rows"][1]["case_id"]]["HD95 WT (mm)"] == "0.0"  # 2023 rules: mm, to 0.1 mm
    # Sorting by a header puts the smallest whole tumour first.
    next(th for th in table.find_elements(By.CSS_SELECTOR, "thead th") if th.text == "WT (mL)").click()
    first = table.find_element(By.CSS_SELECTOR, "tbody tr td").text
    assert first == min(report["rows"], key=lambda r: float(r["WT_ml"]))["case_id"]


def test_opening_a_case_draws_the_viewer_without_errors(browser, report):
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get(report["html"].as_uri())
    case_id = report["rows"][0]["case_id"]
    browser.find_element(By.CSS_SELECTOR, f'#cases tr[data-case="case-{case_id}"]').click()
    details = browser.find_element(By.ID, f"case-{case_id}")
    assert details.get_attribute("open") is not None
    overlay = details.find_element(By.TAG_NAME, "img")
    frame = details.find_element(By.CSS_SELECTOR, "iframe.viewer")
    browser.switch_to.frame(frame)
    canvas = browser.find_element(By.TAG_NAME, "canvas")
    time.sleep(1)  # brainsprite draws once its sprite images have decoded
    picture = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB")).astype(int)
    browser.switch_to.default_content()
    browser.save_screenshot(str(report["folder"] / "viewer.png"))
    shutil.copy(report["folder"] / "viewer.png", Path(report["html"]).with_name("screenshot.png"))
    assert _errors(browser) == []
    assert overlay.get_attribute("naturalWidth") not in (None, "0")
    assert picture.std() > 20, "the viewer's canvas is blank"
    red = (picture[..., 0] > 180) & (picture[..., 1] < 90) & (picture[..., 2] < 90)
    green = (picture[..., 1] > 120) & (picture[..., 0] < 120) & (picture[..., 2] < 120)
    assert red.sum() > 10 and green.sum() > 10, "the label colours of the legend are not drawn"


def test_tables_fit_the_page_and_the_orientation_letters_do_not_overlap(browser, report):
    """The evaluate report (BraTS 2023 rules: 20 metric columns) at 1300 px: the page is no wider than
    the window (the case table scrolls inside its box), and L/R sit inside their own views, apart."""
    from selenium.webdriver.common.by import By

    browser.get(report["html"].as_uri())
    wide, window = browser.execute_script("return [document.documentElement.scrollWidth, "
                                          "document.documentElement.clientWidth]")
    assert wide <= window, f"the page is {wide} px wide in a {window} px window"
    for table in browser.find_elements(By.CSS_SELECTOR, "table.prov, table.prov code"):
        assert table.size["width"] <= window
    case_id = report["rows"][0]["case_id"]
    browser.find_element(By.CSS_SELECTOR, f'#cases tr[data-case="case-{case_id}"]').click()
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, f"#case-{case_id} iframe.viewer"))
    time.sleep(1)
    boxes = browser.execute_script("return window.bsfLetterBoxes")
    browser.switch_to.default_content()
    assert [b["text"] for b in boxes] == ["L", "R", "L", "R"]  # coronal and axial, neurological convention
    for box in boxes:
        assert box["viewX0"] < box["x0"] < box["x1"] < box["viewX1"], box
    for left, right in zip(boxes[:-1], boxes[1:], strict=True):
        assert left["x1"] < right["x0"], (left, right)
    assert boxes[2]["x0"] - boxes[1]["x1"] >= boxes[1]["y1"] - boxes[1]["y0"]  # a letter's height apart at least
