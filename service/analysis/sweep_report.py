"""A sweep's summary: the table ``clmmd sweep`` prints and the report's section (table and
heatmap of the mean reward per arm and (pool, seed)), both read from sweep.json's cells."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SWEEP_FILE = "sweep.json"


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def load_cells(run_dir: Path) -> list[dict[str, Any]] | None:
    """sweep.json's cells, or None when the run is not a sweep (or the file is unreadable)."""
    try:
        document = orjson.loads((run_dir / SWEEP_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    cells = document.get("cells") if isinstance(document, dict) else None
    return cells if isinstance(cells, list) else None


def _interval(cell: dict[str, Any]) -> str:
    low, high = cell.get("reward_low"), cell.get("reward_high")
    mean = f"{cell['reward_mean']:+.4f}"
    return mean if low is None or high is None else f"{mean} [{low:+.4f}, {high:+.4f}]"


def table_rows(cells: Sequence[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(pool, arm, seed, n, reward with 95 % interval) per cell; seed "all" pools the seeds."""
    return [
        (
            _short(c["pool"]),
            c["arm"],
            "all" if c["seed"] is None else str(c["seed"]),
            str(c["n"]),
            _interval(c),
        )
        for c in cells
    ]


def render_heatmap(cells: Sequence[dict[str, Any]]) -> bytes:
    """PNG: mean reward per arm (rows) and (pool, seed) column, each seed's cell and "all"."""
    arms = list(dict.fromkeys(c["arm"] for c in cells))
    columns = list(dict.fromkeys((c["pool"], c["seed"]) for c in cells))
    value = {(c["arm"], c["pool"], c["seed"]): c["reward_mean"] for c in cells}
    grid = [[value.get((arm, pool, seed), float("nan")) for pool, seed in columns] for arm in arms]
    width = min(14.0, 2.5 + 0.55 * len(columns))
    fig = Figure(figsize=(width, 1.4 + 0.45 * len(arms)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = [abs(v) for row in grid for v in row if v == v]
    bound = max(finite, default=1.0) or 1.0  # symmetric: zero is the colour scale's middle
    image = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=-bound, vmax=bound)
    ax.set_yticks(range(len(arms)), arms)
    ax.set_xticks(
        range(len(columns)),
        [f"{p[:6]}\n{'all' if s is None else s}" for p, s in columns],
        fontsize=7,
    )
    if len(columns) * len(arms) <= 120:
        for row, values in enumerate(grid):
            for col, v in enumerate(values):
                ax.text(col, row, f"{v:+.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="mean reward (% of size)")
    ax.set_title("Sweep: mean reward per arm and (pool, seed)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def html_section(cells: Sequence[dict[str, Any]], heatmap_src: str) -> str:
    """The report's sweep section: the heatmap and the table of every cell."""
    e = html.escape
    rows = "".join(
        f'<tr><td class="l">{e(pool)}</td><td class="l">{e(arm)}</td><td>{e(seed)}</td>'
        f"<td>{n}</td><td>{e(reward)}</td></tr>"
        for pool, arm, seed, n, reward in table_rows(cells)
    )
    return (
        "<h2>Sweep</h2>"
        '<figure id="sweep_heatmap"><img alt="Sweep heatmap" '
        f'src="{heatmap_src}"><figcaption>Mean reward per arm and (pool, seed) '
        "(sweep_heatmap.png)</figcaption></figure>"
        '<table><tr><th class="l">pool</th><th class="l">arm</th><th>seed</th><th>n</th>'
        f"<th>reward, mean [95 % interval]</th></tr>{rows}</table>"
    )
