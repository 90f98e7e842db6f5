"""The plots of ``clmmd report``: one PNG per entry of :data:`PLOTS`.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), so
rendering touches no process-wide state and works headless.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clmmd.service.analysis.report_data import EpisodeRow

COLORS = {
    "pnl": "#1f4e9c",
    "fees": "#2a9d4b",
    "gas": "#d1495b",
    "il": "#8e5ad6",
    "hodl": "#e07b39",
    "in_range": "#2b8cbe",
    "fresh": "#2a9d4b",
    "stale": "#f0a202",
    "missing": "#d1495b",
    "bad": "#d1495b",
}
FIG_SIZE_IN = (10.0, 3.3)
DPI = 110
BAR_LIMIT = 60  # above this many episodes per-episode bars become lines

#: Draws one plot of a run's episode rows onto the axes it is given.
PlotFn = Callable[[Axes, list[EpisodeRow]], None]


def _values(rows: Sequence[EpisodeRow], get: Callable[[EpisodeRow], float | None]) -> list[float]:
    return [v if (v := get(r)) is not None else float("nan") for r in rows]


def _plot_cumulative(ax: Axes, rows: list[EpisodeRow]) -> None:
    xs = [r.number for r in rows]
    lines: tuple[tuple[str, str, Callable[[EpisodeRow], float | None]], ...] = (
        ("pnl", "PnL", lambda r: r.pnl_usd),
        ("hodl", "HODL return", lambda r: r.hodl_return_usd),
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
    ax.set_title("Cumulative PnL and its terms (USD)", loc="left")
    ax.set_ylabel("USD")
    # Six terms and the failure marker do not fit beside the title: the legend goes right.
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)


def decomposition_totals(rows: Sequence[EpisodeRow]) -> dict[str, float] | None:
    """Run totals of PnL = HODL return − IL + fees − gas over the successful episodes, or
    ``None`` when one of them lacks a term (results written before HODL return was kept)."""
    done = [r for r in rows if r.outcome == "success"]
    totals = {"hodl": 0.0, "il": 0.0, "fees": 0.0, "gas": 0.0, "pnl": 0.0}
    for r in done:
        terms = (r.hodl_return_usd, r.il_usd, r.fees_usd, r.gas_usd, r.pnl_usd)
        if any(t is None for t in terms):
            return None
        for key, value in zip(totals, terms, strict=True):
            totals[key] += value or 0.0
    return totals


def _plot_decomposition(ax: Axes, rows: list[EpisodeRow]) -> None:
    totals = decomposition_totals(rows)
    if totals is None:
        ax.text(
            0.5,
            0.5,
            "HODL return not recorded in this run's results: no decomposition",
            ha="center",
            transform=ax.transAxes,
        )
        return
    # A waterfall: each term moves the running total; the last bar is the PnL itself.
    steps = (
        ("hodl", "HODL return", totals["hodl"]),
        ("il", "− impermanent loss", -totals["il"]),
        ("fees", "+ fees", totals["fees"]),
        ("gas", "− gas", -totals["gas"]),
    )
    level, labels, ends = 0.0, [], [0.0, totals["pnl"]]
    for _, _, delta in steps:
        level += delta
        ends.append(level)
    low, high = min(ends), max(ends)
    span = max(1e-9, high - low)
    # Room above and below for the value labels, so none runs into the title.
    ax.set_ylim(low - 0.16 * span, high + 0.16 * span)
    level = 0.0
    for i, (key, label, delta) in enumerate(steps):
        ax.bar(i, delta, 0.6, bottom=level, color=COLORS[key])
        ax.plot([i - 0.3, i + 1.3], [level + delta] * 2, color="#666666", lw=0.8, ls=":")
        _annotate(ax, i, level, level + delta, delta, span)
        level += delta
        labels.append(label)
    ax.bar(len(steps), totals["pnl"], 0.6, color=COLORS["pnl"])
    _annotate(ax, len(steps), 0.0, totals["pnl"], totals["pnl"], span)
    labels.append("= PnL")
    ax.set_xticks(range(len(labels)), labels)
    ax.axhline(0, color="#444444", lw=0.8)
    ax.set_title(
        f"PnL decomposition over {sum(r.outcome == 'success' for r in rows)} successful "
        "episodes: PnL = HODL return − IL + fees − gas (USD)",
        loc="left",
    )
    ax.set_ylabel("USD")


def _annotate(ax: Axes, x: float, start: float, end: float, value: float, span: float) -> None:
    """The bar's value outside its end: above a rise, below a fall (never over the title)."""
    if value >= 0:
        ax.text(x, max(start, end) + 0.02 * span, f"{value:+,.2f}", ha="center", va="bottom")
    else:
        ax.text(x, min(start, end) - 0.02 * span, f"{value:+,.2f}", ha="center", va="top")


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


#: (file name without .png, title, drawing function), in the order the page shows them.
PLOTS: tuple[tuple[str, str, PlotFn], ...] = (
    ("pnl_decomposition", "PnL decomposition (waterfall)", _plot_decomposition),
    ("cumulative_pnl", "Cumulative PnL and its terms", _plot_cumulative),
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
        if draw not in (_plot_widths, _plot_decomposition):
            ax.set_xlabel("episode")
            # Episodes are counted: no "2.5" ticks on the axis.
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no episodes yet", ha="center", transform=ax.transAxes)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_plots(rows: list[EpisodeRow]) -> dict[str, bytes]:
    """Every plot of :data:`PLOTS` as PNG bytes, by name."""
    return {name: render_plot(draw, rows) for name, _, draw in PLOTS}
