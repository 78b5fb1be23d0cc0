"""The quality report as a scientist reads it: rendered page by page, its text extracted."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pypdfium2 as pdfium
import pytest

from obsflow.simulate import granulation
from obsflow_tasks.vbi import calibration
from obsflow_tasks.vbi.report import quality_report_pdf
from obsflow_tasks.vbi.tasks import qc_table, quality_warnings


@pytest.fixture(scope="module")
def report():
    """Given the metrics of 12 frames whose light level sits near 13,000 ct and jitters by 2 ct, whose last two
    frames have no AO r0, and the images of a 1024x1024 dataset"""
    rng = np.random.default_rng(7)
    start = dt.datetime(2026, 11, 20, 19)
    frames = [{"date_obs": (start + dt.timedelta(seconds=30 * i)).isoformat(), "light_level": 13000 + rng.normal(0, 2),
               "frame_average": 12900 + rng.normal(0, 2), "frame_rms_contrast": 0.11, "granulation_rms_contrast":
               0.095 + 0.005 * np.sin(i), "fried_parameter": None if i >= 10 else 0.08 + 0.002 * i} for i in range(12)]
    rows = [{"exposure_ms": 4.0}] * 12
    bad = np.zeros((1024, 1024), dtype=bool)
    bad[100, 200] = bad[600, 900] = True
    gain = np.clip(1 - 0.3 * np.hypot(*np.mgrid[-1:1:1024j, -1:1:1024j]) ** 2, 0.5, 1)
    metrics = {"frame_counts": {"observe": 12}, "frames": frames,
               "warnings": quality_warnings(frames, rows, 0.2), "qc": qc_table(frames, rows, {"4": 102.5}, gain, bad)}
    sample = 13000 * granulation((1024, 1024), seed=3)
    panels = {"calibrated frame": (calibration.thumbnail(sample), "calibrated signal [ct]", "gray"),
              "master dark (4 ms)": (calibration.thumbnail(np.full((1024, 1024), 102.5) + rng.normal(0, 1, (1024, 1024))),
                                     "dark signal [ct]", "magma"),
              "normalised gain": (calibration.thumbnail(gain), "relative response [1]", "viridis"),
              "bad pixels": (calibration.thumbnail(bad, reduce=np.nanmax), "bad [1 = yes]", "binary")}
    identity = [("dataset", "ds-1"), ("run", "run-1"), ("recipe", "vbi-l1@3.0.0"), ("wavelength", "430.52 nm")]
    # When the report is rendered
    pdf = pdfium.PdfDocument(quality_report_pdf(identity, metrics, panels))
    yield metrics, pdf
    pdf.close()


def text(pdf, page: int) -> str:
    return pdf[page].get_textpage().get_text_range()


def test_the_first_page_puts_the_warnings_before_the_qc_table(report):
    metrics, pdf = report
    # Then there are four pages, and the first names the dataset, then the warning, then the QC values
    assert len(pdf) == 4
    first = text(pdf, 0)
    assert "ds-1" in first and "430.52 nm" in first
    assert metrics["warnings"] == ["2 of 12 frame(s) have no valid Fried parameter (AO unlocked or implausible)"]
    assert first.index("Warnings (1)") < first.index("2 of 12 frame(s) have no valid Fried parameter") < first.index("QC values")
    for row in metrics["qc"]:
        assert row["name"] in first, row["name"]
    qc = {row["name"]: row for row in metrics["qc"]}
    assert qc["bad pixels"]["value"] == 2 and qc["master dark mean, 4 ms"]["value"] == 102.5
    assert qc["Fried parameter r0, median"]["value"] == pytest.approx(8.9) and "2 frame(s) without" in qc[
        "Fried parameter r0, median"]["note"]


def test_the_image_page_shows_four_panels_with_their_units(report):
    _, pdf = report
    # Then page 2 names the frame, the dark, the gain and the bad pixels, each with its unit
    page = text(pdf, 1)
    for label in ("calibrated frame", "master dark (4 ms)", "normalised gain", "bad pixels",
                  "calibrated signal [ct]", "dark signal [ct]", "relative response [1]", "x [pixel, binned]"):
        assert label in page, label
    # And rendered, each quadrant holds an image, not a blank panel
    image = np.asarray(pdf[1].render(scale=1).to_pil().convert("L"), dtype=float)
    height, width = image.shape
    for top in (0, height // 2):
        for left in (0, width // 2):
            quadrant = image[top + height // 8: top + 3 * height // 8, left + width // 8: left + 3 * width // 8]
            assert quadrant.std() > 5, (top, left)


def test_the_time_series_have_labelled_axes_in_physical_units_and_no_offsets(report):
    _, pdf = report
    light, seeing = text(pdf, 2), text(pdf, 3)
    # Then the axes say what is plotted and in which unit
    assert "time since the first frame [min]" in light and "calibrated signal [ct]" in light
    assert "granulation RMS contrast [%]" in seeing and "AO Fried parameter r0 [cm]" in seeing
    # And a 2-count jitter on 13,000 ct is drawn on an axis from zero, labelled in counts, never with an offset
    ticks = [word for word in light.split() if word.isdigit()]
    assert "e4" not in light and "1e" not in light
    assert "0" in ticks and "12000" in ticks
