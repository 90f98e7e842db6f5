"""The query catalogue (docs/queries.md), generated from the shipped registry.

A test compares the file with :func:`render_catalogue`, so the docs cannot drift from
``scheduler/queries.toml``. Regenerate with
``python -m clmmd.scheduler.catalogue > docs/queries.md``.
"""

from __future__ import annotations

from clmmd.scheduler.registry import PRIORITY_LABELS, QuerySpec, Registry, load_registry

EXAMPLE_POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"

PRIORITY_MEANING: dict[str, str] = {
    "P0": "an episode's decision depends on these; refreshed first",
    "P1": "shape the range width and fee tier",
    "P2": "risk signals that scale the position down",
    "P3": "offline analysis and training exports; off in the daemon by default",
}


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _keys(spec: QuerySpec) -> str:
    if not spec.pool_scoped:
        return f"`{spec.name}`"
    return "<br>".join(f"`{spec.name}:<pool>:{window}`" for window in spec.windows)


def _parameters(spec: QuerySpec) -> str:
    extra = [f"`{k}={v}`" for k, v in spec.parameters.items()]
    added = ["`pool_address`, `lookback`"] if spec.pool_scoped else []
    return ", ".join(added + extra) or "-"


def render_catalogue(registry: Registry | None = None) -> str:
    """docs/queries.md for ``registry`` (the shipped catalogue by default)."""
    registry = registry if registry is not None else load_registry()
    total = len(registry)
    enabled = sum(1 for s in registry if s.enabled_default)
    pooled = sum(1 for s in registry if s.pool_scoped)
    lines = [
        "# Query catalogue",
        "",
        "Generated from `scheduler/queries.toml` by `python -m clmmd.scheduler.catalogue`; a test",
        "keeps it in step. `clmmd registry` prints the effective catalogue (after your overrides).",
        "",
        f"{total} queries, {enabled} enabled by default, {pooled} pool-scoped. The `query_id`",
        "values shipped are placeholders: real Dune query ids are the operator's. Copy",
        "`scheduler/queries.toml`, put your ids in, and point `CLMMD_QUERIES_FILE` at the copy;",
        "switch queries on or off with `CLMMD_ENABLE_QUERIES` / `CLMMD_DISABLE_QUERIES`.",
        "",
        "Quality at read time, from the age of the cached result: **fresh** below the TTL,",
        "**stale** from the TTL up to the max age, **too_old** beyond it, **missing** when never",
        "fetched. Methods: `execute` runs the query on Dune then reads its results (costs",
        "credits); `latest` only reads the latest stored results. Cache keys of pool-scoped",
        f"queries name the pool in lower case, e.g. `pool_metrics:{EXAMPLE_POOL}:1h`.",
        "",
    ]
    for priority, specs in registry.by_priority().items():
        if not specs:
            continue
        on = sum(1 for s in specs if s.enabled_default)
        lines += [
            f"## {priority}: {PRIORITY_LABELS[priority]} ({len(specs)} queries, {on} enabled)",
            "",
            PRIORITY_MEANING[priority].capitalize() + ".",
            "",
            "| query | default | query_id | method | cache keys | TTL | max age | parameters |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for spec in specs:
            name = f"`{spec.name}`" + (f": {spec.description}" if spec.description else "")
            lines.append(
                f"| {name} | {'on' if spec.enabled_default else 'off'} | {spec.query_id} | "
                f"{spec.method} | {_keys(spec)} | {_duration(spec.ttl_seconds)} | "
                f"{_duration(spec.max_age_seconds)} | {_parameters(spec)} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_catalogue(), end="")
