"""``clmmd report``: one run as a self-contained HTML page with plots, plus the plots as PNG.

The page embeds its PNGs as base64 ``data:`` URIs and has no script, link or remote reference,
so it opens anywhere without a network. Plots are drawn with matplotlib's object API on the Agg
canvas (no pyplot, no global backend switch). Reading the run folder is the only I/O before the
files are written; a run that is still being written is reported as it stands, and says so.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from artifacts.layout import RunLayout
from artifacts.models import MetricsSummary
from artifacts.recovery import writer_alive
from artifacts.summary import summarize_folders
from artifacts.writer import TEMP_MARKER
from service.clock import utc_iso

COLORS = {
    "pnl": "#1f4e9c",
    "fees": "#2a9d4b",
    "gas": "#d1495b",
    "il": "#8e5ad6",
    "in_range": "#2b8cbe",
    "fresh": "#2a9d4b",
    "stale": "#f0a202",
    "missing": "#d1495b",
    "bad": "#d1495b",
}
FIGURE_ACCENT = (
    0x5B,
    0x7F,
    0xBF,
)  # the bar left of every plot on the page (tests find plots by it)
FIG_SIZE_IN = (10.0, 3.3)
DPI = 110
BAR_LIMIT = 60  # above this many episodes per-episode bars become lines


@dataclass(frozen=True)
class EpisodeRow:
    """What the report shows of one episode folder."""

    episode_id: str
    number: int
    outcome: str  # success | failed | skipped | running
    pnl_usd: float | None = None
    fees_usd: float | None = None
    gas_usd: float | None = None
    il_usd: float | None = None
    time_in_range_pct: float | None = None
    width_ticks: int | None = None
    regime_key: str | None = None
    fresh: int | None = None
    stale: int | None = None
    missing_or_too_old: int | None = None
    fresh_pct: float | None = None
    stage: str | None = None
    detail: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class RunData:
    run_id: str
    info: dict[str, Any]
    summary: MetricsSummary
    rows: list[EpisodeRow]
    writer_pid: int | None  # set while a live process is still writing the run


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pngs: list[Path]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def episode_row(episode_dir: Path, number: int) -> EpisodeRow:
    """Read one episode folder (missing or broken files leave fields empty)."""
    result, failure = _load(episode_dir / "result.json"), _load(episode_dir / "failure.json")
    proposal, metadata = _load(episode_dir / "proposal.json"), _load(episode_dir / "metadata.json")
    extra = metadata.get("extra") if isinstance(metadata.get("extra"), dict) else {}
    hygiene = extra.get("intel_hygiene") if isinstance(extra, dict) else None
    hygiene = hygiene if isinstance(hygiene, dict) else {}
    action = proposal.get("action") if isinstance(proposal.get("action"), dict) else {}
    regime = metadata.get("regime_key") or proposal.get("regime_key")
    common: dict[str, Any] = {
        "episode_id": episode_dir.name,
        "number": number,
        "width_ticks": _int(action, "width_ticks") if isinstance(action, dict) else None,
        "regime_key": regime if isinstance(regime, str) else None,
        "fresh": _int(hygiene, "fresh"),
        "stale": _int(hygiene, "stale"),
        "missing_or_too_old": _int(hygiene, "missing_or_too_old"),
        "fresh_pct": _num(hygiene, "fresh_pct"),
    }
    if result:
        status = result.get("status")
        return EpisodeRow(
            outcome=status if status in ("success", "failed", "skipped") else "failed",
            pnl_usd=_num(result, "pnl_usd"),
            fees_usd=_num(result, "fees_usd"),
            gas_usd=_num(result, "gas_cost_usd"),
            il_usd=_num(result, "il_usd"),
            time_in_range_pct=_num(result, "time_in_range_pct"),
            detail=result.get("reason") if isinstance(result.get("reason"), str) else None,
            **common,
        )
    if failure:
        return EpisodeRow(
            outcome="failed",
            stage=str(failure.get("stage", "?")),
            detail=f"{failure.get('error_type', '')}: {failure.get('error_message', '')}",
            hint=failure.get("hint") if isinstance(failure.get("hint"), str) else None,
            **common,
        )
    return EpisodeRow(outcome="running", **common)


def load_run(layout: RunLayout, now: datetime) -> RunData:
    """Everything the report shows, read from the run folder."""
    rows = [episode_row(d, n) for n, d in enumerate(layout.episode_dirs(), start=1)]
    pid: int | None = None
    if writer_alive(layout):
        try:
            pid = int(layout.active_marker.read_text().strip())
        except (OSError, ValueError):
            pid = None
    return RunData(
        layout.run_id, _load(layout.run_dir / "run.json"), summarize_folders(layout, now), rows, pid
    )


# --- plots ------------------------------------------------------------------------------------

PlotFn = Callable[[Axes, list[EpisodeRow]], None]


def _values(rows: Sequence[EpisodeRow], get: Callable[[EpisodeRow], float | None]) -> list[float]:
    return [v if (v := get(r)) is not None else float("nan") for r in rows]


def _plot_cumulative(ax: Axes, rows: list[EpisodeRow]) -> None:
    xs = [r.number for r in rows]
    lines: tuple[tuple[str, str, Callable[[EpisodeRow], float | None]], ...] = (
        ("pnl", "PnL", lambda r: r.pnl_usd),
        ("fees", "fees", lambda r: r.fees_usd),
        ("gas", "gas cost (−)", lambda r: -(r.gas_usd or 0.0)),
        ("il", "impermanent loss (−)", lambda r: -(r.il_usd or 0.0)),
    )
    for key, label, get in lines:
        total, series = 0.0, []
        for row in rows:
            total += get(row) or 0.0
            series.append(total)
        ax.plot(xs, series, color=COLORS[key], lw=2.4 if key == "pnl" else 1.4, label=label)
    bad = [r.number for r in rows if r.outcome in ("failed", "skipped")]
    if bad:
        ax.plot(bad, [0.0] * len(bad), "x", color=COLORS["bad"], ms=8, label="failed / skipped")
    ax.axhline(0, color="#444444", lw=0.8)
    ax.set_title("Cumulative PnL, fees, gas and IL (USD)", loc="left")
    ax.set_ylabel("USD")
    _legend_above(ax, ncols=5)


def _legend_above(ax: Axes, ncols: int) -> None:
    # Above the frame, right of the title: a legend inside the axes hides data.
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, ncols=ncols, frameon=False)


def _plot_costs(ax: Axes, rows: list[EpisodeRow]) -> None:
    xs = [float(r.number) for r in rows]
    series = [
        ("fees", "fees", _values(rows, lambda r: r.fees_usd)),
        ("gas", "gas", _values(rows, lambda r: r.gas_usd)),
        ("il", "impermanent loss", _values(rows, lambda r: r.il_usd)),
    ]
    if len(rows) <= BAR_LIMIT:
        width = 0.27
        for offset, (key, label, ys) in zip((-width, 0.0, width), series, strict=True):
            ax.bar([x + offset for x in xs], ys, width, color=COLORS[key], label=label)
    else:
        for key, label, ys in series:
            ax.plot(xs, ys, color=COLORS[key], lw=1.2, label=label)
    ax.set_title("Fees vs gas vs impermanent loss per episode (USD)", loc="left")
    ax.set_ylabel("USD")
    _legend_above(ax, ncols=3)


def _plot_in_range(ax: Axes, rows: list[EpisodeRow]) -> None:
    xs = [r.number for r in rows]
    ys = _values(rows, lambda r: r.time_in_range_pct)
    ax.bar(xs, ys, 1.0 if len(rows) > BAR_LIMIT else 0.8, color=COLORS["in_range"])
    known = [y for y in ys if y == y]
    if known:
        mean = sum(known) / len(known)
        ax.axhline(mean, color="#222222", lw=1.2, ls="--", label=f"mean {mean:.1f} %")
        _legend_above(ax, ncols=1)
    ax.set_ylim(0, 105)
    ax.set_title("Time in range per episode (%)", loc="left")
    ax.set_ylabel("% of horizon")


def _plot_widths(ax: Axes, rows: list[EpisodeRow]) -> None:
    counts = Counter(
        (r.regime_key, r.width_ticks) for r in rows if r.regime_key and r.width_ticks is not None
    )
    regimes = sorted({regime for regime, _ in counts})
    widths = sorted({width for _, width in counts})
    if not regimes:
        ax.text(0.5, 0.5, "no proposals with a range yet", ha="center", transform=ax.transAxes)
        return
    cmap = _colormap(len(widths))
    left = [0] * len(regimes)
    for i, width in enumerate(widths):
        values = [counts.get((regime, width), 0) for regime in regimes]
        ax.barh(regimes, values, 0.6, left=left, color=cmap[i], label=f"{width}")
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_title("Chosen range width (ticks) by regime: episodes", loc="left")
    ax.set_xlabel("episodes")
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(
        title="width (ticks)",
        fontsize=8,
        title_fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
    )


def _colormap(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.1 + 0.8 * i / max(1, n - 1)) for i in range(n)]


def _plot_hygiene(ax: Axes, rows: list[EpisodeRow]) -> None:
    xs = [r.number for r in rows]
    bottom = [0.0] * len(rows)
    width = 1.0 if len(rows) > BAR_LIMIT else 0.8
    layers: tuple[tuple[str, str, Callable[[EpisodeRow], int | None]], ...] = (
        ("fresh", "fresh", lambda r: r.fresh),
        ("stale", "stale", lambda r: r.stale),
        ("missing", "missing or too old", lambda r: r.missing_or_too_old),
    )
    for key, label, get in layers:
        ys = [float(get(r) or 0) for r in rows]
        ax.bar(xs, ys, width, bottom=bottom, color=COLORS[key], label=label)
        bottom = [a + b for a, b in zip(bottom, ys, strict=True)]
    ax.set_ylim(0, max([*bottom, 1.0]) * 1.08)
    ax.set_title("Intel hygiene per episode: queries by quality", loc="left")
    ax.set_ylabel("queries")
    _legend_above(ax, ncols=3)


PLOTS: tuple[tuple[str, str, PlotFn], ...] = (
    ("cumulative_pnl", "Cumulative PnL", _plot_cumulative),
    ("fees_gas_il", "Fees vs gas vs IL per episode", _plot_costs),
    ("time_in_range", "Time in range", _plot_in_range),
    ("range_width_by_regime", "Range widths by regime", _plot_widths),
    ("intel_hygiene", "Intel hygiene over the run", _plot_hygiene),
)


def render_plot(draw: PlotFn, rows: list[EpisodeRow]) -> bytes:
    """One plot as PNG bytes (empty runs get a labelled empty frame)."""
    fig = Figure(figsize=FIG_SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, color="#e4e4e4", lw=0.6)
    ax.set_axisbelow(True)
    if rows:
        draw(ax, rows)
        if draw is not _plot_widths:
            ax.set_xlabel("episode")
            # Episodes are counted: no "2.5" ticks on the axis.
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no episodes yet", ha="center", transform=ax.transAxes)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_plots(rows: list[EpisodeRow]) -> dict[str, bytes]:
    return {name: render_plot(draw, rows) for name, _, draw in PLOTS}


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1140px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}
.meta{color:#555;font-size:13px;margin:0 0 10px}
.warn{background:#fff4d6;border-left:4px solid #f0a202;padding:8px 12px;font-size:14px}
table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #ddd}
th{color:#555;font-weight:600}td.l,th.l{text-align:left}
figure{margin:8px 0 14px;padding-left:8px;border-left:4px solid #5b7fbf}
figure img{display:block;width:1100px;max-width:100%}
figcaption{font-size:12px;color:#555}
"""

