"""The page of ``clmmd report``: one self-contained HTML document.

The page embeds its PNGs as base64 ``data:`` URIs and has no script, link or remote reference,
so it opens anywhere without a network. Text taken from the run is HTML-escaped: run and
episode folders hold text written by other processes (error messages, regime keys).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime

from clmmd.artifacts.base.clock import utc_iso
from clmmd.service.analysis.ranges import PriceRange
from clmmd.service.analysis.report_data import EpisodeRow, RunData
from clmmd.service.analysis.report_plots import PLOTS, decomposition_totals

#: RGB of the bar left of every plot on the page (the ``figure`` border in ``_CSS``, keep the
#: two equal): tests find the plots in a screenshot of the page by it.
FIGURE_ACCENT = (0x5B, 0x7F, 0xBF)

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1140px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}
.meta{color:#555;font-size:13px;margin:0 0 10px}
.warn{background:#fff4d6;border-left:4px solid #f0a202;padding:8px 12px;font-size:14px}
table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 7px;text-align:right;border-bottom:1px solid #ddd}
td{white-space:nowrap}table.episodes{font-size:12px}
th{color:#555;font-weight:600}td.l,th.l{text-align:left}
figure{margin:8px 0 14px;padding-left:8px;border-left:4px solid #5b7fbf}
figure img{display:block;width:1100px;max-width:100%}
figcaption{font-size:12px;color:#555}
.decomp{font-size:15px;margin:10px 0}
"""

_SUMMARY_FIELDS = (
    ("episodes", "episodes", "{}"),
    ("successful", "successful", "{}"),
    ("failed", "failed", "{}"),
    ("skipped", "skipped", "{}"),
    ("total_pnl_usd", "PnL USD", "{:,.2f}"),
    ("total_hodl_return_usd", "HODL return USD", "{:,.2f}"),
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


def render_html(
    data: RunData,
    plots: dict[str, bytes],
    generated_at: datetime,
    sections: Sequence[str] = (),
) -> str:
    """The report page; every plot is embedded, nothing refers outside the file. ``sections``
    (ready HTML, e.g. a sweep's table and heatmap) follow the summary table."""
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
    out += [
        f"<table><tr>{head}</tr><tr>{cells}</tr></table>",
        _decomposition(data.rows),
        *sections,
        "<h2>Plots</h2>",
    ]
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
        '<p class="meta">PnL = HODL return − IL + fees − gas. Range: the ticks the position '
        "used, its width, and the same band in USD and in per cent around the price when it "
        "was proposed.</p>",
        '<table class="episodes"><tr><th class="l">episode</th><th class="l">outcome</th>'
        "<th>PnL</th><th>HODL return</th><th>IL</th><th>fees</th><th>gas</th><th>in range %</th>"
        "<th>ticks</th><th>width (ticks)</th><th>range (USD)</th><th>± % of price</th>"
        '<th class="l">regime</th><th>fresh %</th></tr>',
    ]
    out += [_episode_line(r) for r in data.rows]
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


def _episode_line(r: EpisodeRow) -> str:
    ticks = (
        "-" if r.tick_lower is None or r.tick_upper is None else f"{r.tick_lower}–{r.tick_upper}"
    )
    band: PriceRange | None = r.price_range
    return (
        f'<tr><td class="l">{_e(r.episode_id)}</td><td class="l">{_e(r.outcome)}</td>'
        f"<td>{_fmt(r.pnl_usd)}</td><td>{_fmt(r.hodl_return_usd)}</td><td>{_fmt(r.il_usd)}</td>"
        f"<td>{_fmt(r.fees_usd)}</td><td>{_fmt(r.gas_usd)}</td>"
        f"<td>{_fmt(r.time_in_range_pct, '{:.1f}')}</td><td>{_e(ticks)}</td>"
        f"<td>{_e(r.width_ticks if r.width_ticks is not None else '-')}</td>"
        f"<td>{_e(band.prices_text() if band else '-')}</td>"
        f"<td>{_e(band.percent_text() if band else '-')}</td>"
        f'<td class="l">{_e(r.regime_key or "-")}</td>'
        f"<td>{_fmt(r.fresh_pct, '{:.1f}')}</td></tr>"
    )


def _decomposition(rows: list[EpisodeRow]) -> str:
    """One line saying how the run's PnL splits into its terms (it must add up)."""
    totals = decomposition_totals(rows)
    if totals is None:
        return (
            '<p class="meta">PnL decomposition unavailable: some results do not record the '
            "HODL return (written by an older clmmd).</p>"
        )
    return (
        '<p class="decomp">PnL <b>{pnl:,.2f}</b> USD = HODL return {hodl:,.2f} − IL {il:,.2f} '
        "+ fees {fees:,.2f} − gas {gas:,.2f} (successful episodes)</p>".format(**totals)
    )
