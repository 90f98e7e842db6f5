"""docs/queries.md is generated from the registry and says what the registry says."""

from __future__ import annotations

import re
from pathlib import Path

from clmmd.scheduler.catalogue import render_catalogue
from clmmd.scheduler.registry import PRIORITIES, load_registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "queries.md"


def test_queries_doc_is_generated_from_the_registry() -> None:
    assert DOC.read_text() == render_catalogue(), (
        "docs/queries.md is stale: python -m clmmd.scheduler.catalogue > docs/queries.md"
    )


def test_every_query_has_one_row_and_a_section_with_sql_columns_and_consumers() -> None:
    registry = load_registry()
    text = DOC.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(registry) == 25
    for spec in registry:
        (row,) = [r for r in rows if r.startswith(f"| `{spec.name}`")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == ("on" if spec.enabled_default else "off")
        assert cells[2] == "sql"
        assert cells[3].count("`") == 2 * max(1, len(spec.windows))
        section = text.split(f"### `{spec.name}`", 1)[1].split("### ", 1)[0]
        assert f"scheduler/queries/{spec.name}.sql" in section
        assert "Output columns:" in section and "Feeds:" in section
    for name, reads in (("gas_regime", "**gas**"), ("toxic_flow", "**flow**")):
        assert reads in text.split(f"### `{name}`", 1)[1].split("### ", 1)[0]


def test_sections_follow_priorities_with_counts() -> None:
    headings = re.findall(
        r"^## (P\d): \w+ \((\d+) queries, (\d+) enabled\)$", DOC.read_text(), re.M
    )
    assert [h[0] for h in headings] == list(PRIORITIES)
    assert [int(h[1]) for h in headings] == [3, 5, 3, 14]
    assert [int(h[2]) for h in headings] == [3, 4, 3, 0]


def test_a_changed_registry_changes_the_doc(tmp_path: Path) -> None:
    shipped = (Path(__file__).resolve().parents[2] / "scheduler" / "queries.toml").read_text()
    changed = tmp_path / "queries.toml"
    saved = '[queries.gas_regime]\nmethod = "latest"\nquery_id = 4242\n'
    changed.write_text(shipped.replace("[queries.gas_regime]\n", saved))
    rendered = render_catalogue(load_registry(changed))
    assert rendered != DOC.read_text()
    assert "| `gas_regime` | on | latest #4242 |" in rendered