_SUMMARY_FIELDS = (
    ("episodes", "episodes", "{}"),
    ("successful", "successful", "{}"),
    ("failed", "failed", "{}"),
    ("skipped", "skipped", "{}"),
    ("total_pnl_usd", "PnL USD", "{:,.2f}"),
    ("total_fees_usd", "fees USD", "{:,.2f}"),
    ("total_gas_usd", "gas USD", "{:,.2f}"),
    ("total_il_usd", "IL USD", "{:,.2f}"),
    ("risk_scalar_applied", "risk scalar applied", "{}"),
    ("mean_fresh_pct", "mean fresh %", "{:.1f}"),
)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: float | None, spec: str = "{:,.2f}") -> str:
    return "-" if value is None else spec.format(value)


def render_html(data: RunData, plots: dict[str, bytes], generated_at: datetime) -> str:
    """The report page; every plot is embedded, nothing refers outside the file."""
    info = data.info
    meta = " · ".join(
        f"{label} {_e(info[key])}"
        for key, label in (
            ("started_at", "started"),
            ("exec_mode", "exec mode"),
            ("seed", "seed"),
            ("config_hash", "config"),
            ("agent_version", "agent"),
        )
        if key in info
    )
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>clmmd report {_e(data.run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Run {_e(data.run_id)}</h1>",
        f'<p class="meta">{meta} · report generated {_e(utc_iso(generated_at))}</p>',
    ]
    if data.writer_pid is not None:
        out.append(
            f'<p class="warn">This run is still being written (process {data.writer_pid}): '
            "the report shows the episodes finished so far. Run <code>clmmd report</code> "
            "again when it ends.</p>"
        )
    summary = data.summary.model_dump()
    head = "".join(f"<th>{_e(label)}</th>" for _, label, _ in _SUMMARY_FIELDS)
    cells = "".join(
        f"<td>{'-' if summary[key] is None else _e(spec.format(summary[key]))}</td>"
        for key, _, spec in _SUMMARY_FIELDS
    )
    out += [f"<table><tr>{head}</tr><tr>{cells}</tr></table>", "<h2>Plots</h2>"]
    for name, title, _ in PLOTS:
        encoded = base64.b64encode(plots[name]).decode("ascii")
        out.append(
            f'<figure id="{name}"><img alt="{_e(title)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{_e(title)} ({name}.png)</figcaption></figure>"
        )
    problems = [r for r in data.rows if r.outcome in ("failed", "skipped")]
    out.append(f"<h2>Failed and skipped episodes ({len(problems)})</h2>")
    if problems:
        out.append(
            '<table><tr><th class="l">episode</th><th class="l">outcome</th>'
            '<th class="l">what happened</th><th class="l">what to do</th></tr>'
        )
        for r in problems:
            outcome = f"{r.outcome} at {r.stage}" if r.stage else r.outcome
            out.append(
                f'<tr><td class="l">{_e(r.episode_id)}</td><td class="l">{_e(outcome)}</td>'
                f'<td class="l">{_e(r.detail)}</td><td class="l">{_e(r.hint)}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append("<p>None.</p>")
    out += [
        f"<h2>Episodes ({len(data.rows)})</h2>",
        '<table><tr><th class="l">episode</th><th class="l">outcome</th><th>PnL</th>'
        "<th>fees</th><th>gas</th><th>IL</th><th>in range %</th><th>width</th>"
        '<th class="l">regime</th><th>fresh %</th></tr>',
    ]
    for r in data.rows:
        out.append(
            f'<tr><td class="l">{_e(r.episode_id)}</td><td class="l">{_e(r.outcome)}</td>'
            f"<td>{_fmt(r.pnl_usd)}</td><td>{_fmt(r.fees_usd)}</td><td>{_fmt(r.gas_usd)}</td>"
            f"<td>{_fmt(r.il_usd)}</td><td>{_fmt(r.time_in_range_pct, '{:.1f}')}</td>"
            f"<td>{_e(r.width_ticks if r.width_ticks is not None else '-')}</td>"
            f'<td class="l">{_e(r.regime_key or "-")}</td>'
            f"<td>{_fmt(r.fresh_pct, '{:.1f}')}</td></tr>"
        )
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


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
    page = target / "report.html"
    _write_replacing(page, render_html(data, plots, now).encode("utf-8"))
    return ReportFiles(page, pngs)
