"""``clmmd report``: one run as a self-contained HTML page with plots, plus the plots as PNG.

Reading the run folder (:mod:`service.report_data`) is the only I/O before the files are
written; a run that is still being written is reported as it stands, and says so. The plots
are drawn by :mod:`service.report_plots` and the page by :mod:`service.report_html`.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clmmd.artifacts.layout import RunLayout
from clmmd.artifacts.writer import TEMP_MARKER
from clmmd.service.analysis.report_data import EpisodeRow, RunData, episode_row, load_run
from clmmd.service.analysis.report_html import FIGURE_ACCENT, render_html
from clmmd.service.analysis.report_plots import PLOTS, render_plot, render_plots
from clmmd.service.analysis.sweep_report import html_section, load_cells, render_heatmap


@dataclass(frozen=True)
class ReportFiles:
    """The files :func:`write_report` wrote."""

    html: Path
    pngs: list[Path]


def _write_replacing(path: Path, data: bytes) -> None:
    # A report is derived, not an artifact: regenerating replaces it (atomically).
    temp = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}")
    temp.write_bytes(data)
    os.replace(temp, path)


def write_report(layout: RunLayout, now: datetime, out_dir: Path | None = None) -> ReportFiles:
    """Write ``report.html`` and one PNG per plot (default ``<run_dir>/report/``)."""
    target = out_dir if out_dir is not None else layout.run_dir / "report"
    data = load_run(layout, now)
    plots = render_plots(data.rows)
    target.mkdir(parents=True, exist_ok=True)
    pngs = []
    for name, png in plots.items():
        path = target / f"{name}.png"
        _write_replacing(path, png)
        pngs.append(path)
    sections = []
    cells = load_cells(layout.run_dir)
    if cells:  # a sweep run: its table and heatmap
        heatmap = render_heatmap(cells)
        path = target / "sweep_heatmap.png"
        _write_replacing(path, heatmap)
        pngs.append(path)
        src = "data:image/png;base64," + base64.b64encode(heatmap).decode("ascii")
        sections.append(html_section(cells, src))
    page = target / "report.html"
    _write_replacing(page, render_html(data, plots, now, sections).encode("utf-8"))
    return ReportFiles(page, pngs)


# The report's pieces stay importable from here, where callers and tests have always found them.
__all__ = [
    "FIGURE_ACCENT",
    "PLOTS",
    "EpisodeRow",
    "ReportFiles",
    "RunData",
    "episode_row",
    "load_run",
    "render_html",
    "render_plot",
    "render_plots",
    "write_report",
]
