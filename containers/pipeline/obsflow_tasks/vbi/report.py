"""vbi-l1's quality report: what a data-quality scientist reads first, as a PDF.

Page 1: the dataset, its warnings (first, in red) and the QC table. Page 2: images of a
calibrated frame and of the calibrations it was made with. Pages 3 and 4: light level and
seeing through the observation, in physical units, with no axis offsets.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

A4 = (8.27, 11.69)
LANDSCAPE = (11.69, 8.27)


def _minutes(frames: Sequence[dict]) -> np.ndarray:
    times = np.array([np.datetime64(f["date_obs"]) for f in frames])
    return (times - times.min()) / np.timedelta64(1, "s") / 60.0 if times.size else np.array([])


def _values(frames: Sequence[dict], key: str, scale: float = 1.0) -> np.ndarray:
    return np.array([np.nan if f.get(key) is None else f[key] * scale for f in frames], dtype=float)


def _plain(axes) -> None:
    """Tick labels as the values themselves, from zero: an offset like +1.3e4 or an axis zoomed on the data
    makes a 2-count jitter look dramatic, while a real drop (a cloud) still shows against zero."""
    axes.ticklabel_format(axis="y", useOffset=False, style="plain")
    top = axes.get_ylim()[1]
    axes.set_ylim(0, top * 1.1 if np.isfinite(top) and top > 0 else 1)
    axes.grid(alpha=0.3)


def _first_page(plt, identity: Sequence[tuple[str, str]], metrics: dict):
    figure = plt.figure(figsize=A4)
    figure.text(0.07, 0.96, "Quality report", fontsize=18, weight="bold", va="top")
    figure.text(0.07, 0.925, "\n".join(f"{name}: {value}" for name, value in identity), fontsize=9, va="top",
                family="monospace", linespacing=1.5)
    warnings = metrics.get("warnings", [])
    top = 0.925 - 0.0155 * (len(identity) + 1)
    figure.text(0.07, top, f"Warnings ({len(warnings)})", fontsize=13, weight="bold",
                color="#b00020" if warnings else "#1b5e20", va="top")
    lines = [f"- {w}" for w in warnings] or ["none: every check passed"]
    figure.text(0.09, top - 0.03, "\n".join(lines), fontsize=10, va="top", wrap=True,
                color="#b00020" if warnings else "#1b5e20", linespacing=1.5)
    top -= 0.05 + 0.021 * len(lines)
    figure.text(0.07, top, "QC values", fontsize=13, weight="bold", va="top")
    rows = [[row["name"], _format(row["value"]), row.get("unit", ""), row.get("note", "")] for row in metrics.get("qc", [])]
    if rows:
        axes = figure.add_axes((0.07, max(0.04, top - 0.03 - 0.026 * len(rows)), 0.86, 0.026 * len(rows)))
        axes.axis("off")
        table = axes.table(cellText=rows, colLabels=["quantity", "value", "unit", "note"], loc="upper left",
                           colLoc="left", cellLoc="left", colWidths=[0.36, 0.2, 0.1, 0.34])
        table.auto_set_font_size(False)
        table.set_fontsize(8.5)
        table.scale(1, 1.3)
    return figure


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _image_page(plt, panels: dict[str, tuple[np.ndarray, str, str]]):
    """Panels: title -> (image, colour-bar label, colour map)."""
    figure, grid = plt.subplots(2, 2, figsize=A4)
    figure.suptitle("Images: a calibrated frame and the calibrations it was made with", fontsize=13)
    for axes, (title, (image, unit, colours)) in zip(grid.flat, panels.items(), strict=False):
        finite = image[np.isfinite(image)]
        low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        if colours == "binary":
            low, high = 0.0, max(1.0, float(np.nanmax(image)) if finite.size else 1.0)
        shown = axes.imshow(image, origin="lower", cmap=colours, vmin=low, vmax=high, interpolation="nearest")
        if colours == "binary":  # single pixels vanish at print size: ring each one
            marked = np.argwhere(image > 0)
            if 0 < len(marked) <= 1000:
                axes.scatter(marked[:, 1], marked[:, 0], s=60, facecolors="none", edgecolors="#d62728", linewidths=1)
            title = f"{title}: {len(marked)}" if len(marked) <= 1000 else title
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("x [pixel, binned]" if image.shape[1] < 4096 else "x [pixel]")
        axes.set_ylabel("y [pixel, binned]" if image.shape[0] < 4096 else "y [pixel]")
        bar = figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
        bar.set_label(unit)
        bar.formatter.set_useOffset(False)
    for axes in list(grid.flat)[len(panels):]:
        axes.axis("off")
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    return figure


def _light_page(plt, frames: Sequence[dict]):
    figure, axes = plt.subplots(figsize=LANDSCAPE)
    minutes = _minutes(frames)
    axes.plot(minutes, _values(frames, "light_level"), marker="o", label="light level (central region mean)")
    axes.plot(minutes, _values(frames, "frame_average"), marker="s", label="frame average")
    axes.set_title("Light level through the observation")
    axes.set_xlabel("time since the first frame [min]")
    axes.set_ylabel("calibrated signal [ct]")
    _plain(axes)
    axes.legend()
    return figure


def _seeing_page(plt, frames: Sequence[dict]):
    figure, axes = plt.subplots(figsize=LANDSCAPE)
    minutes = _minutes(frames)
    axes.plot(minutes, _values(frames, "granulation_rms_contrast", 100), marker="o", color="#1f77b4",
              label="granulation RMS contrast (measured)")
    axes.set_title("Seeing: measured from the data, and as the AO reported it")
    axes.set_xlabel("time since the first frame [min]")
    axes.set_ylabel("granulation RMS contrast [%]", color="#1f77b4")
    _plain(axes)
    r0 = _values(frames, "fried_parameter", 100)
    other = axes.twinx()
    other.plot(minutes, r0, marker="s", color="#d62728", label="Fried parameter r0 (AO)")
    other.set_ylabel("AO Fried parameter r0 [cm]", color="#d62728")
    _plain(other)
    other.grid(False)
    if np.isnan(r0).all():
        other.text(0.5, 0.5, "no valid r0: AO unlocked or not reported", transform=other.transAxes, ha="center")
    lines = axes.get_legend_handles_labels()[0] + other.get_legend_handles_labels()[0]
    axes.legend(lines, [line.get_label() for line in lines], loc="lower right")
    return figure


def quality_report_pdf(identity: Sequence[tuple[str, str]], metrics: dict,
                       panels: dict[str, tuple[np.ndarray, str, str]]) -> bytes:
    """The report as PDF bytes; ``identity``: (label, value) lines naming the dataset; ``panels``: see _image_page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    # TrueType fonts: the text stays text (searchable, copyable) rather than Type 3 glyph drawings.
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(buffer, metadata={"Title": "obsflow quality report"}) as pdf:
        frames = metrics.get("frames", [])
        for figure in (_first_page(plt, identity, metrics), _image_page(plt, panels), _light_page(plt, frames),
                       _seeing_page(plt, frames)):
            pdf.savefig(figure)
            plt.close(figure)
    return buffer.getvalue()
